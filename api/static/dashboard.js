// The LoanLedger dashboard: signs in (browser wallet via SIWE, or the localhost development login), then
// reads the /v1/audit/* routes and draws the portfolio, the loans, a loan's timeline, a borrower's
// pseudonymous page, the suspense items with the day's reconciliation (/v1/operator/suspense,
// /v1/audit/reconciliation: read-only, with the CLI command that resolves each open item), and the borrowers'
// hardship reschedule requests, where an operator offers new terms with a signed decision. An ES module, no build
// step, nothing fetched from anywhere but this API. Every value
// from the API is put into the page as text (never as HTML): event arguments are data, not markup.
import { getAddress, hexlify, toUtf8Bytes } from "./ethers-6.17.0.min.js"; // npm ethers, pinned in package.json
import { decisionBody, prepare, signAll } from "./decisions.js";

(() => {
  const READ_ALL = ["auditor", "operator", "admin"]; // api/views.py READ_ALL: who may read the audit routes
  let RUNNING = [];                                  // statuses whose principal is owed: the report's running_statuses
  const TOKEN_KEY = "loanledger.dashboard.session";
  const PAGE_LIMIT = 500;                            // the audit routes' largest page
  const $ = (selector) => document.querySelector(selector);

  // ------------------------------------------------------------------------------------------ DOM

  function append(el, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined) continue;
      if (key === "class") el.className = value;
      else if (key === "onclick") el.addEventListener("click", value);
      else el.setAttribute(key, value);
    }
    return append(el, children);
  }

  function s(tag, attrs = {}, ...children) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
    return append(el, children);
  }

  function fill(tbody, rows, emptyText, columns) {
    const empty = h("tr", { class: "empty" }, h("td", { colspan: columns }, emptyText));
    tbody.replaceChildren(...(rows.length ? rows : [empty]));
  }

  function facts(dl, pairs) {
    dl.replaceChildren(...pairs.flatMap(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]));
  }

  function notice(message) {
    const el = $("#notice");
    el.textContent = message;
    el.hidden = !message;
  }

  function show(view) {
    for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== view;
    document.body.dataset.view = view.replace(/^view-/, "");
  }

  // ------------------------------------------------------------------------------------------ formatting

  function fractionDigits(currency) {
    try {
      return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
    } catch {
      return 2;
    }
  }

  // Amounts are integers in minor units: placed with string arithmetic, never through a float.
  function money(minor, currency) {
    if (minor === null || minor === undefined) return "—";
    const digits = currency ? fractionDigits(currency) : 2;
    const negative = minor < 0;
    const text = String(Math.abs(minor)).padStart(digits + 1, "0");
    const whole = text.slice(0, text.length - digits).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    const amount = digits ? `${whole}.${text.slice(text.length - digits)}` : whole;
    return `${negative ? "-" : ""}${amount}${currency ? ` ${currency}` : ""}`;
  }

  const when = (t) => (t ? new Date(t * 1000).toISOString().slice(0, 19).replace("T", " ") : "—");
  const loansCount = (n) => `${n} loan${n === 1 ? "" : "s"}`;
  const percent = (ratio) => `${(ratio * 100).toFixed(2)}%`;
  const outstanding = (loan) =>
    RUNNING.includes(loan.status) ? loan.principal - loan.principal_repaid - loan.principal_written_off : 0;
  const state = (status) => h("span", { class: `state state-${status}` }, status);
  const borrowerLink = (address) => h("a", { href: `#/borrowers/${address}`, class: "mono" }, address);

  // ------------------------------------------------------------------------------------------ API

  let session = null; // {token, address, roles, expires_at}

  class ApiFailure extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  async function api(path, { method = "GET", body, idempotencyKey } = {}) {
    const headers = { accept: "application/json" };
    if (idempotencyKey) headers["idempotency-key"] = idempotencyKey;
    if (session) headers.authorization = `Bearer ${session.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const payloadText = body === undefined ? undefined : JSON.stringify(body);
    const response = await fetch(path, { method, headers, body: payloadText });
    let payload = null;
    try { payload = await response.json(); } catch { /* an empty or non-JSON body: the status says enough */ }
    if (!response.ok) {
      const error = (payload && payload.error) || {};
      throw new ApiFailure(response.status, error.code || "http_error", error.message || `HTTP ${response.status}`);
    }
    return payload;
  }

  async function allPages(path, key, params = {}) {
    const rows = [];
    let cursor = null;
    do {
      const query = new URLSearchParams({ ...params, limit: PAGE_LIMIT });
      if (cursor) query.set("cursor", cursor);
      const page = await api(`${path}?${query}`);
      rows.push(...page[key]);
      cursor = page.next_cursor;
    } while (cursor);
    return rows;
  }

  // ------------------------------------------------------------------------------------------ sign-in

  function signedIn(token) {
    session = { token: token.token, address: token.address, roles: token.roles, expires_at: token.expires_at };
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify(session));
    notice("");
    route();
  }

  function signOut(message = "") {
    session = null;
    sessionStorage.removeItem(TOKEN_KEY);
    notice(message);
    route();
  }

  // The server writes the Sign-In with Ethereum message (api/auth.py `siwe_message`, what its login verifies);
  // the wallet signs it as it is. Nothing here builds or hashes it.
  async function walletLogin() {
    const wallet = window.ethereum;
    if (!wallet) return notice("No browser wallet (window.ethereum) in this browser.");
    try {
      const [account] = await wallet.request({ method: "eth_requestAccounts" });
      const address = getAddress(account); // EIP-55; wallets answer in lower case, and a typo throws here
      const { message } = await api("/v1/auth/nonce", { method: "POST", body: { address } });
      // personal_sign takes the message hex-encoded; the wallet adds EIP-191's prefix, as siwe verifies.
      const signature = await wallet.request({ method: "personal_sign",
        params: [hexlify(toUtf8Bytes(message)), account] });
      signedIn(await api("/v1/auth/login", { method: "POST", body: { message, signature } }));
    } catch (error) {
      notice(`Wallet sign-in failed: ${error.message || error}`);
    }
  }

  async function devLogin(event) {
    event.preventDefault();
    try {
      signedIn(await api("/v1/auth/dev-login", { method: "POST", body: { address: $("#dev-address").value.trim() } }));
    } catch (error) {
      notice(error.status === 404
        ? "The development login is off (LOANLEDGER_DEV_LOGIN), the chain is not a development chain, or you are not on this machine."
        : `Development login failed: ${error.message}`);
    }
  }

  function renderSignIn() {
    show("signin");
    $("#who").hidden = true;
    $("#nav").hidden = true;
    const hasWallet = Boolean(window.ethereum);
    $("#wallet-login").disabled = !hasWallet;
    $("#wallet-hint").textContent = hasWallet
      ? "Your wallet signs a Sign-In with Ethereum message (no transaction, no gas)."
      : "No browser wallet found (window.ethereum): install one, or use the development login below.";
    // Only a hint: the server refuses the development login to anyone but a loopback client anyway.
    $("#dev-card").hidden = !/^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/.test(location.hostname);
  }

  // ------------------------------------------------------------------------------------------ views

  let generation = 0; // a view rendered after the user has moved on is dropped

  async function renderPortfolio(gen) {
    const [report, loans] = await Promise.all([
      api("/v1/audit/report/portfolio").catch((error) => ({ error })),
      allPages("/v1/audit/loans", "loans"),
    ]);
    if (gen !== generation) return;
    show("view-portfolio");
    const stats = $("#stats");
    if (report.error) {
      stats.replaceChildren(h("p", { class: "muted" }, `Portfolio report unavailable: ${report.error.message}`));
      $("#as-of").textContent = "";
      $("#by-status tbody").replaceChildren();
      $("#buckets-chart").replaceChildren();
    } else {
      const currency = report.currency;
      const par = (days) => report.portfolio_at_risk.find((p) => p.days === days);
      const stat = (id, label, value, note) =>
        h("div", { class: "stat", id }, h("div", { class: "label" }, label), h("div", { class: "value" }, value),
          note ? h("div", { class: "muted" }, note) : null);
      stats.replaceChildren(
        stat("stat-loans", "Loans", report.loans),
        stat("stat-outstanding", "Outstanding principal", money(report.outstanding_principal, currency),
          "Active + Defaulted"),
        stat("stat-par30", "PAR30", percent(par(30).ratio),
          `${loansCount(par(30).count)}, ${money(par(30).outstanding, currency)}`),
        stat("stat-par90", "PAR90", percent(par(90).ratio),
          `${loansCount(par(90).count)}, ${money(par(90).outstanding, currency)}`),
      );
      $("#as-of").textContent = `As of chain time ${when(report.as_of)} UTC; index at block ${report.indexed_block}.`;
      fill($("#by-status tbody"), report.by_status.filter((t) => t.count > 0).map((t) =>
        h("tr", { "data-status": t.status, "data-count": t.count },
          h("td", {}, state(t.status)), h("td", { class: "num" }, t.count),
          h("td", { class: "num" }, money(t.outstanding, currency)))), "No loans yet.", 3);
      drawBuckets($("#buckets-chart"), report.delinquency, currency);
    }
    fill($("#loans-table tbody"), loans.map((loan) =>
      h("tr", { "data-loan-id": loan.id, "data-status": loan.status,
        onclick: () => { location.hash = `#/loans/${loan.id}`; } },
        h("td", { class: "num" }, h("a", { href: `#/loans/${loan.id}` }, `#${loan.id}`)),
        h("td", {}, borrowerLink(loan.borrower)),
        h("td", {}, state(loan.status)),
        h("td", { class: "num" }, money(loan.principal, loan.currency)),
        h("td", { class: "num" }, money(outstanding(loan), loan.currency)),
        h("td", { class: "num" }, loan.days_past_due),
        h("td", {}, when(loan.next_due_at)))), "No loans yet.", 7);
  }

  // The products on offer, and every loan grouped by the product it was made from (older versions and retired
  // products included: a loan keeps the version it was signed for).
  async function renderProducts(gen) {
    const [live, loans] = await Promise.all([api("/v1/products"), allPages("/v1/audit/loans", "loans")]);
    const products = new Map(live.products.map((p) => [p.id, p]));
    const others = [...new Set(loans.map((l) => l.product_id))].filter((id) => id && !products.has(id));
    for (const p of await Promise.all(others.map((id) => api(`/v1/products/${id}`)))) products.set(p.id, p);
    if (gen !== generation) return;
    show("view-products");
    const byProduct = (id) => loans.filter((l) => l.product_id === id);
    fill($("#products-table tbody"), live.products.map((p) =>
      h("tr", { "data-product-id": p.id, "data-loans": byProduct(p.id).length },
        h("td", { class: "num" }, `#${p.id}`), h("td", {}, p.name), h("td", { class: "num" }, p.version),
        h("td", {}, `${money(p.min_principal, p.currency)} – ${money(p.max_principal, p.currency)}`),
        h("td", {}, p.min_installments === p.max_installments ? `${p.min_installments}` :
          `${p.min_installments}–${p.max_installments}`, p.frequency === "Monthly" ? " monthly" : ` × ${Math.round(p.interval / 86400)} days`),
        h("td", { class: "num" }, `${(p.annual_rate_bps / 100).toFixed(2)}%`),
        h("td", { class: "num" }, `${(p.service_fee_bps / 100).toFixed(2)}%`),
        h("td", {}, p.auto_approve ? `up to ${money(p.auto_approve_max_principal, p.currency)}` : "no: an operator decides"),
        h("td", { class: "num" }, byProduct(p.id).length))), "No products on offer.", 9);
    const sorted = loans.filter((l) => l.product_id).sort((a, b) => a.product_id - b.product_id || a.id - b.id);
    const productName = (id) => {
      const p = products.get(id);
      return p ? `#${id} ${p.name}${p.retired ? " (retired)" : ""}` : `#${id}`;
    };
    fill($("#product-loans tbody"), sorted.map((loan) =>
      h("tr", { "data-product-id": loan.product_id, "data-loan-id": loan.id },
        h("td", {}, productName(loan.product_id)), h("td", { class: "num" }, loan.product_version),
        h("td", { class: "num" }, h("a", { href: `#/loans/${loan.id}` }, `#${loan.id}`)),
        h("td", {}, state(loan.status)), h("td", { class: "num" }, money(loan.principal, loan.currency)),
        h("td", { class: "num" }, money(loan.service_fee, loan.currency)),
        h("td", {}, borrowerLink(loan.borrower)))), "No loans from a product yet.", 7);
  }

  // A bar per delinquency bucket (loan count), coloured by severity; the amount is in each bar's tooltip.
  function drawBuckets(container, buckets, currency) {
    const width = 460, height = 200, top = 22, bottom = 34, left = 10;
    const band = (width - left * 2) / buckets.length;
    const most = Math.max(1, ...buckets.map((b) => b.count));
    const chart = s("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
      "aria-label": "Running loans by days past due" });
    chart.append(s("line", { class: "axis", x1: left, x2: width - left, y1: height - bottom, y2: height - bottom }));
    buckets.forEach((bucket, i) => {
      const barHeight = Math.round(((height - top - bottom) * bucket.count) / most);
      const x = left + i * band + band * 0.2;
      const severity = bucket.min_days === 0 ? "" : bucket.min_days < 30 ? " late" : " severe";
      chart.append(
        s("rect", { class: `bar${severity}`, "data-bucket": bucket.name, "data-count": bucket.count, x,
          y: height - bottom - barHeight, width: band * 0.6, height: barHeight },
          s("title", {}, `${bucket.name} days: ${loansCount(bucket.count)}, ${money(bucket.outstanding, currency)}`)),
        s("text", { x: x + band * 0.3, y: height - bottom - barHeight - 6, "text-anchor": "middle" }, bucket.count),
        s("text", { x: x + band * 0.3, y: height - bottom + 16, "text-anchor": "middle" },
          bucket.name === "current" ? "current" : `${bucket.name} d`));
    });
    container.replaceChildren(chart);
  }

  async function renderLoan(gen, id) {
    const loan = await api(`/v1/audit/loans/${id}`);
    if (gen !== generation) return;
    show("view-loan");
    $("#loan-title").replaceChildren(`Loan #${loan.id} `, state(loan.status));
    document.body.dataset.loanId = loan.id;
    const c = loan.currency;
    facts($("#loan-facts"), [
      ["Borrower", borrowerLink(loan.borrower)],
      ["Principal", money(loan.principal, c)],
      ["Product", loan.product_id ? `#${loan.product_id} version ${loan.product_version}` : "—"],
      ["Service fee", `${money(loan.service_fee, c)} (paid out ${money(loan.principal - loan.service_fee, c)})`],
      ["Terms", `${(loan.annual_rate_bps / 100).toFixed(2)}% a year, ${loan.amortization}, ` +
        `${loan.installments} ${loan.frequency === "Monthly" ? "monthly" : `× ${Math.round(loan.interval / 86400)} days`}; ` +
        `early repayment: ${loan.early_repayment}`],
      ["Requested", when(loan.requested_at)],
      ["Disbursed", when(loan.disbursed_at)],
      ["Closed", when(loan.closed_at)],
      ["Installments paid", `${loan.paid_installments} of ${loan.installments}`],
      ["Next due", when(loan.next_due_at)],
      ["Days past due", loan.days_past_due],
      ["Repaid", `${money(loan.principal_repaid, c)} principal, ${money(loan.interest_paid, c)} interest, ` +
        `${money(loan.late_fee_paid, c)} late fees, ${money(loan.penalty_paid, c)} penalty`],
      ["Outstanding", money(outstanding(loan), c)],
      ["Written off", money(loan.principal_written_off, c)],
    ]);
    renderDecisions(loan);
    fill($("#timeline tbody"), loan.events.map((event) =>
      h("tr", { "data-event": event.name },
        h("td", { class: "event-name" }, event.name),
        h("td", { class: "num" }, event.block_number),
        h("td", {}, when(event.block_time)),
        h("td", { class: "hash" }, event.tx_hash),
        h("td", { class: "args" }, JSON.stringify(event.args, null, 1)))), "No events indexed.", 5);
    fill($("#loan-payments tbody"), loan.payments.map((p) =>
      h("tr", { "data-kind": p.kind },
        h("td", {}, p.kind), h("td", { class: "num" }, money(p.amount, c)),
        h("td", { class: "num" }, money(p.principal, c)), h("td", { class: "num" }, money(p.interest, c)),
        h("td", { class: "num" }, money(p.late_fee, c)), h("td", { class: "num" }, money(p.penalty, c)),
        h("td", {}, when(p.paid_at)), h("td", { class: "hash" }, p.tx_hash))), "No payments.", 8);

    // The check recomputes the loan from its events and compares with the node: slower, so drawn after.
    const badge = $("#loan-verify");
    badge.className = "badge";
    badge.textContent = "checking…";
    delete badge.dataset.ok;
    $("#loan-verify-details").replaceChildren();
    let result;
    try {
      result = await api(`/v1/audit/verify/state?loan_id=${id}`);
    } catch (error) {
      result = { ok: false, checked: 0, details: [`the check could not run: ${error.message}`] };
    }
    if (gen !== generation) return;
    badge.className = `badge ${result.ok ? "ok" : "bad"}`;
    badge.textContent = result.ok ? "pass: matches the chain" : "FAIL";
    badge.dataset.ok = result.ok;
    $("#loan-verify-details").replaceChildren(...result.details.map((line) => h("li", {}, line)));
  }

  // ------------------------------------------------------------------------------------------ decisions

  // What an operator may decide about a loan in each state: [route verb, button text, prepared action].
  const LOAN_DECISIONS = {
    Requested: [["approve", "Approve", "loan.approve"], ["reject", "Reject", "loan.reject"]],
    Active: [["declare-default", "Declare default", "loan.declare_default"]],
    Defaulted: [["write-off", "Write off", "loan.write_off"]],
  };
  let pendingDecision = null; // the prepared decision on review, and what signing it does

  function renderDecisions(loan) {
    const choices = session.roles.includes("operator") ? LOAN_DECISIONS[loan.status] || [] : [];
    $("#loan-decisions").hidden = !choices.length;
    $("#decision-reason-label").hidden = !choices.some(([verb]) => verb === "reject");
    $("#decision-reason").value = "";
    $("#decision-buttons").replaceChildren(...choices.map(([verb, label, action]) =>
      h("button", { type: "button", id: `decide-${verb}`, onclick: () => reviewLoanDecision(loan.id, verb, action) },
        label)));
    closeReview();
  }

  async function reviewLoanDecision(loanId, verb, action) {
    const extra = {};
    if (verb === "reject") {
      extra.reason = $("#decision-reason").value.trim();
      if (!extra.reason) return notice("A rejection needs a reason.");
    }
    return reviewDecision(action, { loan_id: loanId }, `/v1/operator/loans/${loanId}/${verb}`, extra);
  }

  // Asks the server what to sign, and shows its summary: nothing is signed until the person says so.
  async function reviewDecision(action, params, path, extra = {}) {
    try {
      const prepared = await prepare(api, action, { ...params, ...extra });
      pendingDecision = { prepared, path, extra };
      $("#review-summary").textContent = prepared.summary;
      $("#review-calls").replaceChildren(...(prepared.requests.length > 1
        ? prepared.requests.map((r) => h("li", {}, r.summary)) : []));
      $("#review").hidden = false;
      notice("");
    } catch (error) {
      notice(`The decision cannot be prepared: ${error.message}`);
    }
  }

  function closeReview() {
    pendingDecision = null;
    $("#review").hidden = true;
  }

  async function signDecision() {
    const decision = pendingDecision;
    if (!decision) return;
    if (!window.ethereum) return notice("No browser wallet (window.ethereum) to sign with.");
    try {
      const signed = await signAll(window.ethereum, session.address, decision.prepared);
      const answer = await api(decision.path, { method: "POST", idempotencyKey: crypto.randomUUID(),
        body: decisionBody(signed, { extra: decision.extra }) });
      closeReview();
      await route();
      notice(outcome(decision.prepared, answer));
    } catch (error) {
      notice(`The decision was not made: ${error.message || error}`);
    }
  }

  // What a decision's answer says in words: done, proposed (awaiting a second person), or confirmed.
  function outcome(prepared, answer) {
    if (answer.state === "awaiting confirmation") {
      return `${answer.summary}: proposed by ${answer.proposer}; a second ${answer.role} must confirm it by ` +
        `${when(answer.expires_at)} UTC`;
    }
    if (answer.state === "executed") {
      return `${answer.summary}: confirmed by ${answer.confirmer}, proposed by ${answer.proposer}`;
    }
    return `${prepared.summary}: done, signed by ${answer.signed_by}` + (answer.decision ? ` (${answer.decision})` : "");
  }

  // ------------------------------------------------------------------------------------------ four eyes

  async function renderProposals(gen) {
    const { proposals } = await api("/v1/operator/proposals");
    if (gen !== generation) return;
    show("view-proposals");
    const tbody = $("#proposals-table tbody");
    fill(tbody, proposals.map((p) => h("tr", { "data-proposal-id": p.proposal_id, "data-proposer": p.proposer },
      h("td", {}, p.summary), h("td", { class: "mono" }, p.proposer), h("td", {}, `a second ${p.role}`),
      h("td", {}, when(p.expires_at)),
      h("td", {}, h("button", { type: "button", class: "confirm-proposal",
        onclick: () => reviewDecision("proposal.confirm", { proposal_id: p.proposal_id },
          `/v1/operator/proposals/${p.proposal_id}/confirm`) }, "Confirm")))),
    "Nothing awaits confirmation.", 5);
  }

  // ------------------------------------------------------------------------------------------ hardship reschedules

  const REASONS = { income_loss: "loss of income", illness: "illness", family: "family matters",
    disaster: "disaster", other: "other" };
  const OFFER_DAYS = 7; // how long an offer stays open unless the operator says otherwise (days of chain time)

  // Where a loan's reschedule stands: its latest offer, against the reschedules the chain recorded and chain time.
  // The installment amount is the loan book's own, from the RescheduleOffered event (nothing computed here).
  function offerState(loan, status, now) {
    const offer = status.offer;
    if (!offer) return { state: "none", text: "none yet" };
    const offered = loan.events.filter((e) => e.name === "RescheduleOffered" && e.args.offerId === offer.offer_id)
      .pop();
    const terms = `offer #${offer.offer_id}: ${offer.installments} installments` +
      (offered ? ` of about ${money(offered.args.installmentAmount, loan.currency)}` : "");
    if (status.reschedules.some((r) => r.offer_id === offer.offer_id)) {
      return { state: "accepted", text: `${terms}, accepted by the borrower: the new schedule is in force` };
    }
    if (offer.open && offer.expires_at > now) {
      return { state: "open", text: `${terms}, awaiting the borrower's signature until ${when(offer.expires_at)} UTC` };
    }
    return { state: "lapsed", text: `${terms}, expired ${when(offer.expires_at)} UTC without acceptance` };
  }

  // The requests grouped by loan (the latest first), each with the loan, its product and its offer.
  async function renderReschedules(gen) {
    const [{ requests }, report] = await Promise.all([
      api("/v1/operator/reschedule-requests"), api("/v1/audit/report/portfolio")]);
    const byLoan = new Map();
    for (const asked of requests) byLoan.set(asked.loan_id, [...(byLoan.get(asked.loan_id) || []), asked]);
    const loans = await Promise.all([...byLoan.keys()].map(async (id) => {
      const [loan, status] = await Promise.all([api(`/v1/audit/loans/${id}`), api(`/v1/loans/${id}/reschedule`)]);
      const product = loan.product_id
        ? await api(`/v1/products/${loan.product_id}?version=${loan.product_version}`) : null;
      return { loan, status, product, asked: byLoan.get(id) };
    }));
    if (gen !== generation) return;
    show("view-reschedules");
    const now = report.as_of; // chain time: offers expire by the chain's clock, not the browser's
    const mayOffer = session.roles.includes("operator");
    loans.sort((a, b) => b.asked.at(-1).at - a.asked.at(-1).at);
    fill($("#reschedules-table tbody"), loans.map(({ loan, status, product, asked }) => {
      const latest = asked.at(-1);
      const offer = offerState(loan, status, now);
      const every = loan.frequency === "Monthly" ? "monthly" : `every ${Math.round(loan.interval / 86400)} days`;
      return h("tr", { "data-loan-id": loan.id, "data-offer-state": offer.state, "data-status": loan.status },
        h("td", { class: "num" }, h("a", { href: `#/loans/${loan.id}` }, `#${loan.id}`)),
        h("td", {}, borrowerLink(latest.borrower)),
        h("td", {}, when(Math.floor(latest.at / 1000)), asked.length > 1 ? ` (asked ${asked.length} times)` : ""),
        h("td", {}, latest.installments ? `${latest.installments} installments` : "no preference"),
        h("td", {}, REASONS[latest.reason] || latest.reason),
        h("td", {}, state(loan.status), ` ${loan.paid_installments} of ${loan.installments} paid, ${every}; `,
          `${money(outstanding(loan), loan.currency)} outstanding`),
        h("td", { class: "offer-state" }, offer.text),
        h("td", {}, offerForm(loan, product, offer, mayOffer, latest, now)));
    }), "No borrower has asked for a reschedule.", 8);
  }

  function offerForm(loan, product, offer, mayOffer, latest, now) {
    if (!mayOffer) return h("span", { class: "muted" }, "operators offer");
    if (loan.status !== "Active") return h("span", { class: "muted" }, "only an active loan is rescheduled");
    if (offer.state === "open") return h("span", { class: "muted" }, "wait for the borrower, or for the offer to expire");
    if (offer.state === "accepted") return h("span", { class: "muted" }, "done");
    const longest = product ? product.max_installments : 720;
    const installments = h("input", { type: "number", name: "installments", class: "offer-installments",
      min: 1, max: longest, required: "", value: latest.installments || "" });
    const days = h("input", { type: "number", name: "days", class: "offer-days", min: 1, max: 90, required: "",
      value: OFFER_DAYS });
    const form = h("form", { class: "offer-form", "data-loan-id": loan.id },
      h("label", {}, "Installments from the next due date ", installments),
      h("label", {}, `open for (days) `, days),
      h("span", { class: "muted" }, `at the product's interval; at most ${longest} installments in all`),
      h("button", { type: "submit", class: "review-offer" }, "Review offer"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const expiresAt = now + Number(days.value) * 86400;
      reviewDecision("loan.reschedule_offer", { loan_id: loan.id },
        `/v1/operator/loans/${loan.id}/reschedule-offer`,
        { installments: Number(installments.value), expires_at: expiresAt });
    });
    return form;
  }

  async function renderBorrower(gen, address) {
    const [borrower, loans] = await Promise.all([
      api(`/v1/audit/borrowers/${address}`),
      allPages("/v1/audit/loans", "loans", { borrower: address }),
    ]);
    if (gen !== generation) return;
    show("view-borrower");
    const currency = loans.length ? loans[0].currency : null; // limits are in the book's minor units
    $("#borrower-title").textContent = `Borrower ${borrower.address}`;
    facts($("#borrower-facts"), [
      ["Address", h("span", { class: "mono" }, borrower.address)],
      ["Identity commitment",
        h("span", { class: "mono", id: "borrower-commitment" }, borrower.identity_commitment || "—")],
      ["Registered", borrower.registered ? `yes, since ${when(borrower.registered_at)}` : "no"],
      ["KYC expires", when(borrower.kyc_expires_at)],
      ["Revoked", borrower.revoked ? `yes: ${borrower.revoked_reason || "no reason given"}` : "no"],
      ["Score", borrower.score === null ? "—"
        : `${borrower.score} (model ${borrower.model_version}, ${when(borrower.score_updated_at)})`],
      ["Score age", borrower.score_age === null || borrower.score_age === undefined ? "—"
        : `${(borrower.score_age / 86400).toFixed(1)} days`],
      ["Credit limit", borrower.credit_limit === null ? "—" : money(borrower.credit_limit, currency)],
    ]);
    fill($("#score-history tbody"), borrower.score_history.map((score) =>
      h("tr", {}, h("td", { class: "num" }, score.score),
        h("td", { class: "num" }, money(score.credit_limit, currency)),
        h("td", { class: "num" }, score.model_version), h("td", { class: "num" }, score.report_id),
        h("td", { class: "num" }, score.block_number), h("td", {}, when(score.block_time)),
        h("td", { class: "hash" }, score.tx_hash))), "No scores.", 7);
    fill($("#borrower-loans tbody"), loans.map((loan) =>
      h("tr", { "data-loan-id": loan.id, "data-status": loan.status },
        h("td", { class: "num" }, h("a", { href: `#/loans/${loan.id}` }, `#${loan.id}`)),
        h("td", {}, state(loan.status)), h("td", { class: "num" }, money(loan.principal, loan.currency)),
        h("td", { class: "num" }, money(outstanding(loan), loan.currency)),
        h("td", { class: "num" }, loan.days_past_due))), "No loans.", 5);
  }

  // ------------------------------------------------------------------------------------------ suspense & reconciliation

  const SUSPENSE_LIMIT = 1000; // the suspense list's largest page (newest first)
  const CATEGORY_ORDER = ["rail_only", "chain_only", "amount_differs", "matched"]; // what needs a look first

  function yesterdayUtc() {
    return new Date(Date.now() - 86400 * 1000).toISOString().slice(0, 10);
  }

  // Loan ids are uint256 and JSON numbers are doubles: one past 2**53 is shown as not a usable id.
  const loanId = (id) => (id === null || id === undefined ? "—"
    : Number.isSafeInteger(id) && id > 0 ? `#${id}` : `not a loan id (${id})`);

  function resolveCommand(item) {
    if (item.state === "open") {
      return [h("code", {}, `loanledger operator refund ${item.id}`), " or ",
        h("code", {}, `loanledger operator apply ${item.id} --loan LOAN`)];
    }
    if (item.state === "refunding") return h("code", {}, `loanledger operator refund ${item.id}`); // asks the rail again
    return "—";
  }

  function refundText(refund) {
    if (!refund) return "—";
    return `${refund.state}${refund.refund_reference ? ` ${refund.refund_reference}` : ""}`;
  }

  async function renderMoney(gen, day) {
    const [items, recon, overpaid, creditRefunds] = await Promise.all([
      api(`/v1/operator/suspense?limit=${SUSPENSE_LIMIT}`).then((page) => page.items),
      api(`/v1/audit/reconciliation?date=${day}`).catch((error) => ({ error })),
      allPages("/v1/audit/loans", "loans", { status: "Overpaid" }),
      api(`/v1/operator/credit-refunds?limit=${SUSPENSE_LIMIT}`).then((page) => page.orders),
    ]);
    if (gen !== generation) return;
    show("view-money");
    const open = items.filter((item) => item.state === "open" || item.state === "refunding");
    const owed = {}; // open amounts per currency, in minor units
    for (const item of open) owed[item.currency] = (owed[item.currency] || 0) + item.amount;
    const stat = (id, label, value, note) =>
      h("div", { class: "stat", id }, h("div", { class: "label" }, label), h("div", { class: "value" }, value),
        note ? h("div", { class: "muted" }, note) : null);
    $("#suspense-stats").replaceChildren(
      stat("stat-suspense-open", "Open suspense items", open.length, "open or refunding"),
      stat("stat-suspense-amount", "Held, not yet resolved",
        Object.keys(owed).length ? Object.entries(owed).map(([c, minor]) => money(minor, c)).join(", ") : "—"),
      stat("stat-suspense-resolved", "Resolved", items.length - open.length, "refunded or applied"),
    );
    fill($("#suspense-table tbody"), items.map((item) =>
      h("tr", { "data-item-id": item.id, "data-state": item.state, "data-reference": item.reference },
        h("td", { class: "num" }, item.id),
        h("td", {}, state(item.state)),
        h("td", { class: "reason", title: item.detail || "" }, item.reason),
        h("td", { class: "num amount" }, money(item.amount, item.currency)),
        h("td", { class: "mono" }, item.reference),
        h("td", { class: "num" }, loanId(item.loan_id)),
        h("td", {}, when(item.received_at)),
        h("td", { class: "refund" }, refundText(item.refund)),
        h("td", { class: "resolve" }, resolveCommand(item)))), "Nothing in suspense.", 9);

    // Credit: every Overpaid loan (credit still held) and every refund order, newest first.
    const orderOf = {};
    for (const order of creditRefunds) if (!(order.loan_id in orderOf)) orderOf[order.loan_id] = order;
    const held = {};
    for (const loan of overpaid) held[loan.currency] = (held[loan.currency] || 0) + loan.credit_balance;
    $("#credit-stats").replaceChildren(
      stat("stat-credit-loans", "Overpaid loans", overpaid.length, "credit not yet paid back"),
      stat("stat-credit-held", "Credit held",
        Object.keys(held).length ? Object.entries(held).map(([c, minor]) => money(minor, c)).join(", ") : "—"),
      stat("stat-credit-refunded", "Refunds settled", creditRefunds.filter((o) => o.state === "settled").length,
        "confirmed on-chain"),
    );
    const creditRows = [
      ...overpaid.map((loan) => ({ loan_id: loan.id, amount: loan.credit_balance, currency: loan.currency,
        order: orderOf[loan.id] })),
      ...creditRefunds.filter((o) => !overpaid.some((loan) => loan.id === o.loan_id))
        .map((order) => ({ loan_id: order.loan_id, amount: order.amount, currency: order.currency, order })),
    ];
    fill($("#credit-table tbody"), creditRows.map((row) =>
      h("tr", { "data-loan-id": row.loan_id, "data-order-state": row.order ? row.order.state : "none" },
        h("td", { class: "num" }, loanId(row.loan_id)),
        h("td", { class: "num amount" }, money(row.amount, row.currency)),
        h("td", {}, row.order ? state(row.order.state) : "none yet"),
        h("td", { class: "mono" }, row.order && row.order.refund_reference ? row.order.refund_reference : "—"),
        h("td", { class: "mono" }, row.order ? row.order.ordered_by : "—"),
        h("td", { class: "resolve" }, row.order && row.order.state !== "failed" ? "—"
          : h("code", {}, `loanledger operator refund-credit ${row.loan_id}`)))),
      "No credit held, none refunded.", 6);

    $("#recon-date").value = day;
    const status = $("#recon-status");
    if (recon.error) {
      status.textContent = `Reconciliation for ${day} unavailable: ${recon.error.message}`;
      status.dataset.ok = "false";
      $("#recon-stats").replaceChildren();
      fill($("#recon-table tbody"), [], "No report.", 8);
      return;
    }
    const reports = recon.reports;
    const counts = Object.fromEntries(CATEGORY_ORDER.map((c) => [c, 0]));
    for (const report of reports) for (const [c, n] of Object.entries(report.counts)) counts[c] += n;
    const balanced = reports.every((report) => report.balanced);
    status.textContent = `${day}: ${reports.map((r) => `${r.provider} ${r.statement_lines} statement line(s)`)
      .join(", ") || "no provider publishes statements"}; ${balanced ? "balanced" : "NOT balanced"}.` +
      Object.entries(recon.skipped).map(([name, why]) => ` Skipped ${name}: ${why}.`).join("");
    status.dataset.ok = String(balanced);
    $("#recon-stats").replaceChildren(
      stat("stat-recon-matched", "Matched", counts.matched),
      stat("stat-recon-rail_only", "On the rail, not on-chain", counts.rail_only),
      stat("stat-recon-chain_only", "On-chain, not on the rail", counts.chain_only),
      stat("stat-recon-amount_differs", "Amount differs", counts.amount_differs),
    );
    const rows = reports.flatMap((report) => report.rows)
      .sort((a, b) => CATEGORY_ORDER.indexOf(a.category) - CATEGORY_ORDER.indexOf(b.category));
    const why = (row) => [row.outbox_status ? `outbox: ${row.outbox_status}${row.outbox_reason ? ` (${row.outbox_reason})` : ""}` : null,
      row.suspense_item_id ? `suspense item ${row.suspense_item_id}: ${row.suspense_state}` : null,
      row.category === "rail_only" && row.direction === "refund"
        ? "a refund not confirmed yet (a credit refund on-chain, a suspense refund by its refund order)" : null,
      row.category === "rail_only" && row.direction !== "refund" && !row.outbox_status && !row.suspense_item_id
        ? "no webhook received" : null]
      .filter(Boolean).join("; ") || "—";
    fill($("#recon-table tbody"), rows.map((row) =>
      h("tr", { "data-category": row.category, "data-reference": row.reference || row.payment_ref },
        h("td", { class: `cat cat-${row.category}` }, row.category),
        h("td", {}, row.provider || "—"),
        h("td", { class: "mono ref" }, row.reference || row.payment_ref),
        h("td", {}, [row.direction, row.kind].filter(Boolean).join(" / ") || "—"),
        h("td", { class: "num" }, loanId(row.loan_id)),
        h("td", { class: "num" }, money(row.rail_amount, row.currency)),
        h("td", { class: "num" }, money(row.ledger_amount, row.currency)),
        h("td", { class: "why" }, why(row)))), "The rail moved nothing that day and the chain credited nothing.", 8);
  }

  function reconcileDay(event) {
    event.preventDefault();
    location.hash = `#/money?date=${$("#recon-date").value}`;
  }

  const isStaff = () => session.roles.some((role) => role === "operator" || role === "admin");

  async function route() {
    const gen = ++generation;
    document.body.dataset.state = "loading";
    if (!session) {
      renderSignIn();
      document.body.dataset.state = "ready";
      return;
    }
    $("#who").hidden = false;
    $("#nav").hidden = !session.roles.some((role) => READ_ALL.includes(role));
    $("#nav-proposals").hidden = !isStaff();
    $("#who-address").textContent = session.address;
    $("#who-roles").textContent = session.roles.join(", ");
    if (!session.roles.some((role) => READ_ALL.includes(role))) {
      show("view-forbidden");
      $("#forbidden-text").textContent = `${session.address} holds the roles ${session.roles.join(", ") || "none"}; ` +
        `the dashboard needs one of ${READ_ALL.join(", ")}.`;
      document.body.dataset.state = "ready";
      return;
    }
    const hash = location.hash || "#/";
    let match;
    try {
      if (!RUNNING.length) RUNNING = (await api("/v1/audit/report/portfolio").catch(() => ({}))).running_statuses || [];
      if ((match = hash.match(/^#\/loans\/(\d+)$/))) await renderLoan(gen, Number(match[1]));
      else if ((match = hash.match(/^#\/borrowers\/(0x[0-9a-fA-F]{40})$/))) await renderBorrower(gen, match[1]);
      else if (hash === "#/products") await renderProducts(gen);
      else if (hash === "#/proposals" && isStaff()) await renderProposals(gen);
      else if (hash === "#/reschedules") await renderReschedules(gen);
      else if ((match = hash.match(/^#\/money(?:\?date=(\d{4}-\d{2}-\d{2}))?$/))) {
        await renderMoney(gen, match[1] || yesterdayUtc());
      }
      else await renderPortfolio(gen);
    } catch (error) {
      if (gen !== generation) return;
      if (error.status === 401) return signOut(`Signed out: ${error.message}`);
      notice(error.message);
    }
    if (gen === generation) document.body.dataset.state = "ready";
  }

  async function start() {
    $("#wallet-login").addEventListener("click", walletLogin);
    $("#dev-form").addEventListener("submit", devLogin);
    $("#recon-form").addEventListener("submit", reconcileDay);
    $("#sign-out").addEventListener("click", () => signOut());
    $("#review-sign").addEventListener("click", signDecision);
    $("#review-cancel").addEventListener("click", closeReview);
    window.addEventListener("hashchange", route);
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
      session = JSON.parse(saved);
      try { // roles may have changed on-chain since the page was last open
        const me = await api("/v1/auth/me");
        session.roles = me.roles;
      } catch {
        session = null;
        sessionStorage.removeItem(TOKEN_KEY);
      }
    }
    route();
  }

  // For the browser test and the curious: the pieces that must agree with the server.
  window.LoanLedgerDashboard = { checksumAddress: getAddress, money };
  document.addEventListener("DOMContentLoaded", start);
})();

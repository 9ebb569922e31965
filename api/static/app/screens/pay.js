// Pay now: what the loan book says is owed, paid through the rail's hosted checkout. The app sends the borrower to
// the checkout link the API made (it returns only to this app), and on the way back shows the payment as received
// and being recorded until the loan shows it applied (rail webhook -> oracle -> chain -> indexer). The helpers
// below are shared by the other screens of the pay area (payoff, debit, hardship).
import { facts, field, h } from "../core/dom.js";

const PENDING = "loanledger.app.pay.pending";
const POLL_MS = 1500;
const POLL_TRIES = 200;

// What the loan's payments have reached so far, compared as text: a change means a payment was applied.
const paidMark = (loan) => [loan.status, loan.principal_repaid, loan.interest_paid, loan.late_fee_paid,
                            loan.penalty_paid, loan.credit_balance].join("/");

export function loanIdOf(params) {
  const id = Number.parseInt(params.loan, 10);
  if (!Number.isSafeInteger(id) || id < 1) throw new Error("no_loan");
  return id;
}

// The rail's answer on the way back (`?rail_status=paid&rail_reference=...` before the app's #route).
function railReturn() {
  const search = new URLSearchParams(location.search);
  return search.has("rail_status") ? { status: search.get("rail_status"), reference: search.get("rail_reference") }
    : null;
}

function forgetRailReturn() {
  history.replaceState(null, "", `${location.pathname}${location.hash}`);
}

// A link to the rail's checkout for what the API answered (`instructions.checkout_url`), remembering the loan's
// payments as they are so the return can tell when the payment is applied.
export function checkoutLink({ t, fmt }, loan, instructions, id) {
  if (!instructions.checkout_url) return h("p", { class: "lead", id: `${id}-nothing` }, t("pay.nothing_to_pay"));
  return h("a", {
    class: "button primary", id, href: instructions.checkout_url,
    onclick: () => sessionStorage.setItem(PENDING, JSON.stringify({ loan: loan.id, mark: paidMark(loan) })),
  }, t("pay.checkout", { amount: fmt.money(instructions.checkout_amount, instructions.currency) }));
}

// Back from the rail: "received, being recorded", then the loan as it stands once the payment is applied.
export function recording(ctx, loanId) {
  const back = railReturn();
  if (!back) return null;
  forgetRailReturn();
  const { t, fmt, api } = ctx;
  if (back.status !== "paid") {
    return h("div", { class: "notice pay-status", id: "pay-status", "data-state": "cancelled", role: "status" },
             t("pay.cancelled"));
  }
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  } catch {
    pending = null;
  }
  const status = h("div", { class: "notice pay-status", id: "pay-status", "data-state": "recording", role: "status" },
    h("p", { class: "pay-headline" }, t("pay.received")),
    h("p", {}, t("pay.recording")),
    h("p", { class: "hint" }, t("pay.reference", { reference: back.reference || "—" })));
  let tries = 0;
  let shown = false;
  const poll = async () => {
    if (status.isConnected) shown = true;
    else if (shown) return; // the borrower went elsewhere
    tries += 1;
    try {
      const loan = await api.get(`/v1/loans/${loanId}`);
      if (!pending || pending.loan !== loanId || paidMark(loan) !== pending.mark) {
        sessionStorage.removeItem(PENDING);
        status.dataset.state = "applied";
        status.replaceChildren(
          h("p", { class: "pay-headline" }, loan.status === "Repaid" ? t("pay.applied_repaid") : t("pay.applied")),
          facts([[t("pay.loan_status"), t(`pay.status.${loan.status}`)],
                 [t("pay.principal_repaid"), fmt.money(loan.principal_repaid, loan.currency)],
                 [t("pay.interest_paid"), fmt.money(loan.interest_paid, loan.currency)],
                 [t("pay.next_due"), fmt.date(loan.next_due_at)]], { id: "pay-applied" }));
        return;
      }
    } catch {
      // offline for a moment: keep waiting
    }
    if (tries >= POLL_TRIES) {
      status.dataset.state = "waiting";
      status.append(h("p", {}, t("pay.still_recording")));
      return;
    }
    setTimeout(poll, POLL_MS);
  };
  setTimeout(poll, 0);
  return status;
}

// The repayment instructions with a checkout for `pay` ("due" or "payoff"), returning to `route` of this app.
export function instructions(api, loanId, pay, route) {
  const back = `${location.origin}/app/#/${route}?loan=${loanId}`;
  return api.get(`/v1/loans/${loanId}/repayment-instructions?${new URLSearchParams({ pay, return_to: back })}`);
}

// A step-up code: "text me a code" for `action` and `params`, then the field to type it in. `code()` reads it.
export function stepUp({ t, api, busy }, action, params, id) {
  const problem = h("div", { class: "problem" });
  const code = field(t("pay.code"), { name: `${id}-code`, id: `${id}-code`, inputmode: "numeric",
                                      autocomplete: "one-time-code", maxlength: "8" });
  const sent = h("p", { class: "hint", id: `${id}-sent`, role: "status" });
  const send = h("button", { type: "button", class: "secondary", id: `${id}-send` }, t("pay.send_code"));
  send.addEventListener("click", () => busy(send, problem, async () => {
    const answer = await api.post("/v1/step-up", { action, params: params() });
    sent.textContent = t("pay.code_sent", { phone: answer.sent_to });
  }));
  return { node: h("div", { class: "pay-stepup" }, send, sent, code.node, problem), code: () => code.input.value.trim() };
}

// What a signature is over, one tap away from the words.
export function rawTypedData(t, typed, id) {
  return h("details", { class: "pay-raw", id },
    h("summary", {}, t("pay.show_signed")),
    h("pre", { tabindex: "0", "aria-label": t("pay.show_signed") }, JSON.stringify(typed, null, 2)));
}

export function loanLinks(t, loanId, here) {
  const links = [["pay", "pay.link_pay"], ["payoff", "pay.link_payoff"], ["debit", "pay.link_debit"],
                 ["hardship", "pay.link_hardship"]].filter(([route]) => route !== here);
  return h("nav", { class: "pay-links", "aria-label": t("pay.more") },
    ...links.map(([route, label]) => h("a", { href: `#/${route}?loan=${loanId}`, id: `link-${route}` }, t(label))));
}

export default {
  route: "pay",
  needs: "session",
  async render(ctx) {
    const { t, fmt, api, params } = ctx;
    const loanId = loanIdOf(params);
    const back = recording(ctx, loanId);
    const [loan, due, how] = await Promise.all([api.get(`/v1/loans/${loanId}`), api.get(`/v1/loans/${loanId}/due`),
                                                instructions(api, loanId, "due", "pay")]);
    const money = (minor) => fmt.money(minor, due.currency);
    const owed = due.total > 0
      ? facts([[t("pay.due_now"), money(due.total)], [t("pay.principal"), money(due.principal)],
               [t("pay.interest"), money(due.interest)], [t("pay.late_fee"), money(due.late_fee)],
               [t("pay.penalty"), money(due.penalty)], [t("pay.oldest_due"), fmt.date(due.oldest_due_at)]],
              { id: "pay-due" })
      : facts([[t("pay.due_now"), money(0)], [t("pay.next_due"), fmt.date(due.next_due_at)],
               [t("pay.owed_at_next_due"), money(due.owed_at_next_due)]], { id: "pay-due" });
    return h("section", { class: "pay" },
      h("h1", {}, t("pay.title", { loan: loanId })),
      back,
      h("div", { class: "card" },
        h("p", { class: "lead" }, due.total > 0 ? t("pay.explain_due") : t("pay.explain_ahead")),
        owed,
        loan.status === "Active" ? checkoutLink(ctx, loan, how, "pay-checkout")
          : h("p", { class: "lead" }, t(`pay.status.${loan.status}`)),
        h("p", { class: "hint" }, t("pay.how_applied"))),
      loanLinks(t, loanId, "pay"));
  },
};

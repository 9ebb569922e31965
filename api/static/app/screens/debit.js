// Automatic debit: the mandate in force for this loan (card masked, ceiling, until when) and its debits; setting
// one up (a step-up code, then the borrower signs the DebitMandate the API writes: the app builds no typed data)
// or revoking it (the RevokeDebitMandate the API writes, signed).
import { facts, field, h } from "../core/dom.js";
import { minorToDecimal } from "../core/format.js";
import { idempotencyKey } from "../core/api.js";
import { loanIdOf, loanLinks, rawTypedData, stepUp } from "./pay.js";

function current(ctx, loanId, status, currency) {
  const { t, fmt, api, wallet, busy, go } = ctx;
  const m = status.mandate;
  const problem = h("div", { class: "problem" });
  const revoke = h("button", { type: "button", class: "secondary", id: "debit-revoke" }, t("pay.debit_revoke"));
  revoke.addEventListener("click", () => busy(revoke, problem, async () => {
    const signature = await wallet.signTypedData(status.revocation_to_sign);
    await api.call("DELETE", `/v1/loans/${loanId}/debit-mandate`, { body: { signature } });
    go("debit", { loan: String(loanId), done: "revoked" });
  }));
  return h("div", { class: "card", id: "debit-mandate", "data-nonce": String(m.nonce) },
    h("h2", {}, t("pay.debit_in_force")),
    facts([[t("pay.debit_card"), m.card], [t("pay.debit_max"), fmt.money(m.max_amount, currency)],
           [t("pay.debit_until"), fmt.date(m.valid_until)], [t("pay.debit_since"), fmt.dateTime(m.created_at)]]),
    problem, revoke,
    status.revocation_to_sign ? rawTypedData(t, status.revocation_to_sign, "debit-revoke-raw") : null);
}

function setUp(ctx, loanId, proposal) {
  const { t, fmt, api, wallet, busy, go } = ctx;
  const problem = h("div", { class: "problem" });
  const ceiling = field(t("pay.debit_max_field"), { name: "max-amount", id: "debit-max", inputmode: "decimal",
                                                    value: minorToDecimal(proposal.max_amount, proposal.currency) },
                        t("pay.debit_max_hint"));
  const words = h("p", { class: "pay-words", id: "debit-words" });
  const raw = h("div");
  let shown = proposal;
  const show = (terms) => {
    shown = terms;
    words.textContent = t("pay.debit_words", { card: terms.card, loan: loanId,
                                              amount: fmt.money(terms.max_amount, terms.currency),
                                              until: fmt.date(terms.valid_until) });
    raw.replaceChildren(rawTypedData(t, terms.typed_data, "debit-raw"));
  };
  show(proposal);
  const terms = async () => {
    const minor = ctx.fmt.decimalToMinor(ceiling.input.value, proposal.currency);
    if (!minor) throw new Error("invalid_amount");
    return api.get(`/v1/loans/${loanId}/debit-mandate/typed-data?${new URLSearchParams(
      { max_amount: String(minor), valid_until: String(proposal.valid_until) })}`);
  };
  ceiling.input.addEventListener("change", () => terms().then(show).catch(() => {}));
  const code = stepUp(ctx, "debit_mandate", () => ({ loan_id: loanId }), "debit");
  const sign = h("button", { type: "submit", class: "primary", id: "debit-sign" }, t("pay.debit_sign"));
  const form = h("form", { class: "card", id: "debit-form" },
    h("h2", {}, t("pay.debit_set_up")), h("p", { class: "lead" }, t("pay.debit_explain")),
    ceiling.node, words, raw, code.node, problem, sign);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(sign, problem, async () => {
      const fresh = await terms(); // the next nonce and the card as bound now
      show(fresh);
      const signature = await wallet.signTypedData(fresh.typed_data);
      await api.post(`/v1/loans/${loanId}/debit-mandate`, {
        card: fresh.card, max_amount: fresh.max_amount, valid_until: fresh.valid_until, nonce: fresh.nonce, signature,
      }, { headers: { "X-Step-Up-Code": code.code(), "Idempotency-Key": idempotencyKey() } });
      go("debit", { loan: String(loanId), done: "set" });
    });
  });
  return { node: form, shown: () => shown };
}

function debits({ t, fmt }, collections, currency) {
  if (!collections.length) return null;
  return h("div", { class: "card" }, h("h2", {}, t("pay.debit_history")),
    h("ul", { class: "pay-debits" }, collections.map((c) => h("li", {},
      `${fmt.date(c.due_at)} · ${fmt.money(c.amount, currency)} · ${t(`pay.collection.${c.status}`)}`))));
}

export default {
  route: "debit",
  needs: "session",
  async render(ctx) {
    const { t, api, params } = ctx;
    const loanId = loanIdOf(params);
    const [loan, status] = await Promise.all([api.get(`/v1/loans/${loanId}`),
                                              api.get(`/v1/loans/${loanId}/debit-mandate`)]);
    let body;
    if (status.mandate) body = current(ctx, loanId, status, loan.currency);
    else if (loan.status !== "Active") body = h("p", { class: "lead" }, t(`pay.status.${loan.status}`));
    else body = setUp(ctx, loanId, await api.get(`/v1/loans/${loanId}/debit-mandate/typed-data`)).node;
    const done = params.done ? h("p", { class: "notice", role: "status", id: "debit-done" },
                                 t(`pay.debit_done_${params.done === "set" ? "set" : "revoked"}`)) : null;
    return h("section", { class: "pay" },
      h("h1", {}, t("pay.debit_title", { loan: loanId })),
      done, h("p", { class: "lead" }, t("pay.debit_what")), body,
      debits(ctx, status.collections, loan.currency),
      loanLinks(t, loanId, "debit"));
  },
};

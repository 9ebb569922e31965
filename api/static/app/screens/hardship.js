// Hardship: ask for a longer schedule (a reason code and a step-up code), read the lender's offer in words, and
// accept it by signing the RescheduleAcceptance the API writes (the loan book re-bases the loan: nothing computed
// here). Every reschedule accepted shows the schedule it replaced and the one in force.
import { facts, field, h } from "../core/dom.js";
import { idempotencyKey } from "../core/api.js";
import { loanIdOf, loanLinks, rawTypedData, stepUp } from "./pay.js";

const REASONS = ["income_loss", "illness", "family", "disaster", "other"];

function schedule({ t, fmt }, rows, currency, id) {
  return h("table", { class: "pay-schedule", id },
    h("caption", {}, t("pay.hardship_schedule")),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("pay.col_number")), h("th", { scope: "col" }, t("pay.col_due")),
                               h("th", { scope: "col" }, t("pay.col_principal")),
                               h("th", { scope: "col" }, t("pay.col_interest")))),
    h("tbody", {}, rows.map((r) => h("tr", {}, h("td", {}, String(r.number)), h("td", {}, fmt.date(r.due_at)),
                                     h("td", {}, fmt.money(r.principal, currency)),
                                     h("td", {}, fmt.money(r.interest, currency))))));
}

function ask(ctx, loanId, loan) {
  const { t, api, busy, go } = ctx;
  const problem = h("div", { class: "problem" });
  const installments = field(t("pay.hardship_installments"), { type: "number", name: "installments",
    id: "hardship-installments", min: "1", max: "720", inputmode: "numeric", value: String(loan.installments * 2) },
    t("pay.hardship_installments_hint"));
  const reason = h("select", { id: "hardship-reason", name: "reason" },
    REASONS.map((code) => h("option", { value: code }, t(`pay.reason.${code}`))));
  const reasonField = h("div", { class: "field" }, h("label", { for: "hardship-reason" }, t("pay.hardship_reason")),
                        reason);
  const wanted = () => Number.parseInt(installments.input.value, 10) || 0;
  const code = stepUp(ctx, "reschedule_request", () => ({ loan_id: loanId, installments: wanted() }), "hardship-ask");
  const send = h("button", { type: "submit", class: "primary", id: "hardship-request" }, t("pay.hardship_send"));
  const form = h("form", { class: "card", id: "hardship-form" },
    h("h2", {}, t("pay.hardship_ask")), h("p", { class: "lead" }, t("pay.hardship_explain")),
    installments.node, reasonField, code.node, problem, send);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(send, problem, async () => {
      await api.post(`/v1/loans/${loanId}/reschedule-requests`, { installments: wanted(), reason: reason.value },
                     { headers: { "X-Step-Up-Code": code.code() } });
      go("hardship", { loan: String(loanId), done: "asked" });
    });
  });
  return form;
}

function offer(ctx, loanId, status) {
  const { t, fmt, api, wallet, busy, go } = ctx;
  const problem = h("div", { class: "problem" });
  const code = stepUp(ctx, "reschedule_accept", () => ({ loan_id: loanId }), "hardship-accept");
  const accept = h("button", { type: "submit", class: "primary", id: "hardship-sign" }, t("pay.hardship_accept"));
  const form = h("form", { class: "card", id: "hardship-offer", "data-offer": String(status.offer.offer_id) },
    h("h2", {}, t("pay.hardship_offer")),
    h("p", { class: "pay-words", id: "hardship-words" }, t("pay.hardship_offer_words", {
      installments: status.offer.installments, until: fmt.dateTime(status.offer.expires_at) })),
    h("p", { class: "hint" }, t("pay.hardship_offer_rules")),
    rawTypedData(t, status.to_sign, "hardship-raw"), code.node, problem, accept);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(accept, problem, async () => {
      const fresh = (await api.get(`/v1/loans/${loanId}/reschedule`)).to_sign; // nonce and deadline as of now
      if (!fresh || fresh.message.installments !== status.offer.installments) throw new Error("offer_changed");
      const signature = await wallet.signTypedData(fresh);
      await api.post(`/v1/loans/${loanId}/reschedule/accept`, { deadline: fresh.message.deadline, signature },
                     { headers: { "X-Step-Up-Code": code.code(), "Idempotency-Key": idempotencyKey() } });
      go("hardship", { loan: String(loanId), done: "accepted" });
    });
  });
  return form;
}

function history(ctx, status, currency) {
  const { t, fmt } = ctx;
  if (!status.reschedules.length) return null;
  const last = status.reschedules[status.reschedules.length - 1];
  const words = (s) => t("pay.hardship_shape", { installments: s.installments,
                                                amount: fmt.money(s.installment_amount, currency),
                                                next: fmt.date(s.next_due_at) });
  return h("div", { class: "card", id: "hardship-done" },
    h("h2", {}, t("pay.hardship_in_force")),
    facts([[t("pay.hardship_before"), words(last.previous)], [t("pay.hardship_after"), words(last.current)],
           [t("pay.hardship_carried"), fmt.money(last.carried_interest, currency)]],
          { id: "hardship-shapes", class: "facts pay-stacked" }),
    schedule(ctx, last.current_schedule, currency, "hardship-schedule"));
}

export default {
  route: "hardship",
  needs: "session",
  async render(ctx) {
    const { t, fmt, api, params } = ctx;
    const loanId = loanIdOf(params);
    const [loan, status] = await Promise.all([api.get(`/v1/loans/${loanId}`),
                                              api.get(`/v1/loans/${loanId}/reschedule`)]);
    const open = status.offer?.open && status.to_sign;
    const asked = status.requests.length ? h("ul", { class: "pay-asked", id: "hardship-asked" },
      status.requests.map((r) => h("li", {}, t("pay.hardship_asked", {
        installments: r.installments, reason: t(`pay.reason.${r.reason}`), at: fmt.dateTime(Math.floor(r.at / 1000)) }))))
      : null;
    const done = params.done ? h("p", { class: "notice", role: "status", id: "hardship-status" },
                                 t(`pay.hardship_done_${["asked", "accepted"].includes(params.done) ? params.done : "asked"}`))
      : null;
    let body = null;
    if (open) body = offer(ctx, loanId, status);
    else if (loan.status === "Active") body = ask(ctx, loanId, loan);
    return h("section", { class: "pay" },
      h("h1", {}, t("pay.hardship_title", { loan: loanId })),
      done, history(ctx, status, loan.currency), asked, body,
      loanLinks(t, loanId, "hardship"));
  },
};

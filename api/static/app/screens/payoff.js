// Early repayment: the exact payoff the loan book computes now (GET /v1/loans/{id}/due: the contract's
// payoffAmount, interest accrued to date only), paid through the rail's checkout as any payment is.
import { facts, h } from "../core/dom.js";
import { checkoutLink, instructions, loanIdOf, loanLinks, recording } from "./pay.js";

export default {
  route: "payoff",
  needs: "session",
  async render(ctx) {
    const { t, fmt, api, params } = ctx;
    const loanId = loanIdOf(params);
    const back = recording(ctx, loanId);
    const [loan, due] = await Promise.all([api.get(`/v1/loans/${loanId}`), api.get(`/v1/loans/${loanId}/due`)]);
    const active = loan.status === "Active";
    const how = active ? await instructions(api, loanId, "payoff", "payoff") : null;
    const money = (minor) => fmt.money(minor, loan.currency);
    return h("section", { class: "pay" },
      h("h1", {}, t("pay.payoff_title", { loan: loanId })),
      back,
      active ? h("div", { class: "card" },
        h("p", { class: "lead" }, t("pay.payoff_explain")),
        facts([[t("pay.payoff_now"), h("span", { id: "payoff-amount" }, money(due.payoff))],
               [t("pay.as_of"), fmt.dateTime(due.as_of)],
               [t("pay.principal_repaid"), money(loan.principal_repaid)],
               [t("pay.early_method"), t(`pay.early.${loan.early_repayment}`)]], { id: "payoff-facts" }),
        checkoutLink(ctx, loan, how, "payoff-checkout"),
        h("p", { class: "hint" }, t("pay.payoff_more")))
        : h("p", { class: "lead", id: "payoff-closed" }, t(`pay.status.${loan.status}`)),
      loanLinks(t, loanId, "payoff"));
  },
};

// Score and limit: what the credit oracle holds for this wallet (GET /v1/credit), with how old the score is, what
// is owed (the identity's outstanding principal, earlier wallets included) and what is available to borrow. All
// amounts are the API's (the contract's), in minor units.
import { facts, h } from "../core/dom.js";

export default {
  route: "credit",
  needs: "session",
  async render({ t, fmt, api }) {
    const credit = await api.get("/v1/credit");
    const scored = credit.score !== null && credit.score !== undefined;
    // The age on the chain's clock (the API's score_age), counted back from the phone's now.
    const scoredAt = scored ? Date.now() / 1000 - credit.score_age : null;
    return h("section", { class: "credit" },
      h("h1", {}, t("kyc.credit.title")),
      scored ? h("div", { class: "card credit-score", id: "credit-card", "data-fresh": String(credit.fresh) },
        h("p", { class: "credit-big" }, h("span", { class: "credit-label" }, t("kyc.credit.score")), " ",
          h("strong", { id: "credit-score" }, String(credit.score))),
        facts([
          [t("kyc.credit.limit"), h("span", { id: "credit-limit" }, fmt.money(credit.credit_limit))],
          [t("kyc.credit.outstanding"), h("span", { id: "credit-outstanding" },
                                          fmt.money(credit.outstanding_principal))],
          [t("kyc.credit.available"), h("span", { id: "credit-available" }, fmt.money(credit.available))],
          [t("kyc.credit.age"), h("span", { id: "credit-age" }, fmt.age(scoredAt))],
          [t("kyc.credit.updated_at"), fmt.dateTime(credit.updated_at)],
        ]),
        h("p", { class: credit.fresh ? "hint" : "kyc-warn", id: "credit-freshness" },
          t(credit.fresh ? "kyc.credit.fresh" : "kyc.credit.stale")))
        : h("div", { class: "card", id: "credit-card", "data-fresh": "false" },
          h("p", { id: "credit-unscored" }, t("kyc.credit.unscored"))),
      h("p", { class: "hint" }, t("kyc.credit.explain")),
      h("p", {}, h("a", { href: "#/kyc", id: "credit-kyc" }, t("kyc.credit.kyc_link"))));
  },
};

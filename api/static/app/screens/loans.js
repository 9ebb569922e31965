// The borrower's loans (GET /v1/loans), newest first, each with its status in words.
import { h } from "../core/dom.js";
import { statusWords } from "./loan-words.js";

export default {
  route: "loans",
  needs: "session",
  tab: { label: "loans.nav_loans", order: 40 },
  async render({ t, fmt, api }) {
    const { loans } = await api.get("/v1/loans");
    const newest = [...loans].reverse();
    return h("section", { class: "loans" },
      h("h1", {}, t("loans.loans_title")),
      newest.length ? h("ul", { class: "loan-list", id: "loan-list" }, newest.map((loan) => h("li", {
        class: "card", "data-loan": loan.id, "data-status": loan.status },
        h("a", { href: `#/loan?id=${loan.id}`, id: `loan-${loan.id}` },
          t("loans.loan_link", { id: loan.id, principal: fmt.money(loan.principal, loan.currency) })),
        h("p", { class: `status status-${loan.status}` }, statusWords(t, loan.status)))))
        : h("p", { id: "no-loans" }, t("loans.loans_none")),
      h("a", { class: "button secondary", href: "#/products" }, t("loans.loans_browse")));
  },
};

// Cancelling an application not yet paid out: the API answers the CancelLoan to sign (GET
// /v1/loans/{id}/cancel-draft: the app builds no typed data); the borrower reads it in words (the raw data one tap
// away) and the wallet signs. POST /v1/loans/{id}/cancel carries the signature with one Idempotency-Key for this
// intent, the same on every retry; the loan's page then shows it Cancelled.
import { h } from "../core/dom.js";

export default {
  route: "cancel",
  needs: "session",
  async render(ctx) {
    const { t, fmt, api, wallet, params, go, busy } = ctx;
    const id = encodeURIComponent(params.loan || "");
    const draft = await api.get(`/v1/loans/${id}/cancel-draft`);
    const { summary } = draft;
    const key = api.idempotencyKey(); // this intent's, reused on every retry from this screen
    let signature = null;             // signed once: a retry sends the same body

    const problem = h("div", { class: "problem", id: "cancel-problem" });
    const sign = h("button", { type: "submit", class: "primary", id: "sign-cancel" }, t("loans.cancel_sign"));
    const form = h("form", { class: "card", id: "cancel-form" }, sign);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(sign, problem, async () => {
        signature ??= await wallet.signTypedData(draft.typed_data);
        await api.call("POST", `/v1/loans/${id}/cancel`, {
          body: { deadline: draft.deadline, signature }, headers: { "Idempotency-Key": key } });
        go("loan", { id: summary.loan_id });
      });
    });
    return h("section", { class: "loans cancel", "data-loan": summary.loan_id },
      h("h1", {}, t("loans.cancel_title", { id: summary.loan_id })),
      h("div", { class: "words", id: "cancel-words" },
        h("p", { class: "big", id: "cancel-summary" }, t("loans.cancel_words", {
          id: summary.loan_id, principal: fmt.money(summary.principal, summary.currency),
          status: t(`loans.status.${summary.status}`) })),
        h("p", {}, t("loans.cancel_effect"))),
      h("p", { class: "hint" }, t("loans.cancel_sign_explain", { deadline: fmt.dateTime(draft.deadline) })),
      h("details", { class: "raw", id: "cancel-raw" }, h("summary", {}, t("loans.cancel_raw")),
        h("pre", { tabindex: "0" }, h("code", {}, JSON.stringify(draft.typed_data, null, 2)))),
      problem, form,
      h("p", {}, h("a", { id: "cancel-back", href: `#/loan?id=${summary.loan_id}` }, t("loans.cancel_back"))));
  },
};

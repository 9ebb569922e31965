// Applying: the API answers the LoanApplication to sign (POST /v1/loans/application-draft: the app builds no typed
// data) and its numbers; the borrower reads it in words (the raw data one tap away), asks for a step-up code texted
// to their phone, and the wallet signs. POST /v1/loans carries the signature, the code and one Idempotency-Key for
// this intent, the same on every retry (a retry of an answered application is its first answer).
import { h } from "../core/dom.js";

function words({ t, fmt }, summary) {
  const money = (minor) => fmt.money(minor, summary.currency);
  const period = summary.frequency === "Monthly" ? t("loans.period_monthly")
    : t("loans.period_days", { days: Math.round(summary.interval / 86400) });
  const main = summary.smallest_installment === summary.largest_installment
    ? t("loans.apply_words_level", { principal: money(summary.principal), installments: summary.installments,
                                     each: money(summary.first_installment), period, cost: money(summary.total_cost) })
    : t("loans.apply_words_range", { principal: money(summary.principal), installments: summary.installments,
                                     smallest: money(summary.smallest_installment),
                                     largest: money(summary.largest_installment), period,
                                     cost: money(summary.total_cost) });
  return h("div", { class: "words", id: "apply-words" },
    h("p", { class: "big", id: "apply-summary" }, main),
    h("p", { id: "apply-money" }, t("loans.apply_words_money", {
      fee: money(summary.service_fee), net: money(summary.net_paid_out), repaid: money(summary.total_repaid),
      interest: money(summary.total_interest) })));
}

export default {
  route: "apply",
  needs: "session",
  async render(ctx) {
    const { t, fmt, api, wallet, params, go, busy } = ctx;
    const intent = { product_id: Number(params.product), product_version: Number(params.version),
                     principal: Number(params.principal), installments: Number(params.installments) };
    const draft = await api.post("/v1/loans/application-draft", intent);
    const key = api.idempotencyKey(); // this intent's, reused on every retry from this screen
    let signature = null;             // signed once: a retry sends the same body

    const problem = h("div", { class: "problem", id: "apply-problem" });
    const sent = h("p", { id: "code-sent", role: "status" });
    const askCode = h("button", { type: "button", class: "secondary", id: "send-code" }, t("loans.apply_send_code"));
    askCode.addEventListener("click", () => busy(askCode, problem, async () => {
      const answer = await api.post("/v1/step-up", { action: "apply", params: {
        product_id: intent.product_id, principal: intent.principal, installments: intent.installments } });
      sent.textContent = t("loans.apply_code_sent", { phone: answer.sent_to, time: fmt.dateTime(answer.expires_at) });
      code.disabled = false;
      sign.disabled = false;
      code.focus();
    }));
    const code = h("input", { id: "step-up-code", name: "code", inputmode: "numeric", autocomplete: "one-time-code",
                              maxlength: "6", required: true, disabled: true });
    const sign = h("button", { type: "submit", class: "primary", id: "sign-apply", disabled: true },
                   t("loans.apply_sign"));
    const done = h("div", { id: "apply-done", "aria-live": "polite" });
    const form = h("form", { class: "card", id: "apply-form" },
      h("h2", {}, t("loans.apply_step_code")), askCode, sent,
      h("h2", {}, t("loans.apply_step_sign")),
      h("div", { class: "field" }, h("label", { for: "step-up-code" }, t("loans.apply_code")), code),
      sign);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(sign, problem, async () => {
        signature ??= await wallet.signTypedData(draft.typed_data);
        const answer = await api.call("POST", "/v1/loans", {
          body: { ...intent, deadline: draft.deadline, signature },
          headers: { "Idempotency-Key": key, "X-Step-Up-Code": code.value.trim() } });
        form.hidden = true;
        done.replaceChildren(h("div", { class: "card done" },
          h("h2", {}, t("loans.apply_done_title")),
          h("p", { id: "apply-status", "data-status": answer.status, "data-loan": answer.loan_id },
            t("loans.apply_done", { id: answer.loan_id, status: t(`loans.status.${answer.status}`) })),
          h("button", { type: "button", class: "primary", id: "follow-loan",
                        onclick: () => go("loan", { id: answer.loan_id }) }, t("loans.apply_follow"))));
        done.querySelector("button").focus();
      });
    });
    return h("section", { class: "loans apply" },
      h("h1", {}, t("loans.apply_title")),
      words(ctx, draft.summary),
      h("p", { class: "hint" }, t("loans.apply_sign_explain", {
        product: intent.product_id, version: intent.product_version, deadline: fmt.dateTime(draft.deadline) })),
      h("details", { class: "raw", id: "apply-raw" }, h("summary", {}, t("loans.apply_raw")),
        h("pre", { tabindex: "0" }, h("code", {}, JSON.stringify(draft.typed_data, null, 2)))),
      problem, form, done,
      // After a refusal that needs a new draft (the product changed, the signature's nonce was spent): quote again.
      h("p", {}, h("a", { id: "apply-back", href: `#/quote?${new URLSearchParams({ product: intent.product_id,
        principal: intent.principal, installments: intent.installments })}` }, t("loans.apply_back"))));
  },
};

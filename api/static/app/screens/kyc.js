// Real-name verification: where it stands (GET /v1/kyc: ledger/kyc_status.py's statuses in plain words, the expiry,
// the next step as a button) and each step the API takes: submit (or renew) the record, confirm the phone's code
// and the bank's card code, wait while the oracle registers, change the phone (a step-up code to the current
// number, then the new number's code). `#/kyc?step=<submit|verify|phone|verify-phone>` shows one step's form;
// after each step the screen shows the status the API answered.
import { busy } from "../app.js";
import { field, h } from "../core/dom.js";
import {
  APPLICATION,
  WAITING,
  attempt,
  codeField,
  identityForm,
  nextSteps,
  pollWhileWaiting,
  statusCard,
  stopPolling,
} from "./kyc-parts.js";

const VERIFIED = new Set(["registered", "expiring", "expired", "reverification_needed", "revoked"]);
// The phone's code is not asked again once confirmed (phone_verified), yet the body has a slot for it: any six
// digits fill it.
const ALREADY_CONFIRMED = "000000";

function overview(ctx, kyc) {
  const { t, go, api } = ctx;
  const problem = h("div", { class: "problem" });
  const recheck = async (event) => {
    const now = await busy(event.currentTarget, problem, () => api.get("/v1/kyc"));
    if (now && now.status !== kyc.status) go("kyc");
  };
  pollWhileWaiting(ctx, kyc);
  return h("section", { class: "kyc" },
    h("h1", {}, t("kyc.title")),
    statusCard(ctx, kyc),
    WAITING.has(kyc.status) ? h("p", { class: "kyc-wait", id: "kyc-wait" }, t(`kyc.wait.${kyc.status}`)) : null,
    problem,
    nextSteps(ctx, kyc, recheck),
    kyc.status === "none"
      ? h("p", {}, h("a", { href: "#/kyc-recovery", id: "kyc-go-recovery" }, t("kyc.recovery.link"))) : null);
}

function submitStep(ctx, kyc) {
  const { t, go, api } = ctx;
  const renewal = VERIFIED.has(kyc.status);
  const problem = h("div", { class: "problem" });
  const { form, submit, values } = identityForm(t, {
    id: "kyc-form", submitLabel: t(renewal ? "kyc.submit.renew_button" : "kyc.submit.button"),
    intro: t(renewal ? "kyc.submit.renew_intro" : "kyc.submit.intro"),
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(busy, t, submit, problem, async () => {
      const answer = await api.post("/v1/kyc", values());
      go("kyc", APPLICATION.has(answer.status) ? { step: "verify" } : {});
    });
  });
  return h("section", { class: "kyc" },
    h("h1", {}, t(renewal ? "kyc.submit.renew_title" : "kyc.submit.title")), problem, form, back(t));
}

function verifyStep(ctx, kyc) {
  const { t, go, api, fmt } = ctx;
  if (!APPLICATION.has(kyc.status)) return overview(ctx, kyc);
  const problem = h("div", { class: "problem" });
  const phoneDone = kyc.status !== "submitted";
  const phoneCode = codeField(t, "phone_code", t("kyc.verify.phone_code"),
                              t("kyc.verify.phone_code_hint", { phone: kyc.record?.phone || "" }));
  const cardCode = codeField(t, "card_code", t("kyc.verify.card_code"),
                             t("kyc.verify.card_code_hint", { card: kyc.record?.bank_card || "" }));
  const submit = h("button", { type: "submit", class: "primary", id: "kyc-verify-submit" }, t("kyc.verify.button"));
  const form = h("form", { class: "card", id: "kyc-verify-form" },
    phoneDone ? h("p", { class: "kyc-done", id: "kyc-phone-done" }, t("kyc.verify.phone_done")) : phoneCode.node,
    cardCode.node, submit);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(submit, problem, async () => {
      await api.post("/v1/kyc/verify", { phone_code: phoneDone ? ALREADY_CONFIRMED : phoneCode.input.value,
                                         card_code: cardCode.input.value });
      go("kyc");
    });
  });
  return h("section", { class: "kyc" },
    h("h1", {}, t("kyc.verify.title")),
    h("p", { class: "lead" }, t("kyc.verify.intro", { time: fmt.dateTime(kyc.codes_expire_at) })),
    problem, form,
    h("p", {}, h("a", { href: "#/kyc?step=submit", id: "kyc-resend" }, t("kyc.verify.resend"))), back(t));
}

function phoneStep(ctx, kyc) {
  const { t, go, api } = ctx;
  const problem = h("div", { class: "problem" });
  const phone = field(t("kyc.phone.new_phone"), { name: "new_phone", type: "tel", autocomplete: "tel-national",
                                                  inputmode: "tel", required: true, maxlength: "64" },
                      t("kyc.hint.phone"));
  const ask = h("button", { type: "submit", class: "primary", id: "kyc-phone-ask" }, t("kyc.phone.ask_code"));
  const sent = h("p", { class: "kyc-done", id: "kyc-phone-sent", hidden: true });
  const stepUp = codeField(t, "step_up_code", t("kyc.phone.step_up_code"), t("kyc.phone.step_up_hint"));
  const change = h("button", { type: "submit", class: "primary", id: "kyc-phone-submit" }, t("kyc.phone.button"));
  // Two forms: the code's (required) field must not hold back asking for the code.
  const second = h("form", { class: "card", id: "kyc-phone-confirm", hidden: true }, sent, stepUp.node, change);
  const form = h("form", { class: "card", id: "kyc-phone-form" }, phone.node, ask);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(ask, problem, async () => {
      const answer = await api.post("/v1/step-up", { action: "phone_change", params: { phone: phone.input.value } });
      sent.textContent = t("kyc.phone.code_sent", { phone: answer.sent_to });
      sent.hidden = false;
      second.hidden = false;
      ask.className = "secondary";
      ask.textContent = t("kyc.phone.ask_again");
      stepUp.input.focus();
    });
  });
  second.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(change, problem, async () => {
      await api.post("/v1/kyc/phone", { phone: phone.input.value },
                     { headers: { "X-Step-Up-Code": stepUp.input.value.trim() } });
      go("kyc", { step: "verify-phone" });
    });
  });
  return h("section", { class: "kyc" },
    h("h1", {}, t("kyc.phone.title")), h("p", { class: "lead" }, t("kyc.phone.intro")),
    problem, form, second, h("p", { class: "hint" }, t("kyc.phone.lost_old")), back(t));
}

function verifyPhoneStep(ctx, kyc) {
  const { t, go, api } = ctx;
  if (!kyc.next.some((step) => step.action === "verify_phone")) return overview(ctx, kyc);
  const problem = h("div", { class: "problem" });
  const code = codeField(t, "phone_change_code", t("kyc.verify_phone.code"),
                         t("kyc.verify_phone.hint", { phone: kyc.record?.phone || "" }));
  const submit = h("button", { type: "submit", class: "primary", id: "kyc-verify-phone-submit" },
                   t("kyc.verify_phone.button"));
  const form = h("form", { class: "card", id: "kyc-verify-phone-form" }, code.node, submit);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(submit, problem, async () => {
      await api.post("/v1/kyc/phone/verify", { code: code.input.value });
      go("kyc");
    });
  });
  return h("section", { class: "kyc" },
    h("h1", {}, t("kyc.verify_phone.title")),
    h("p", { class: "lead", id: "kyc-not-verified" }, t("kyc.explain.reverification_needed")),
    problem, form, back(t));
}

function back(t) {
  return h("p", {}, h("a", { href: "#/kyc", id: "kyc-back" }, t("kyc.back")));
}

const STEPS = { submit: submitStep, verify: verifyStep, phone: phoneStep, "verify-phone": verifyPhoneStep };

export default {
  route: "kyc",
  needs: "session",
  tab: { label: "kyc.tab", order: 20 },
  async render(ctx) {
    stopPolling();
    const kyc = await ctx.api.get("/v1/kyc");
    const step = STEPS[ctx.params.step] || overview;
    return step(ctx, kyc);
  },
};

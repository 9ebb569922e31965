// What the KYC screens share: the status as GET /v1/kyc gives it, shown in plain words (ledger/kyc_status.py's
// states, the expiry, the next steps as buttons), the identity form (first verification, renewal and wallet
// recovery all send the same four fields), and the wait while the oracle registers. The API validates and
// normalises every field; the hints here only help the borrower type them.
import { facts, field, h } from "../core/dom.js";

// The statuses in which nothing is the borrower's to do: the page asks the API again by itself.
export const WAITING = new Set(["registering", "recovery_pending"]);
export const APPLICATION = new Set(["submitted", "phone_verified", "card_verified"]);
const POLL_MS = 2000;

const TONE = {
  registered: "good", expiring: "warn", expired: "bad", revoked: "bad", reverification_needed: "warn",
  registering: "info", recovery_pending: "info",
};

// Where each next step of the API is done in the app (action -> kyc screen step).
const STEP_OF = { submit: "submit", renew: "submit", verify: "verify", change_phone: "phone",
                  verify_phone: "verify-phone" };

export function statusCard({ t, fmt }, kyc) {
  const record = kyc.record;
  return h("section", { class: "card kyc-status", id: "kyc-status", "data-status": kyc.status,
                        "aria-labelledby": "kyc-status-title" },
    h("h2", { class: `kyc-badge kyc-${TONE[kyc.status] || "plain"}`, id: "kyc-status-title" },
      t(`kyc.status.${kyc.status}`)),
    h("p", { id: "kyc-explain" }, t(`kyc.explain.${kyc.status}`)),
    facts([
      record && [t("kyc.field.name"), record.name],
      record && [t("kyc.field.id_number"), record.id_number],
      record && [t("kyc.field.phone"), record.phone],
      record && [t("kyc.field.bank_card"), record.bank_card],
      kyc.kyc_expires_at && [t("kyc.expires_at"), h("span", { id: "kyc-expires" }, fmt.date(kyc.kyc_expires_at))],
      kyc.renewal_opens_at && !["expired", "revoked"].includes(kyc.status)
        && [t("kyc.renewal_opens_at"), fmt.date(kyc.renewal_opens_at)],
      kyc.codes_expire_at && [t("kyc.codes_expire_at"), fmt.dateTime(kyc.codes_expire_at)],
    ]));
}

// The API's next steps as buttons (or, for a person's decision, words).
export function nextSteps({ t, go }, kyc, recheck) {
  const steps = kyc.next.map(({ action }) => {
    if (STEP_OF[action]) {
      return h("button", { type: "button", class: "secondary", id: `kyc-next-${action}`,
                           onclick: () => go("kyc", { step: STEP_OF[action] }) }, t(`kyc.next.${action}`));
    }
    if (action === "apply") {
      return h("button", { type: "button", class: "secondary", id: "kyc-next-apply", onclick: () => go("credit") },
               t("kyc.next.apply"));
    }
    if (action === "wait" || action === "wait_for_operator") {
      return h("button", { type: "button", class: "secondary", id: `kyc-next-${action}`, onclick: recheck },
               t("kyc.next.check_now"));
    }
    return h("p", { class: "kyc-support", id: `kyc-next-${action}` }, t(`kyc.next.${action}`));
  });
  const primary = steps.find((step) => step.tagName === "BUTTON");
  if (primary) primary.className = "primary";
  return h("div", { class: "kyc-next", id: "kyc-next" }, steps);
}

// While the oracle registers (or an operator confirms), ask again every few seconds; a changed status redraws the
// screen. One poll at a time: a new screen stops the last one.
let polling = null;
export function stopPolling() {
  clearInterval(polling);
  polling = null;
}

export function pollWhileWaiting({ api, go }, kyc) {
  stopPolling();
  if (!WAITING.has(kyc.status)) return;
  const hash = location.hash;
  polling = setInterval(async () => {
    if (location.hash !== hash) {
      stopPolling();
      return;
    }
    try {
      const now = await api.get("/v1/kyc");
      if (now.status !== kyc.status) {
        stopPolling();
        go("kyc");
      }
    } catch {
      // offline or the server away: the next tick asks again (the offline banner says why)
    }
  }, POLL_MS);
}

// Name, ID number, phone and bank card, as typed (the API normalises full-width digits, spaces, +86...).
export function identityForm(t, { id, submitLabel, intro }) {
  const name = field(t("kyc.field.name"), { name: "name", autocomplete: "name", required: true, maxlength: "64" });
  const idNumber = field(t("kyc.field.id_number"), { name: "id_number", autocomplete: "off", required: true,
                                                     maxlength: "64", autocapitalize: "characters",
                                                     spellcheck: "false" }, t("kyc.hint.id_number"));
  const phone = field(t("kyc.field.phone"), { name: "phone", type: "tel", autocomplete: "tel-national",
                                              inputmode: "tel", required: true, maxlength: "64" },
                      t("kyc.hint.phone"));
  const card = field(t("kyc.field.bank_card"), { name: "bank_card", autocomplete: "cc-number", inputmode: "numeric",
                                                 required: true, maxlength: "64" }, t("kyc.hint.bank_card"));
  const submit = h("button", { type: "submit", class: "primary", id: `${id}-submit` }, submitLabel);
  const form = h("form", { class: "card", id }, intro ? h("p", {}, intro) : null,
                 name.node, idNumber.node, phone.node, card.node, h("p", { class: "hint" }, t("kyc.hint.privacy")),
                 submit);
  const values = () => ({ name: name.input.value, id_number: idNumber.input.value, phone: phone.input.value,
                          bank_card: card.input.value });
  return { form, submit, values };
}

export function codeField(t, name, label, hint) {
  return field(label, { name, autocomplete: "one-time-code", inputmode: "numeric", required: true, maxlength: "12" },
               hint);
}

// The bank refusing the card says why in the API's message (card_unknown, card_holder_mismatch,
// card_phone_mismatch): the borrower is told which, in plain words, beside the error.
const CARD_REASON = /card_(unknown|holder_mismatch|phone_mismatch)/;

export async function attempt(busy, t, button, problem, work) {
  let failed = null;
  const done = await busy(button, problem, async () => {
    try {
      return await work();
    } catch (error) {
      failed = error;
      throw error;
    }
  });
  const reason = failed?.code === "card_not_verified" ? CARD_REASON.exec(failed.message || "") : null;
  const shown = problem.querySelector(".error");
  if (reason && shown) {
    shown.insertBefore(h("p", { id: "kyc-card-reason" }, t(`kyc.card_reason.${reason[0]}`)), shown.lastChild);
  }
  return done;
}

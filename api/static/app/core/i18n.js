// Every string the app shows comes from a message catalogue: messages/<area>.<locale>.json, one per area of the
// app (core, wallet, kyc, loans...), merged. Simplified Chinese by default; the choice is kept on the phone and,
// once signed in, sent to the API (PUT /v1/me/language) so the SMS notices speak the same language.

export const LOCALES = ["zh-CN", "en"];
export const AREAS = ["core", "wallet", "kyc", "loans", "pay"];
const KEY = "loanledger.app.locale";

let locale = LOCALES.includes(localStorage.getItem(KEY)) ? localStorage.getItem(KEY) : LOCALES[0];
let messages = {};

export function current() {
  return locale;
}

async function fetchArea(area, which) {
  const response = await fetch(`messages/${area}.${which}.json`);
  return response.ok ? response.json() : {};
}

export async function load(which = locale) {
  const catalogues = await Promise.all(AREAS.map((area) => fetchArea(area, which)));
  messages = Object.assign({}, ...catalogues);
  locale = which;
  localStorage.setItem(KEY, which);
  document.documentElement.lang = which;
}

// t("loans.repay_each", { amount: "¥412.36" }): {name} placeholders; a missing key shows itself, so a test finds it.
export function t(key, params = {}) {
  const text = messages[key];
  if (text === undefined) return `⟦${key}⟧`;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

export function has(key) {
  return key in messages;
}

// The borrower's app: boots the catalogue, registers the service worker, and routes `#/<screen>?<params>` to the
// screen modules. A screen is { route, needs, tab?, render(ctx) }: `needs` is null (anyone), "wallet" (an unlocked
// wallet) or "session" (signed in); the router sends the borrower to the first-run, unlock or sign-in step first
// and back afterwards. Screens build their content with core/dom.js from the API's answers and the catalogue.
import * as api from "./core/api.js";
import { h } from "./core/dom.js";
import * as format from "./core/format.js";
import * as i18n from "./core/i18n.js";
import * as session from "./core/session.js";
import * as wallet from "./core/wallet.js";
import apply from "./screens/apply.js";
import backup from "./screens/backup.js";
import cancel from "./screens/cancel.js";
import credit from "./screens/credit.js";
import debit from "./screens/debit.js";
import hardship from "./screens/hardship.js";
import home from "./screens/home.js";
import kycRecovery from "./screens/kyc-recovery.js";
import kyc from "./screens/kyc.js";
import loan from "./screens/loan.js";
import loans from "./screens/loans.js";
import notices from "./screens/notices.js";
import pay from "./screens/pay.js";
import payoff from "./screens/payoff.js";
import products from "./screens/products.js";
import quote from "./screens/quote.js";
import restore from "./screens/restore.js";
import settings from "./screens/settings.js";
import unlock from "./screens/unlock.js";
import welcome from "./screens/welcome.js";
// Each area adds its screens here (one import and one entry in SCREENS).

const SCREENS = [
  welcome, unlock, backup, restore, settings,   // wallet
  home, kyc, kycRecovery, credit,                // identity and credit
  products, quote, apply, loans, loan, cancel,   // borrowing
  pay, debit, notices, payoff, hardship,         // repaying
];
const START = "home";
const byRoute = new Map(SCREENS.map((screen) => [screen.route, screen]));
const $ = (selector) => document.querySelector(selector);

function parse(hash) {
  const [route, query = ""] = hash.replace(/^#\/?/, "").split("?");
  return { route: route || START, params: Object.fromEntries(new URLSearchParams(query)) };
}

export function go(route, params = {}) {
  const query = new URLSearchParams(params).toString();
  const hash = `#/${route}${query ? `?${query}` : ""}`;
  if (location.hash === hash) show(); else location.hash = hash;
}

// Where the borrower must go before `screen`, or null.
function gate(screen) {
  if (!screen.needs) return null;
  if (!wallet.isUnlocked()) return wallet.storedAddress() || wallet.kind() === "injected" ? "unlock" : "welcome";
  if (screen.needs === "session" && !session.signedIn()) return "unlock";
  return null;
}

// An error in plain words, the API's code beside it for support.
export function failure(error) {
  const code = error?.code || error?.message || "unknown";
  if (code === "offline") showOffline(true); // the network may be up but going nowhere: say so where it shows
  const known = i18n.has(`error.${code}`);
  return h("div", { class: "error", role: "alert" },
    h("p", {}, known ? i18n.t(`error.${code}`) : i18n.t("error.generic")),
    h("p", { class: "code" }, i18n.t("error.code", { code })));
}

// Runs `work` with the button disabled, its failure shown in `where` (replacing what was there).
export async function busy(button, where, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  where.replaceChildren();
  try {
    return await work();
  } catch (error) {
    where.replaceChildren(failure(error));
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

const locale = () => i18n.current();
const fmt = {
  money: (minor, currency) => format.money(locale(), minor, currency),
  date: (seconds) => format.date(locale(), seconds),
  dateTime: (seconds) => format.dateTime(locale(), seconds),
  age: (seconds) => format.age(locale(), seconds),
  decimalToMinor: format.decimalToMinor,
};

function tabs(current) {
  const nav = $("#tabs");
  const entries = SCREENS.filter((screen) => screen.tab).sort((a, b) => a.tab.order - b.tab.order);
  const show = session.signedIn() && entries.length > 1;
  nav.hidden = !show;
  if (!show) return;
  nav.replaceChildren(...entries.map((screen) => h("a", {
    href: `#/${screen.route}`, "aria-current": screen.route === current ? "page" : null,
  }, i18n.t(screen.tab.label))));
}

let rendering = 0;
async function show() {
  const { route, params } = parse(location.hash);
  const screen = byRoute.get(route) || byRoute.get(START);
  const before = gate(screen);
  if (before && before !== screen.route) {
    go(before, { next: location.hash.replace(/^#\/?/, "") || START });
    return;
  }
  const ticket = ++rendering;
  const main = $("#screen");
  main.setAttribute("aria-busy", "true");
  let content;
  try {
    content = await screen.render({ params, go, t: i18n.t, fmt, api, wallet, session, failure, busy,
                                    locale: locale() });
  } catch (error) {
    content = h("section", {}, failure(error));
  }
  if (ticket !== rendering) return; // a later navigation won
  main.replaceChildren(content);
  main.removeAttribute("aria-busy");
  document.body.dataset.screen = screen.route;
  const heading = main.querySelector("h1");
  document.title = heading ? `${heading.textContent} · LoanLedger` : "LoanLedger";
  tabs(screen.route);
  main.focus({ preventScroll: false }); // screen readers and keyboards start at the new screen
}

// After a step the borrower was sent to (unlock, sign-in), back to where they were going.
export function resume(params) {
  const next = params.next && !params.next.startsWith("unlock") && !params.next.startsWith("welcome")
    ? params.next : START;
  location.hash = `#/${next}`;
}

function showOffline(offline) {
  const banner = $("#offline");
  banner.hidden = !offline;
  banner.textContent = offline ? i18n.t("core.offline") : "";
}

function chrome() {
  const other = () => i18n.LOCALES.find((code) => code !== i18n.current());
  const button = $("#language");
  const label = () => {
    button.textContent = i18n.t("core.language_switch");
    button.setAttribute("aria-label", i18n.t("core.language_switch_label"));
    button.setAttribute("lang", other());
    $("#skip-link").textContent = i18n.t("core.skip");
    $("#brand").textContent = i18n.t("core.brand");
  };
  button.addEventListener("click", async () => {
    await i18n.load(other());
    label();
    if (session.signedIn()) api.call("PUT", "/v1/me/language", { body: { language: i18n.current(), time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone } }).catch(() => {});
    show();
  });
  label();
  const online = () => showOffline(!navigator.onLine);
  addEventListener("online", online);
  addEventListener("offline", online);
  online();
}

async function boot() {
  await i18n.load();
  chrome();
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("sw.js").catch(() => {});
  addEventListener("hashchange", show);
  await show();
  document.body.dataset.ready = "true";
}

boot();

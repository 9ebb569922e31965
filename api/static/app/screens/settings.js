// Settings: the wallet this phone signs with, its backup, the language, signing out (the key leaves memory) and
// forgetting the wallet on this phone (after a confirmation that says what that means).
import { go } from "../app.js";
import { facts, h } from "../core/dom.js";
import { recoveryWarning } from "./backup.js";

function forgetStep({ t, wallet, api }) {
  const start = h("button", { type: "button", class: "secondary danger", id: "forget" }, t("wallet.forget"));
  const confirm = h("button", { type: "button", class: "primary danger", id: "forget-confirm" },
                    t("wallet.forget_confirm"));
  const cancel = h("button", { type: "button", class: "secondary", id: "forget-cancel" }, t("wallet.cancel"));
  const unsaved = wallet.kind() !== "injected" && !wallet.backedUpAt();
  const card = h("div", { class: "card confirm", id: "forget-card", hidden: true },
    h("h2", { id: "forget-heading", tabindex: "-1" }, t("wallet.forget_title")),
    h("p", {}, t(wallet.kind() === "injected" ? "wallet.forget_explain_injected" : "wallet.forget_explain")),
    unsaved ? h("p", { class: "error", role: "alert" }, t("wallet.forget_no_backup")) : null,
    wallet.kind() === "injected" ? null : recoveryWarning(t),
    confirm, cancel);
  start.addEventListener("click", () => {
    card.hidden = false;
    start.hidden = true;
    card.querySelector("h2").focus();
  });
  cancel.addEventListener("click", () => {
    card.hidden = true;
    start.hidden = false;
    start.focus();
  });
  confirm.addEventListener("click", () => {
    wallet.forget();
    api.endSession();
    go("welcome");
  });
  return [start, card];
}

export default {
  route: "settings",
  needs: "session",
  tab: { label: "wallet.nav_settings", order: 90 },
  async render(ctx) {
    const { t, fmt, wallet, session } = ctx;
    const injected = wallet.kind() === "injected";
    const backedUp = wallet.backedUpAt();
    const signOut = h("button", { type: "button", class: "secondary", id: "sign-out" }, t("wallet.sign_out"));
    signOut.addEventListener("click", () => {
      session.signOut();
      go("unlock", { next: "settings" });
    });
    // The header's language button does the switching (and tells the API, for the texts); this one is its twin
    // where a borrower looks for it.
    const language = h("button", { type: "button", class: "secondary", id: "settings-language",
                                   lang: t("wallet.other_language_code") }, t("wallet.other_language"));
    language.addEventListener("click", () => document.querySelector("#language").click());
    return h("section", { class: "wallet settings" },
      h("h1", {}, t("wallet.settings_title")),
      h("div", { class: "card" },
        h("h2", {}, t("wallet.settings_wallet")),
        facts([
          [t("wallet.address"), h("code", { id: "settings-address" }, wallet.address())],
          [t("wallet.kept"), t(injected ? "wallet.kept_injected" : "wallet.kept_keystore")],
          injected ? null : [t("wallet.backup"), h("span", { id: "settings-backup" },
            backedUp ? t("wallet.backup_confirmed", { when: fmt.dateTime(backedUp) }) : t("wallet.backup_never"))],
        ]),
        injected ? null : h("a", { class: "button secondary", href: "#/backup?next=settings", id: "backup-again" },
                            t("wallet.backup_again"))),
      h("div", { class: "card" },
        h("h2", {}, t("wallet.settings_language")),
        h("p", {}, t("wallet.language_now")),
        language),
      h("div", { class: "card" },
        h("h2", {}, t("wallet.settings_leave")),
        h("p", { class: "hint" }, t("wallet.sign_out_explain")),
        signOut,
        ...forgetStep(ctx)));
  },
};

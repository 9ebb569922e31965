// Coming back: the passcode unlocks the keystore kept on this phone (or the phone's wallet connects), then the
// wallet signs in. Both happen here so the borrower sees one step. A sign-in still valid for this wallet (a reload
// within the session) is kept rather than signed again.
import { busy, resume } from "../app.js";
import { field, h } from "../core/dom.js";

async function signIn(session) {
  if (!session.signedIn()) await session.signIn();
}

function injectedStep({ t, wallet, session, params }, problem, address) {
  const connect = h("button", { type: "button", class: "primary", id: "sign-in" }, t("wallet.sign_in_with_app"));
  connect.addEventListener("click", () => busy(connect, problem, async () => {
    if (!wallet.isUnlocked()) await wallet.connectInjected();
    await signIn(session);
    resume(params);
  }));
  return h("section", { class: "wallet" },
    h("h1", {}, t("wallet.sign_in_title")),
    h("p", { class: "lead" }, t("wallet.sign_in_app_explain")),
    address ? h("p", { class: "address" }, t("wallet.your_address"), " ", h("code", { id: "wallet-address" }, address))
      : null,
    problem, connect);
}

export default {
  route: "unlock",
  needs: null,
  async render(ctx) {
    const { t, wallet, session, params } = ctx;
    const problem = h("div", { class: "problem" });
    const address = wallet.storedAddress();
    if (wallet.kind() === "injected" || (!address && wallet.hasInjected())) return injectedStep(ctx, problem, address);
    if (!address) {
      return h("section", { class: "wallet" }, h("h1", {}, t("wallet.unlock_title")),
        ctx.failure(new Error("no_wallet")),
        h("a", { class: "button primary", href: "#/welcome" }, t("wallet.go_welcome")));
    }
    const passcode = field(t("wallet.passcode"), { type: "password", autocomplete: "current-password",
                                                    name: "passcode", required: true });
    const submit = h("button", { type: "submit", class: "primary", id: "sign-in" },
                     wallet.isUnlocked() ? t("wallet.sign_in") : t("wallet.unlock_and_sign_in"));
    const progress = h("progress", { max: "1", value: "0", hidden: true, "aria-label": t("wallet.working_unlock") });
    const form = h("form", { class: "card" }, wallet.isUnlocked() ? null : passcode.node, progress, submit);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(submit, problem, async () => {
        if (!wallet.isUnlocked()) {
          progress.hidden = false;
          try {
            await wallet.unlock(passcode.input.value, (fraction) => { progress.value = String(fraction); });
          } finally {
            progress.hidden = true;
          }
        }
        await signIn(session);
        resume(params);
      });
    });
    return h("section", { class: "wallet" },
      h("h1", {}, t("wallet.unlock_title")),
      h("p", { class: "address" }, t("wallet.your_address"), " ", h("code", { id: "wallet-address" }, address)),
      problem, form,
      h("p", {}, h("a", { href: "#/restore", id: "go-restore" }, t("wallet.restore_link"))));
  },
};

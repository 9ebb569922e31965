// Coming back: the passcode unlocks the keystore kept on this phone (or the phone's wallet connects), then the
// wallet signs in. Both happen here so the borrower sees one step.
import { busy, resume } from "../app.js";
import { field, h } from "../core/dom.js";

export default {
  route: "unlock",
  needs: null,
  async render({ t, wallet, session, params }) {
    const problem = h("div", { class: "problem" });
    const address = wallet.storedAddress();
    if (wallet.kind() === "injected" || (!address && wallet.hasInjected())) {
      const connect = h("button", { type: "button", class: "primary", id: "sign-in" }, t("wallet.sign_in"));
      connect.addEventListener("click", () => busy(connect, problem, async () => {
        if (!wallet.isUnlocked()) await wallet.connectInjected();
        await session.signIn();
        resume(params);
      }));
      return h("section", {}, h("h1", {}, t("wallet.sign_in_title")), problem, connect);
    }
    const passcode = field(t("wallet.passcode"), { type: "password", autocomplete: "current-password",
                                                    name: "passcode", required: true });
    const submit = h("button", { type: "submit", class: "primary", id: "sign-in" },
                     wallet.isUnlocked() ? t("wallet.sign_in") : t("wallet.unlock_and_sign_in"));
    const progress = h("progress", { max: "1", value: "0", hidden: true, "aria-label": t("wallet.working") });
    const form = h("form", { class: "card" }, wallet.isUnlocked() ? null : passcode.node, progress, submit);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(submit, problem, async () => {
        if (!wallet.isUnlocked()) {
          progress.hidden = false;
          try {
            await wallet.unlock(passcode.input.value, (fraction) => { progress.value = String(fraction); });
          } catch (error) {
            if (error.message === "no_wallet") throw error;
            throw new Error("wrong_passcode"); // the keystore's MAC did not match: nothing else can fail here
          } finally {
            progress.hidden = true;
          }
        }
        await session.signIn();
        resume(params);
      });
    });
    return h("section", {},
      h("h1", {}, t("wallet.unlock_title")),
      h("p", { class: "address" }, t("wallet.your_address"), " ", h("code", { id: "wallet-address" }, address)),
      problem, form,
      h("p", {}, h("a", { href: "#/restore" }, t("wallet.restore_link"))));
  },
};

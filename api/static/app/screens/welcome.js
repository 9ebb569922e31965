// First run: make a wallet on this phone (a passcode, then the backup), bring one from a backup or the CLI, or use
// the phone's own wallet app. A phone that already keeps a wallet is sent to unlock it: making a new one here would
// overwrite the only copy of a key (forgetting it is a deliberate step in settings).
import { busy, go, resume } from "../app.js";
import { field, h } from "../core/dom.js";

const MIN_PASSCODE = 6;

function passcodes(t) {
  const first = field(t("wallet.passcode"), { type: "password", autocomplete: "new-password", name: "passcode",
                                               minlength: String(MIN_PASSCODE), required: true },
                      t("wallet.passcode_hint", { min: MIN_PASSCODE }));
  const again = field(t("wallet.passcode_again"), { type: "password", autocomplete: "new-password",
                                                     name: "passcode-again", required: true });
  return { first, again };
}

export default {
  route: "welcome",
  needs: null,
  async render({ t, wallet, session, params }) {
    if (wallet.storedAddress()) {
      return h("section", { class: "wallet" }, h("h1", {}, t("wallet.welcome_title")),
        h("p", {}, t("wallet.already_here"), " ", h("code", {}, wallet.storedAddress())),
        h("a", { class: "button primary", href: "#/unlock", id: "go-unlock" }, t("wallet.go_unlock")));
    }
    const problem = h("div", { class: "problem" });
    const { first, again } = passcodes(t);
    const create = h("button", { type: "submit", class: "primary", id: "create-wallet" }, t("wallet.create"));
    const progress = h("progress", { max: "1", value: "0", hidden: true, "aria-label": t("wallet.working") });
    const form = h("form", { class: "card", id: "create-form" },
      h("h2", {}, t("wallet.create_title")), h("p", {}, t("wallet.create_explain")),
      first.node, again.node, progress, create);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(create, problem, async () => {
        if (first.input.value.length < MIN_PASSCODE) throw new Error("passcode_too_short");
        if (first.input.value !== again.input.value) throw new Error("passcodes_differ");
        progress.hidden = false;
        try {
          await wallet.create(first.input.value, (fraction) => { progress.value = String(fraction); });
        } finally {
          progress.hidden = true;
        }
        go("backup", { next: params.next || "home" }); // the backup comes before anything else
      });
    });
    const injected = wallet.hasInjected() ? h("button", { type: "button", class: "secondary", id: "use-injected",
      onclick: (event) => busy(event.currentTarget, problem, async () => {
        await wallet.connectInjected();
        await session.signIn();
        resume(params);
      }) }, t("wallet.use_injected")) : null;
    return h("section", { class: "wallet welcome" },
      h("h1", {}, t("wallet.welcome_title")), h("p", { class: "lead" }, t("wallet.welcome_explain")),
      problem, form, injected,
      h("p", {}, h("a", { href: "#/restore", id: "go-restore" }, t("wallet.restore_link"))));
  },
};

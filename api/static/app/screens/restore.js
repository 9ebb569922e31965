// Restore: a keystore file (a backup from this app, or a wallet the LoanLedger command line or any Web3 Secret
// Storage tool made) chosen as a file or pasted, opened with its passcode here on the phone, kept, and signed in.
import { busy, resume } from "../app.js";
import { field, h } from "../core/dom.js";

export default {
  route: "restore",
  needs: null,
  async render({ t, wallet, session, params }) {
    const problem = h("div", { class: "problem" });
    const file = field(t("wallet.restore_file"), { type: "file", name: "keystore-file",
                                                    accept: ".json,application/json,text/plain" },
                       t("wallet.restore_file_hint"));
    const pasteId = "restore-paste";
    const paste = h("textarea", { id: pasteId, name: "keystore-text", rows: "4", spellcheck: "false",
                                  autocomplete: "off", "aria-describedby": `${pasteId}-hint` });
    const passcode = field(t("wallet.restore_passcode"), { type: "password", autocomplete: "current-password",
                                                            name: "passcode", required: true });
    const submit = h("button", { type: "submit", class: "primary", id: "restore-wallet" }, t("wallet.restore"));
    const progress = h("progress", { max: "1", value: "0", hidden: true, "aria-label": t("wallet.working_unlock") });
    const existing = wallet.storedAddress();
    const form = h("form", { class: "card", id: "restore-form" },
      file.node,
      h("div", { class: "field" }, h("label", { for: pasteId }, t("wallet.restore_paste")), paste,
        h("p", { class: "hint", id: `${pasteId}-hint` }, t("wallet.restore_paste_hint"))),
      passcode.node,
      existing ? h("p", { class: "hint", id: "restore-replaces" }, t("wallet.restore_replaces", { address: existing }))
        : null,
      progress, submit);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(submit, problem, async () => {
        const chosen = file.input.files[0];
        const text = chosen ? await chosen.text() : paste.value;
        if (!text.trim()) throw new Error("no_keystore_given");
        progress.hidden = false;
        try {
          await wallet.restore(text, passcode.input.value, (fraction) => { progress.value = String(fraction); });
        } finally {
          progress.hidden = true;
        }
        await session.signIn();
        resume(params);
      });
    });
    return h("section", { class: "wallet restore" },
      h("h1", {}, t("wallet.restore_title")),
      h("p", { class: "lead" }, t("wallet.restore_explain")),
      problem, form,
      h("p", {}, h("a", { href: "#/welcome" }, t("wallet.back_to_start"))));
  },
};

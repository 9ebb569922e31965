// The backup: the keystore file as it is kept here (still encrypted under the passcode), downloaded to wherever the
// borrower keeps files off this phone. Right after a wallet is made, and again from settings. The borrower is told
// plainly what the file is and what losing it means, and confirms they saved it before going on.
import { busy, resume } from "../app.js";
import { h } from "../core/dom.js";

function download({ name, blob }) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000); // the download has started by then
}

export function recoveryWarning(t) {
  return h("div", { class: "card warning", role: "note", id: "backup-warning" },
    h("h2", {}, t("wallet.backup_warning_title")),
    h("ul", {},
      h("li", {}, t("wallet.backup_encrypted")),
      h("li", {}, t("wallet.backup_no_one_else")),
      h("li", {}, t("wallet.backup_lose_both"), " ",
        h("a", { href: "#/kyc-recovery", id: "go-recovery" }, t("wallet.recovery_link")))));
}

export default {
  route: "backup",
  needs: "wallet",
  async render({ t, wallet, params }) {
    const address = wallet.storedAddress();
    if (wallet.kind() === "injected") {
      return h("section", { class: "wallet" }, h("h1", {}, t("wallet.backup_title")),
        h("p", {}, t("wallet.backup_injected")),
        h("a", { class: "button primary", href: `#/${params.next || "home"}` }, t("wallet.continue")));
    }
    const { name } = wallet.backupFile();
    const problem = h("div", { class: "problem" });
    const saved = h("p", { class: "hint", role: "status", id: "backup-status" });
    let downloaded = false;
    const get = h("button", { type: "button", class: "primary", id: "backup-download" }, t("wallet.backup_download"));
    get.addEventListener("click", () => {
      download(wallet.backupFile());
      downloaded = true;
      saved.textContent = t("wallet.backup_downloaded", { name });
    });
    const done = h("button", { type: "button", class: "secondary", id: "backup-saved" }, t("wallet.backup_saved"));
    done.addEventListener("click", () => busy(done, problem, async () => {
      if (!downloaded) throw new Error("backup_not_downloaded");
      wallet.markBackedUp();
      resume(params);
    }));
    return h("section", { class: "wallet backup" },
      h("h1", {}, t("wallet.backup_title")),
      h("p", { class: "lead" }, t("wallet.backup_explain")),
      h("p", { class: "address" }, t("wallet.your_address"), " ", h("code", { id: "wallet-address" }, address)),
      recoveryWarning(t),
      get, saved, problem, done);
  },
};

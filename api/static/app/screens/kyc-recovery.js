// Wallet recovery: a borrower who lost the phone (and the wallet's key with it) proves the same identity again on
// this new wallet (POST /v1/kyc/recovery: the same name, ID number and bank card; the phone may be the new SIM's),
// then confirms the codes as for a first verification (the kyc screen's verify step). The record then moves to
// this wallet; when the lost wallet still owes money an operator confirms first (`recovery_pending`), and the
// oracle moves the registration on-chain (`registering`, then `registered`). The old wallet's loans stay payable.
import { busy } from "../app.js";
import { h } from "../core/dom.js";
import { APPLICATION, attempt, identityForm } from "./kyc-parts.js";

export default {
  route: "kyc-recovery",
  needs: "session",
  async render({ t, go, api }) {
    const kyc = await api.get("/v1/kyc");
    const problem = h("div", { class: "problem" });
    const { form, submit, values } = identityForm(t, { id: "kyc-recovery-form", submitLabel: t("kyc.recovery.button"),
                                                       intro: t("kyc.recovery.form_intro") });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      attempt(busy, t, submit, problem, async () => {
        const answer = await api.post("/v1/kyc/recovery", values());
        go("kyc", APPLICATION.has(answer.status) ? { step: "verify" } : {});
      });
    });
    return h("section", { class: "kyc" },
      h("h1", {}, t("kyc.recovery.title")),
      h("p", { class: "lead" }, t("kyc.recovery.intro")),
      h("ol", { class: "kyc-steps", id: "kyc-recovery-steps" },
        h("li", {}, t("kyc.recovery.step_submit")), h("li", {}, t("kyc.recovery.step_codes")),
        h("li", {}, t("kyc.recovery.step_operator")), h("li", {}, t("kyc.recovery.step_registered"))),
      kyc.status === "none" ? null
        : h("p", { class: "kyc-done", id: "kyc-recovery-not-new" }, t("kyc.recovery.not_new", {
          status: t(`kyc.status.${kyc.status}`) })),
      problem, form,
      h("p", {}, h("a", { href: "#/kyc", id: "kyc-back" }, t("kyc.back"))));
  },
};

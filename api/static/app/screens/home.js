// Home: who is signed in and where to go next: the verification's status in a line and the step it calls for (the
// kyc screen), or, once registered, the score and limit (the credit screen). Other areas link from their tabs.
import { facts, h } from "../core/dom.js";

const REGISTERED = new Set(["registered", "expiring"]);

async function nextPanel({ t, fmt, api }) {
  let kyc;
  try {
    kyc = await api.get("/v1/kyc");
  } catch {
    return h("div", { class: "next", id: "home-next" }); // the account still shows; the kyc screen says what failed
  }
  const lines = [h("h2", {}, t("kyc.home.title")), h("p", { id: "home-kyc-summary" }, t(`kyc.home.${kyc.status}`))];
  if (kyc.kyc_expires_at && REGISTERED.has(kyc.status)) {
    lines.push(facts([[t("kyc.expires_at"), fmt.date(kyc.kyc_expires_at)]]));
  }
  if (REGISTERED.has(kyc.status)) {
    try {
      const credit = await api.get("/v1/credit");
      if (credit.score !== null) {
        lines.push(facts([[t("kyc.credit.available"), h("span", { id: "home-available" },
                                                        fmt.money(credit.available))]]));
      }
    } catch {
      // the credit screen shows the failure in full
    }
    lines.push(h("a", { class: "button primary", href: "#/credit", id: "home-next-link" }, t("kyc.home.to_credit")));
    if (kyc.status === "expiring") {
      lines.push(h("a", { class: "button secondary", href: "#/kyc", id: "home-renew-link" }, t("kyc.home.to_renew")));
    }
  } else {
    lines.push(h("a", { class: "button primary", href: "#/kyc", id: "home-next-link" },
                 t(kyc.status === "none" ? "kyc.home.to_start" : "kyc.home.to_kyc")));
  }
  return h("div", { class: "next card", id: "home-next", "data-status": kyc.status }, lines);
}

export default {
  route: "home",
  needs: "session",
  tab: { label: "nav.home", order: 1 },
  async render(ctx) {
    const { t, api } = ctx;
    const [me, next] = await Promise.all([api.get("/v1/auth/me"), nextPanel(ctx)]);
    return h("section", {},
      h("h1", {}, t("home.title")),
      facts([[t("home.address"), h("code", { id: "my-address" }, me.address)],
             [t("home.roles"), me.roles.map((role) => t(`role.${role}`)).join(", ") || t("role.none")]]),
      next);
  },
};

// Home: who is signed in and where to go next. The areas' screens (KYC, loans) link from here.
import { facts, h } from "../core/dom.js";

export default {
  route: "home",
  needs: "session",
  tab: { label: "nav.home", order: 1 },
  async render({ t, api }) {
    const me = await api.get("/v1/auth/me");
    return h("section", {},
      h("h1", {}, t("home.title")),
      facts([[t("home.address"), h("code", { id: "my-address" }, me.address)],
             [t("home.roles"), me.roles.map((role) => t(`role.${role}`)).join(", ") || t("role.none")]]),
      h("div", { class: "next", id: "home-next" }));
  },
};

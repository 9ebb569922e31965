// What the lender offers (GET /v1/products, public), each product's terms in plain words, with its quote one tap
// away.
import { h } from "../core/dom.js";
import { productLines } from "./loan-words.js";

export default {
  route: "products",
  needs: null,
  tab: { label: "loans.nav_products", order: 30 },
  async render(ctx) {
    const { t, api } = ctx;
    const { products } = await api.get("/v1/products");
    return h("section", { class: "loans products" },
      h("h1", {}, t("loans.products_title")),
      h("p", { class: "lead" }, t("loans.products_lead")),
      products.length ? null : h("p", { id: "no-products" }, t("loans.products_none")),
      products.map((product) => h("article", { class: "card product", "data-product": product.id },
        h("h2", {}, product.name),
        h("ul", { class: "terms" }, productLines(ctx, product).map((line) => h("li", {}, line))),
        h("a", { class: "button primary", href: `#/quote?product=${product.id}`, id: `quote-${product.id}` },
          t("loans.product_quote", { name: product.name })))));
  },
};

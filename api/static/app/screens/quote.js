// A quote: the amount and the number of installments within the product's bounds, then what the loan book says
// they give (GET /v1/products/{id}/quote): the schedule as a table and a chart, the fee, what is paid out and the
// totals. Applying signs exactly what is quoted.
import { facts, h } from "../core/dom.js";
import { minorToDecimal } from "../core/format.js";
import { percent, productLines, scheduleChart, scheduleTable } from "./loan-words.js";

function form(ctx, product) {
  const { t, fmt, params, go } = ctx;
  const money = (minor) => fmt.money(minor, product.currency);
  const amount = h("input", { id: "quote-amount", name: "amount", inputmode: "decimal", autocomplete: "off",
                              required: true, "aria-describedby": "quote-amount-hint",
                              value: params.principal ? minorToDecimal(params.principal, product.currency) : "" });
  const count = h("select", { id: "quote-installments", name: "installments" });
  for (let n = product.min_installments; n <= product.max_installments; n += 1) {
    count.append(h("option", { value: String(n), selected: String(n) === params.installments }, String(n)));
  }
  const problem = h("div", { class: "problem", id: "quote-problem" });
  const submit = h("button", { type: "submit", class: "primary", id: "quote-submit" }, t("loans.quote_submit"));
  const node = h("form", { class: "card", id: "quote-form" },
    h("div", { class: "field" }, h("label", { for: "quote-amount" }, t("loans.quote_amount")), amount,
      h("p", { class: "hint", id: "quote-amount-hint" },
        t("loans.quote_amount_hint", { min: money(product.min_principal), max: money(product.max_principal) }))),
    h("div", { class: "field" }, h("label", { for: "quote-installments" }, t("loans.quote_installments")), count),
    problem, submit);
  node.addEventListener("submit", (event) => {
    event.preventDefault();
    const principal = fmt.decimalToMinor(amount.value, product.currency);
    if (!principal) {
      problem.replaceChildren(ctx.failure({ code: "amount_invalid" }));
      amount.focus();
      return;
    }
    go("quote", { product: product.id, principal, installments: count.value });
  });
  return node;
}

function result(ctx, quote) {
  const { t, fmt, locale } = ctx;
  const money = (minor) => fmt.money(minor, quote.currency);
  return h("section", { class: "quote", id: "quote-result", "aria-labelledby": "quote-result-title" },
    h("h2", { id: "quote-result-title" }, t("loans.quote_result")),
    facts([
      [t("loans.quote_principal"), h("span", { "data-amount": quote.principal, id: "quote-principal" }, money(quote.principal))],
      [t("loans.quote_rate"), percent(locale, quote.annual_rate_bps)],
      [t("loans.quote_fee"), h("span", { "data-amount": quote.service_fee, id: "quote-fee" }, money(quote.service_fee))],
      [t("loans.quote_paid_out"), h("span", { "data-amount": quote.net_paid_out, id: "quote-paid-out" }, money(quote.net_paid_out))],
      [t("loans.quote_interest"), h("span", { "data-amount": quote.total_interest, id: "quote-interest" }, money(quote.total_interest))],
      [t("loans.quote_cost"), h("span", { "data-amount": quote.total_cost, id: "quote-cost" }, money(quote.total_cost))],
      [t("loans.quote_repaid"), h("span", { "data-amount": quote.total_repaid, id: "quote-repaid" }, money(quote.total_repaid))],
    ], { id: "quote-totals" }),
    h("h3", {}, t("loans.chart_title")),
    scheduleChart(ctx, quote.schedule, quote.currency),
    h("h3", {}, t("loans.schedule_title")),
    h("div", { class: "scroll" }, scheduleTable(ctx, quote.schedule, quote.currency, { id: "quote-schedule" })),
    h("p", { class: "hint" }, t("loans.quote_dates_note")),
    h("a", { class: "button primary", id: "quote-apply",
             href: `#/apply?${new URLSearchParams({ product: quote.product_id, version: quote.product_version,
                                                    principal: quote.principal, installments: quote.installments })}` },
      t("loans.quote_apply")));
}

export default {
  route: "quote",
  needs: null,
  async render(ctx) {
    const { t, api, params } = ctx;
    const id = encodeURIComponent(params.product || "");
    const product = await api.get(`/v1/products/${id}`);
    let shown = null;
    if (params.principal && params.installments) {
      const query = new URLSearchParams({ principal: params.principal, installments: params.installments });
      try {
        shown = result(ctx, await api.get(`/v1/products/${id}/quote?${query}`));
      } catch (error) {
        shown = h("div", { id: "quote-refused" }, ctx.failure(error));
      }
    }
    return h("section", { class: "loans" },
      h("h1", {}, t("loans.quote_title", { name: product.name })),
      h("details", { class: "terms" }, h("summary", {}, t("loans.quote_terms")),
        h("ul", {}, productLines(ctx, product).map((line) => h("li", {}, line)))),
      form(ctx, product), shown);
  },
};

// The loans area's shared pieces: a product's terms in plain words, a schedule as a table and as a chart, a status
// in words. Every amount is an int of minor units from the API, formatted, never computed; rates and days are the
// API's basis points and seconds put in the borrower's units for reading.
import { h, s } from "../core/dom.js";

const DAY = 86400;

export function percent(locale, bps) {
  return new Intl.NumberFormat(locale, { style: "percent", minimumFractionDigits: 2, maximumFractionDigits: 2 })
    .format(bps / 10000);
}

export const days = (seconds) => Math.round(seconds / DAY);

export function productLines({ t, fmt, locale }, product) {
  const money = (minor) => fmt.money(minor, product.currency);
  const terms = product.frequency === "Monthly"
    ? t("loans.product_terms_monthly", { min: product.min_installments, max: product.max_installments })
    : t("loans.product_terms_fixed", { min: product.min_installments, max: product.max_installments,
                                       days: days(product.interval) });
  return [
    t("loans.product_amounts", { min: money(product.min_principal), max: money(product.max_principal) }),
    terms,
    t("loans.product_rate", { rate: percent(locale, product.annual_rate_bps),
                              method: t(`loans.amortization.${product.amortization}`) }),
    product.service_fee_bps ? t("loans.product_fee", { rate: percent(locale, product.service_fee_bps) })
      : t("loans.product_fee_none"),
    lateWords({ t, locale }, product),
    t(`loans.product_early.${product.early_repayment}`),
    product.auto_approve ? t("loans.product_approval_auto", { max: money(product.auto_approve_max_principal) })
      : t("loans.product_approval_manual"),
  ];
}

// The late fee and penalty as the product (or the loan, which copied them) charges them.
export function lateWords({ t, locale }, terms) {
  return t("loans.product_late", { days: days(terms.grace_period), fee: percent(locale, terms.late_fee_bps),
                                   penalty: percent(locale, terms.penalty_rate_bps) });
}

// The schedule as a table. `disbursedAt` 0: due dates are seconds after the payout (a quote, a loan not paid out).
export function scheduleTable({ t, fmt }, rows, currency, { disbursedAt = 0, paid = 0, id = "schedule" } = {}) {
  const due = (row) => (disbursedAt ? fmt.date(row.due_at) : t("loans.schedule_after_days", { days: days(row.due_at) }));
  return h("table", { id, class: "schedule" },
    h("caption", {}, t("loans.schedule_caption")),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, t("loans.schedule_number")), h("th", { scope: "col" }, t("loans.schedule_due")),
      h("th", { scope: "col" }, t("loans.schedule_principal")), h("th", { scope: "col" }, t("loans.schedule_interest")))),
    h("tbody", {}, rows.map((row) => h("tr", {
      "data-number": row.number, "data-due-at": row.due_at, "data-principal": row.principal,
      "data-interest": row.interest, class: row.number <= paid ? "paid" : null,
    },
      h("th", { scope: "row" }, String(row.number), row.number <= paid ? h("span", { class: "tag" }, t("loans.schedule_paid")) : null),
      h("td", {}, due(row)), h("td", {}, fmt.money(row.principal, currency)),
      h("td", {}, fmt.money(row.interest, currency))))));
}

// Principal and interest of each installment as stacked bars, on one scale (the largest installment's height).
export function scheduleChart({ t, fmt }, rows, currency) {
  const width = 320, height = 160, top = 8, bottom = 20;
  const tallest = Math.max(1, ...rows.map((row) => Number(row.principal) + Number(row.interest)));
  const slot = width / Math.max(rows.length, 1);
  const bar = Math.max(2, Math.min(40, slot * 0.6));
  const scale = (minor) => (Number(minor) / tallest) * (height - top - bottom);
  const bars = rows.map((row, index) => {
    const x = index * slot + (slot - bar) / 2;
    const p = scale(row.principal), i = scale(row.interest);
    const base = height - bottom;
    const label = t("loans.chart_bar", { number: row.number, principal: fmt.money(row.principal, currency),
                                         interest: fmt.money(row.interest, currency) });
    return s("g", { class: "bar", "data-number": String(row.number), "data-principal": String(row.principal),
                    "data-interest": String(row.interest) },
      s("title", {}, label),
      s("rect", { class: "principal", x: x.toFixed(2), y: (base - p).toFixed(2), width: bar.toFixed(2),
                  height: p.toFixed(2) }),
      s("rect", { class: "interest", x: x.toFixed(2), y: (base - p - i).toFixed(2), width: bar.toFixed(2),
                  height: i.toFixed(2) }),
      rows.length <= 24 ? s("text", { x: (x + bar / 2).toFixed(2), y: String(height - 4), "text-anchor": "middle" },
                            String(row.number)) : null);
  });
  return h("figure", { class: "chart" },
    s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": t("loans.chart_title"),
               id: "schedule-chart" }, ...bars),
    h("figcaption", {},
      h("span", { class: "key principal" }, t("loans.chart_principal")), " ",
      h("span", { class: "key interest" }, t("loans.chart_interest"))));
}

export function statusWords(t, status) {
  return t(`loans.status.${status}`);
}

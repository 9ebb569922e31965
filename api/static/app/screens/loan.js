// One loan: its status as it moves (requested, approved, paid out: the page asks again while it is moving), what is
// due next and now (GET /v1/loans/{id}/due: the loan book's amounts), what was paid and where it went, the late
// fee and penalty explained, and the schedule. The actions (pay, automatic debit, payoff, hardship; cancelling an
// application not yet paid out) are other screens, linked from #loan-actions and #action-cancel.
import { facts, h } from "../core/dom.js";
import { lateWords, scheduleTable, statusWords } from "./loan-words.js";

const MOVING = new Set(["Requested", "Approved"]);
const POLL_MS = 1500;
const STEPS = [["Requested", "loans.step_requested"], ["Approved", "loans.step_approved"],
               ["Active", "loans.step_paid_out"]];
const REACHED = { Requested: 1, Approved: 2, Active: 3, Repaid: 3, Overpaid: 3, Defaulted: 3, WrittenOff: 3 };

function progress(t, status) {
  const reached = REACHED[status] || 0;
  if (!reached) return null;
  return h("ol", { class: "steps", "aria-label": t("loans.steps") }, STEPS.map(([name, label], index) => h("li", {
    class: index < reached ? "done" : null, "aria-current": index === reached - 1 ? "step" : null }, t(label))));
}

// While the loan is moving, ask again; on a change, draw the page anew. Stops once the page is left.
function poll(node, { api, go }, loan) {
  if (!MOVING.has(loan.status)) return;
  const again = async () => {
    if (!node.isConnected) return;
    try {
      const now = await api.get(`/v1/loans/${loan.id}`);
      if (!node.isConnected) return;
      if (now.status !== loan.status) {
        go("loan", { id: loan.id });
        return;
      }
    } catch {
      // offline for a moment: try again
    }
    setTimeout(again, POLL_MS);
  };
  setTimeout(again, POLL_MS);
}

function dueSection({ t, fmt }, loan, due) {
  const money = (minor) => fmt.money(minor, loan.currency);
  return h("section", { class: "card", id: "loan-due", "aria-labelledby": "loan-due-title" },
    h("h2", { id: "loan-due-title" }, t("loans.next_title")),
    due.next_due_at ? facts([
      [t("loans.next_due"), h("span", { id: "next-due", "data-due-at": due.next_due_at }, fmt.date(due.next_due_at))],
      [t("loans.next_amount"), h("span", { id: "next-amount", "data-amount": due.owed_at_next_due },
                                 money(due.owed_at_next_due))],
    ]) : h("p", {}, t("loans.nothing_next")),
    facts([
      [t("loans.due_now"), h("span", { id: "due-now", "data-amount": due.total }, money(due.total))],
      [t("loans.payoff"), h("span", { id: "payoff", "data-amount": due.payoff }, money(due.payoff))],
    ]),
    h("p", { class: "hint", id: "due-breakdown" }, t("loans.due_breakdown", {
      principal: money(due.principal), interest: money(due.interest), late_fee: money(due.late_fee),
      penalty: money(due.penalty) })));
}

// One line per money movement the chain recorded: the payout, each repayment and where it went.
function paymentList({ t, fmt }, loan, payments) {
  const money = (minor) => fmt.money(minor, loan.currency);
  if (!payments.length) return null;
  return h("ul", { class: "payments", id: "loan-payments" }, payments.map((payment) => h("li", {
    "data-kind": payment.kind, "data-amount": payment.amount, "data-principal": payment.principal,
    "data-interest": payment.interest, "data-late-fee": payment.late_fee, "data-penalty": payment.penalty },
    h("p", { class: "what" }, t(`loans.payment.${payment.kind}`, { amount: money(payment.amount),
                                                                   date: fmt.dateTime(payment.paid_at) })),
    payment.kind === "repayment" ? h("p", { class: "hint" }, t("loans.payment_split", {
      principal: money(payment.principal), interest: money(payment.interest), late_fee: money(payment.late_fee),
      penalty: money(payment.penalty) }), payment.credit ? ` ${t("loans.payment_credit", { credit: money(payment.credit) })}` : null)
      : null)));
}

function paidSection({ t, fmt }, loan, payments) {
  const money = (minor) => fmt.money(minor, loan.currency);
  const parts = [["paid-principal", "loans.paid_principal", loan.principal_repaid],
                 ["paid-interest", "loans.paid_interest", loan.interest_paid],
                 ["paid-late-fee", "loans.paid_late_fee", loan.late_fee_paid],
                 ["paid-penalty", "loans.paid_penalty", loan.penalty_paid]];
  const any = parts.some(([, , amount]) => amount > 0);
  return h("section", { class: "card", id: "loan-paid", "aria-labelledby": "loan-paid-title" },
    h("h2", { id: "loan-paid-title" }, t("loans.paid_title")),
    any ? facts(parts.map(([id, label, amount]) => [t(label), h("span", { id, "data-amount": amount }, money(amount))]))
      : h("p", { id: "paid-none" }, t("loans.paid_none")),
    paymentList({ t, fmt }, loan, payments),
    h("p", { class: "hint" }, t("loans.paid_order")));
}

function lateSection(ctx, loan, due) {
  const { t, fmt } = ctx;
  const money = (minor) => fmt.money(minor, loan.currency);
  const now = due && (due.late_fee || due.penalty)
    ? t("loans.late_now", { late_fee: money(due.late_fee), penalty: money(due.penalty) }) : t("loans.late_none_now");
  return h("section", { class: "card", id: "loan-late", "aria-labelledby": "loan-late-title" },
    h("h2", { id: "loan-late-title" }, t("loans.late_title")),
    h("p", {}, lateWords(ctx, loan)), h("p", { id: "late-now" }, now));
}

// A loan of a wallet this one was recovered from: read and paid from here, but what needs the on-chain borrower's
// signature (debit mandate, reschedule, cancellation) is that lost wallet's, so it is not offered.
function actions(t, loan, earlier) {
  const links = earlier ? [["pay", "loans.action_pay"], ["payoff", "loans.action_payoff"]]
    : [["pay", "loans.action_pay"], ["debit", "loans.action_debit"], ["payoff", "loans.action_payoff"],
       ["hardship", "loans.action_hardship"]];
  return h("section", { class: "card", "aria-labelledby": "loan-actions-title" },
    h("h2", { id: "loan-actions-title" }, t("loans.actions_title")),
    h("div", { id: "loan-actions", class: "actions" }, links.map(([route, label]) => h("a", {
      class: "button secondary", href: `#/${route}?loan=${loan.id}`, id: `action-${route}` }, t(label)))));
}

// Before the payout the borrower may still cancel (LoanBook: Requested or Approved).
function cancelAction(t, loan) {
  return h("section", { class: "card actions", id: "loan-cancel" },
    h("p", { class: "hint" }, t("loans.cancel_effect")),
    h("a", { class: "button secondary", href: `#/cancel?loan=${loan.id}`, id: "action-cancel" },
      t("loans.action_cancel")));
}

function earlierWallet(t, loan) {
  return h("section", { class: "card", id: "loan-earlier-wallet", "aria-labelledby": "loan-earlier-title" },
    h("h2", { id: "loan-earlier-title" }, t("loans.earlier_wallet_title")),
    h("p", {}, t("loans.earlier_wallet", { wallet: `${loan.borrower.slice(0, 6)}…${loan.borrower.slice(-4)}` })));
}

export default {
  route: "loan",
  needs: "session",
  async render(ctx) {
    const { t, fmt, api, params } = ctx;
    const id = encodeURIComponent(params.id || "");
    const loan = await api.get(`/v1/loans/${id}`);
    const running = ["Active", "Defaulted"].includes(loan.status);
    const [due, paid] = await Promise.all([running ? api.get(`/v1/loans/${id}/due`) : null,
                                           loan.disbursed_at ? api.get(`/v1/loans/${id}/payments`) : null]);
    const money = (minor) => fmt.money(minor, loan.currency);
    const me = ctx.session.signedIn();
    const earlier = Boolean(me) && loan.borrower.toLowerCase() !== me.address.toLowerCase();
    const node = h("section", { class: "loans loan", "data-loan": loan.id, "data-status": loan.status,
                                "data-earlier-wallet": earlier ? "true" : null },
      h("h1", {}, t("loans.loan_title", { id: loan.id })),
      h("p", { class: `status status-${loan.status}`, id: "loan-status", role: "status" },
        statusWords(t, loan.status)),
      h("p", { class: "lead" }, t(`loans.explain.${loan.status}`)),
      progress(t, loan.status),
      facts([
        [t("loans.loan_principal"), money(loan.principal)],
        [t("loans.quote_fee"), money(loan.service_fee)],
        [t("loans.loan_installments"), String(loan.installments)],
        [t("loans.loan_product"), t("loans.loan_product_value", { id: loan.product_id, version: loan.product_version })],
        [t("loans.loan_requested_at"), fmt.dateTime(loan.requested_at)],
        loan.disbursed_at ? [t("loans.loan_disbursed_at"), fmt.dateTime(loan.disbursed_at)] : null,
      ]),
      due ? dueSection(ctx, loan, due) : null,
      paid ? paidSection(ctx, loan, paid.payments) : null,
      lateSection(ctx, loan, due),
      h("section", { class: "card", "aria-labelledby": "loan-schedule-title" },
        h("h2", { id: "loan-schedule-title" }, t("loans.schedule_title")),
        h("div", { class: "scroll" }, scheduleTable(ctx, loan.schedule, loan.currency, {
          disbursedAt: loan.disbursed_at, paid: loan.paid_installments, id: "loan-schedule" }))),
      earlier ? earlierWallet(t, loan) : null,
      MOVING.has(loan.status) && !earlier ? cancelAction(t, loan) : null,
      running ? actions(t, loan, earlier) : null);
    poll(node, ctx, loan);
    return node;
  },
};

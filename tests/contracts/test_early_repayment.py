"""Fair early repayment on the real loan book: a payment beyond what is due prepays principal, the schedule is re-based
by the product's method, and paying more never costs the borrower more (issue 15).

Each loan state is tried with several payments at the same moment: evm_snapshot before the payment, evm_revert after
following it to closure, so every payment meets the same state. "Cost to close" is what the borrower pays from that
moment on: the payment (up to the payoff, the rest being refundable credit), then every installment the schedule then
asks, on its due date.
"""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import pairwise

import pytest
from eth_utils import keccak
from web3.logs import DISCARD

from ledger.typed_data import Amortization, DayCount, Frequency, LoanTerms

DAY = 86_400
REPAID, OVERPAID = 6, 9
REDUCE_INSTALLMENTS, REDUCE_AMOUNT = 0, 1
METHODS = (REDUCE_INSTALLMENTS, REDUCE_AMOUNT)


def mine_at(w3, timestamp: int) -> None:
    w3.provider.make_request("evm_mine", [timestamp])


class Book:
    """The oracle's side of one loan: repayments confirmed at chosen moments."""

    def __init__(self, driver, loan_id: int):
        self.driver, self.book, self.loan_id, self.count = driver, driver.stack.book, loan_id, 0

    def pay(self, amount: int, at: int):
        mine_at(self.driver.w3, at)
        self.count += 1
        tx = self.book.functions.confirmRepayment(self.loan_id, keccak(text=f"pay-{self.count}"), amount, at).transact(
            {"from": self.driver.keys["oracle"].address, "gas": 2_000_000})  # no estimate: it would run before `at`
        receipt = self.driver.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt.status == 1, (amount, at, self.book.functions.progressOf(self.loan_id).call(),
                                     self.book.functions.loanOf(self.loan_id).call(), self.book.functions.schedule(self.loan_id).call())
        return receipt

    def status(self) -> int:
        return self.book.functions.loanOf(self.loan_id).call()[2]

    def cost_to_close(self, amount: int, at: int) -> int:
        """`amount` paid at `at`, then each installment the schedule asks, paid on its due date; what it all cost.
        The chain is left where it is (the caller reverts it)."""
        payoff = self.book.functions.payoffAmount(self.loan_id, at).call()
        self.pay(amount, at)
        cost = min(amount, payoff)  # beyond the payoff the money is the borrower's credit, refunded
        for due_at, _, _ in self.book.functions.schedule(self.loan_id).call():
            if self.status() in (REPAID, OVERPAID):
                break
            if due_at <= at:
                continue
            due = self.book.functions.amountDue(self.loan_id, due_at).call()
            assert tuple(due[2:4]) == (0, 0)  # on time: no charges
            if due[0] + due[1]:
                self.pay(due[0] + due[1], due_at)
                cost += due[0] + due[1]
        assert self.status() in (REPAID, OVERPAID)
        return cost


def snapshot(w3) -> str:
    return w3.provider.make_request("evm_snapshot", [])["result"]


def revert(w3, snap: str) -> None:
    assert w3.provider.make_request("evm_revert", [snap])["result"]


def loan_in_state(driver, keys, terms: LoanTerms, paid: int, elapsed: int) -> tuple[Book, int]:
    """A disbursed loan with `paid` installments paid on their due dates; the moment `elapsed` seconds into the
    next installment's period."""
    loan_id = driver.active_loan(keys["alice"], terms)
    book = Book(driver, loan_id)
    schedule = book.book.functions.schedule(loan_id).call()
    for due_at, principal, interest in schedule[:paid]:
        if principal + interest:  # (a bullet at 0 % asks nothing before its last installment)
            book.pay(principal + interest, due_at)
    disbursed_at = book.book.functions.loanOf(loan_id).call()[3]
    period_start = schedule[paid - 1][0] if paid else disbursed_at
    return book, period_start + elapsed


# --- the issue's example -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_the_issue_example_a_unit_under_the_payoff_costs_what_the_payoff_costs(driver, keys, loan_terms, method):
    # 120,000 at 24 %, three 30-day installments, at day 10: 120,789 closes the loan. Before early repayment,
    # 120,788 paid installments at their full scheduled interest and the loan cost 124,764 in all (124,765 on
    # LoanMath's rounding now: the schedule's total below).
    terms = replace(loan_terms, earlyRepayment=method)
    book, at = loan_in_state(driver, keys, terms, 0, 10 * DAY)
    assert sum(p + i for _, p, i in book.book.functions.schedule(book.loan_id).call()) == 124_765
    assert book.book.functions.payoffAmount(book.loan_id, at).call() == 120_789

    receipt = book.pay(120_788, at)
    (applied,) = book.book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    # It covers the first installment (its principal and the interest to date): that is paid, and the rest
    # prepays principal, re-basing the installments after it.
    assert (applied.args.interest, applied.args.principal, applied.args.paidInstallments) == (789, 119_999, 1)
    (rebased,) = book.book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)
    assert (rebased.args.rebasedAt, rebased.args.principal) == (1, 1)
    assert rebased.args.installments == (1 if method == REDUCE_INSTALLMENTS else 2)
    schedule = book.book.functions.schedule(book.loan_id).call()
    assert len(schedule) == rebased.args.installments
    assert sum(p for _, p, _ in schedule) == 1
    # One unit left: it costs no interest at 1.97 % a period, so the loan costs what the payoff would have.
    assert book.book.functions.payoffAmount(book.loan_id, at).call() == 1
    book.pay(1, schedule[0][0])
    assert book.status() == REPAID
    progress = book.book.functions.progressOf(book.loan_id).call()
    assert progress[2] + progress[3] == 120_789  # principal + interest repaid


def test_a_prepayment_re_bases_the_schedule_the_book_then_walks(driver, keys, loan_terms):
    # Twelve installments, three paid on time; 20 days into the fourth, 30,000: it covers the fourth installment
    # (paid ahead of its date) and prepays principal with the rest. The schedule from installment 5 on is the
    # re-based plan; amountDue and the payoff follow it.
    terms = replace(loan_terms, installments=12, principal=120_000, earlyRepayment=REDUCE_AMOUNT)
    book, at = loan_in_state(driver, keys, terms, 3, 20 * DAY)
    before = book.book.functions.schedule(book.loan_id).call()
    payoff = book.book.functions.payoffAmount(book.loan_id, at).call()
    receipt = book.pay(30_000, at)
    (applied,) = book.book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    assert applied.args.paidInstallments == 4
    (rebased,) = book.book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)
    after = book.book.functions.schedule(book.loan_id).call()
    assert rebased.args.rebasedAt == 4 and rebased.args.installments == 8 == len(after)
    assert [due for due, _, _ in after] == [due for due, _, _ in before[4:]]  # same due dates
    assert sum(p for _, p, _ in after) == rebased.args.principal == payoff - 30_000
    assert all(p + i < bp + bi for (_, p, i), (_, bp, bi) in zip(after, before[4:], strict=True))
    # Nothing is due on installment 4's date; on installment 5's, its principal and interest, and the interest of
    # the rest of the fourth period on the principal left.
    assert tuple(book.book.functions.amountDue(book.loan_id, before[3][0]).call()[:4]) == (0, 0, 0, 0)
    due = book.book.functions.amountDue(book.loan_id, after[0][0]).call()
    assert due[0] == after[0][1] and due[1] == after[0][2] + rest_of_period(after[0][2], 20 * DAY, 30 * DAY)
    assert book.book.functions.payoffAmount(book.loan_id, at).call() == rebased.args.principal


def test_a_reversal_puts_the_loan_back_on_its_original_schedule(driver, keys, loan_terms):
    book, at = loan_in_state(driver, keys, loan_terms, 0, 10 * DAY)
    original = book.book.functions.schedule(book.loan_id).call()
    receipt = book.pay(50_000, at)
    (applied,) = book.book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    assert book.book.functions.schedule(book.loan_id).call() != original
    a = applied.args
    paid = (a.principal, a.interest, a.lateFee, a.penalty, 0, 0)
    driver.send(book.book.functions.reverseRepayment(book.loan_id, a.paymentRef, keccak(text="chargeback"), paid, at),
                keys["oracle"])
    assert book.book.functions.schedule(book.loan_id).call() == original
    progress = book.book.functions.progressOf(book.loan_id).call()
    assert (progress[0], progress[2], progress[3]) == (0, 0, 0)  # paidInstallments, principalRepaid, interestPaid


# --- an installment paid ahead of its date ------------------------------------------------------------------


def half_up(a: int, b: int) -> int:
    return (a + b // 2) // b


def rest_of_period(period_interest: int, elapsed: int, interval: int) -> int:
    """The contract's interest for the rest of a period `elapsed` into it: the period's less what has accrued."""
    return period_interest - half_up(period_interest * elapsed, interval)


@pytest.mark.parametrize("days_early", [1, 10])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("amortization", [Amortization.ANNUITY, Amortization.EQUAL_PRINCIPAL, Amortization.BULLET])
@pytest.mark.parametrize("amount", ["installment", "principal_and_interest_to_date"])
def test_an_installment_paid_early_counts_as_paid(driver, keys, loan_terms, amortization, method, days_early, amount):
    # The borrower pays the first installment `days_early` days before its date: the installment as scheduled
    # (as a reminder asks), or just its principal and the interest accrued to date (the least that covers it).
    terms = replace(loan_terms, amortization=amortization, earlyRepayment=method)
    interval = terms.interval
    book, at = loan_in_state(driver, keys, terms, 0, interval - days_early * DAY)
    schedule = book.book.functions.schedule(book.loan_id).call()
    (due_1, p1, i1), (due_2, p2, i2) = schedule[0], schedule[1]
    to_date = book.book.functions.payoffAmount(book.loan_id, at).call() - terms.principal
    assert 0 < to_date < i1
    paid = p1 + i1 if amount == "installment" else p1 + to_date
    receipt = book.pay(paid, at)

    (applied,) = book.book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    excess = paid - p1 - to_date
    # Interest only to date; the installment's principal and the excess to principal; the installment is paid.
    assert (applied.args.interest, applied.args.principal, applied.args.paidInstallments) == (to_date, p1 + excess, 1)
    rebased = book.book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)
    assert len(rebased) == (1 if excess else 0)
    left = terms.principal - p1 - excess  # the principal still owed
    # Nothing is due until the second installment's date: not on the first's, not after its grace period.
    for moment in (due_1, due_1 + terms.gracePeriod + DAY, due_2 - 1):
        due = book.book.functions.amountDue(book.loan_id, moment).call()
        assert tuple(due[:4]) == (0, 0, 0, 0) and due[4] == due_2, moment
    # Then the second installment: its principal, and interest on the principal left from the payment date:
    # the rest of the first period and the second period, on `left`.
    after = book.book.functions.schedule(book.loan_id).call()
    second = after[0] if rebased else after[1]
    assert second[0] == due_2
    if not rebased:
        assert tuple(second[1:]) == (p2, i2)  # the schedule after the first installment is unchanged
    due = book.book.functions.amountDue(book.loan_id, due_2).call()
    elapsed = interval - days_early * DAY
    assert due[0] == second[1]
    assert due[1] == second[2] + rest_of_period(second[2], elapsed, interval)
    exact = left * terms.annualRateBps * (due_2 - at) / (10_000 * 365 * DAY)  # simple interest, unrounded
    assert abs(due[1] - exact) <= 2, (due[1], exact)
    assert book.book.functions.payoffAmount(book.loan_id, at).call() == left  # nothing accrued since
    # Paid on its date, the loan goes on: the second installment is paid, the third due next.
    book.pay(due[0] + due[1], due_2)
    assert book.book.functions.progressOf(book.loan_id).call()[0] == 2


def test_a_payment_short_of_the_installment_pays_part_of_it(driver, keys, loan_terms):
    # Ten days in, 20,000: the interest to date and part of the first installment's principal. The installment
    # stays due on its date, for its principal left and the interest of the rest of the period on the principal
    # still owed; the schedule after it is unchanged (nothing is re-based).
    book, at = loan_in_state(driver, keys, loan_terms, 0, 10 * DAY)
    schedule = book.book.functions.schedule(book.loan_id).call()
    (due_1, p1, _), second = schedule[0], schedule[1]
    to_date = book.book.functions.payoffAmount(book.loan_id, at).call() - loan_terms.principal
    receipt = book.pay(20_000, at)
    assert not book.book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)
    (applied,) = book.book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    q = 20_000 - to_date
    assert (applied.args.interest, applied.args.principal, applied.args.paidInstallments) == (to_date, q, 0)
    owed = loan_terms.principal - q
    due = book.book.functions.amountDue(book.loan_id, due_1).call()
    period_interest = half_up(owed * loan_terms.annualRateBps * loan_terms.interval, 10_000 * 365 * DAY)
    assert tuple(due[:2]) == (p1 - q, rest_of_period(period_interest, 10 * DAY, loan_terms.interval))
    assert book.book.functions.schedule(book.loan_id).call()[1] == second


@pytest.mark.parametrize("amount", [1, 500, "interest_to_date"])
def test_a_payment_within_the_interest_to_date_pays_interest_only(driver, keys, loan_terms, amount):
    # The first installment paid on its date; 15 days into the second period, the interest accrued to date is half
    # of 1,593, 796.5 -> 797. A payment up to that is interest only: no principal, nothing re-based, the schedule
    # unchanged, and the interest paid is asked neither at once nor on the installment's date.
    book, at = loan_in_state(driver, keys, loan_terms, 1, 15 * DAY)
    schedule = book.book.functions.schedule(book.loan_id).call()
    assert [(p, i) for _, p, i in schedule] == [(39_221, 2_367), (39_995, 1_593), (40_784, 805)]
    payoff = book.book.functions.payoffAmount(book.loan_id, at).call()
    assert payoff == 80_779 + 797
    paid = 797 if amount == "interest_to_date" else amount
    snap = snapshot(driver.w3)
    receipt = book.pay(paid, at)
    assert not book.book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)
    (applied,) = book.book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    assert (applied.args.interest, applied.args.principal, applied.args.paidInstallments) == (paid, 0, 1)
    assert book.book.functions.schedule(book.loan_id).call() == schedule
    assert book.book.functions.payoffAmount(book.loan_id, at).call() == payoff - paid
    due_2 = schedule[1][0]
    assert tuple(book.book.functions.amountDue(book.loan_id, due_2).call()[:2]) == (39_995, 1_593 - paid)
    revert(driver.w3, snap)
    # Closed on schedule from there, the loan costs what it would have without the payment.
    assert book.cost_to_close(paid, at) == 39_995 + 1_593 + 40_784 + 805


def test_interest_paid_to_date_is_not_asked_again_at_the_same_moment(driver, keys, loan_terms):
    # Ten days in, 20,000 pays the 789 of interest to date and 19,211 of the first installment's principal. At that
    # moment the payoff is the principal still owed, and a second payment then is all principal.
    book, at = loan_in_state(driver, keys, loan_terms, 0, 10 * DAY)
    assert book.book.functions.payoffAmount(book.loan_id, at).call() == 120_000 + 789
    book.pay(20_000, at)
    assert book.book.functions.payoffAmount(book.loan_id, at).call() == 120_000 - 19_211
    receipt = book.pay(5_000, at)
    (applied,) = book.book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    assert (applied.args.interest, applied.args.principal, applied.args.paidInstallments) == (0, 5_000, 0)
    assert book.book.functions.payoffAmount(book.loan_id, at).call() == 120_000 - 24_211


# --- the property ---------------------------------------------------------------------------------------------


def threshold_of(book: Book, at: int) -> tuple[int, int]:
    """The payoff at `at`, and what covers the current installment: the payoff less the principal of the
    installments after it (so its principal left and the interest to date)."""
    payoff = book.book.functions.payoffAmount(book.loan_id, at).call()
    current_due_at = book.book.functions.amountDue(book.loan_id, at).call()[4]
    later = sum(p for due_at, p, _ in book.book.functions.schedule(book.loan_id).call() if due_at > current_due_at)
    return payoff, payoff - later


def paying_more_never_costs_more(w3, book: Book, at: int, rng: random.Random, state: dict) -> None:
    payoff, threshold = threshold_of(book, at)
    # a < b: below the interest to date, around it, around the threshold, well into principal, a unit apart,
    # at and past the payoff; each amount's cost is never above the one's before it (sorted).
    a = rng.choice([1, rng.randint(1, max(1, payoff // 50)), rng.randint(1, max(1, payoff - 1)),
                    threshold - 1, threshold + rng.randint(-3, 3)])
    b = rng.choice([a + 1, rng.randint(a + 1, payoff + 5), payoff, threshold + 1])
    amounts = sorted({x for x in (a, max(b, a + 1), threshold - 1, threshold, threshold + 1, payoff) if x > 0})
    costs = {}
    for amount in amounts:
        snap = snapshot(w3)
        costs[amount] = book.cost_to_close(amount, at)
        revert(w3, snap)
    case = (state, threshold, payoff, costs)
    assert costs[payoff] == payoff, case
    assert all(costs[y] <= costs[x] for x, y in pairwise(amounts)), case
    assert payoff <= min(costs.values()), case


def random_states(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        n = rng.randint(1, 6)
        interval = rng.choice([7, 14, 30]) * DAY
        yield {
            "principal": rng.choice([rng.randint(50, 2_000), rng.randint(2_000, 200_000)]),
            "apr_bps": rng.choice([0, 1200, 2400, rng.randint(1, 3600)]),
            "n": n,
            "interval": interval,
            "paid": rng.randint(0, n - 1),
            "elapsed": rng.randint(1, interval - 1),
            "pick": rng.random(),
        }


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("amortization", [Amortization.ANNUITY, Amortization.EQUAL_PRINCIPAL, Amortization.BULLET])
def test_paying_more_never_costs_more_and_the_payoff_costs_least(driver, keys, loan_terms, w3, amortization, method):
    for s in random_states(1000 * int(amortization) + method, 8):
        base = snapshot(w3)
        terms = replace(loan_terms, principal=s["principal"], annualRateBps=s["apr_bps"], amortization=amortization,
                        installments=s["n"], interval=s["interval"], earlyRepayment=method)
        book, at = loan_in_state(driver, keys, terms, s["paid"], s["elapsed"])
        paying_more_never_costs_more(w3, book, at, random.Random(s["pick"]), s)
        revert(w3, base)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("amortization", [Amortization.ANNUITY, Amortization.EQUAL_PRINCIPAL, Amortization.BULLET])
def test_paying_more_never_costs_more_after_an_earlier_payment_ahead(driver, keys, loan_terms, w3, amortization,
                                                                     method):
    # The same, on states an earlier payment ahead of schedule left: part of the current installment (it stays,
    # asking the rest of the period's interest on less principal), exactly what covers it (paid; its period's
    # rest carried into the next), or more (the rest re-based). The moment tried is later, before the next date.
    for s in random_states(7000 + 1000 * int(amortization) + method, 5):
        base = snapshot(w3)
        terms = replace(loan_terms, principal=s["principal"], annualRateBps=s["apr_bps"], amortization=amortization,
                        installments=s["n"], interval=s["interval"], earlyRepayment=method)
        book, earlier = loan_in_state(driver, keys, terms, s["paid"], s["elapsed"])
        rng = random.Random(s["pick"])
        payoff, threshold = threshold_of(book, earlier)
        kind = rng.choice(["part", "cover", "more"])
        s["earlier"] = kind
        amount = {"part": rng.randint(1, max(1, threshold - 1)), "cover": threshold,
                  "more": rng.randint(threshold, max(threshold, payoff - 1))}[kind]
        if 0 < amount < payoff:
            book.pay(amount, earlier)
            due_at = book.book.functions.amountDue(book.loan_id, earlier).call()[4]
            if due_at > earlier + 1:
                paying_more_never_costs_more(w3, book, rng.randint(earlier + 1, due_at - 1), rng, s)
        revert(w3, base)


@pytest.mark.parametrize("method", METHODS)
def test_the_installment_paid_ahead_then_more_at_once_costs_what_one_payment_would(driver, keys, loan_terms, w3,
                                                                                  method):
    # 120,000 at 24 %, day 10: 40,010 covers installment 1 (39,221 and 789 of interest to date). 50,000 more at the
    # same moment prepays, as it would have in one payment of 90,010; it does not pay installment 2 ahead (which
    # would leave the principal after it owed longer, and cost the borrower 122,408 in all).
    book, at = loan_in_state(driver, keys, replace(loan_terms, earlyRepayment=method), 0, 10 * DAY)
    snap = snapshot(w3)
    whole = book.cost_to_close(90_010, at)
    revert(w3, snap)
    receipt = book.pay(40_010, at)
    assert book.book.functions.progressOf(book.loan_id).call()[0] == 1
    assert not book.book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)
    receipt = book.pay(50_000, at)
    (applied,) = book.book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    assert (applied.args.principal, applied.args.interest, applied.args.paidInstallments) == (50_000, 0, 1)
    assert book.book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)
    split = 40_010 + 50_000
    for due_at, _, _ in book.book.functions.schedule(book.loan_id).call():
        if book.status() == REPAID:
            break
        due = book.book.functions.amountDue(book.loan_id, due_at).call()
        if due[0] + due[1]:
            book.pay(due[0] + due[1], due_at)
            split += due[0] + due[1]
    assert split == whole == {REDUCE_INSTALLMENTS: 121_801, REDUCE_AMOUNT: 122_108}[method]


def test_a_payment_later_in_the_same_period_pays_the_interest_accrued_since_then_prepays(driver, keys, loan_terms):
    # Installment 1 paid ahead on day 10; on day 20, 30,000: the ten days' interest on the principal owed
    # (80,779 at 24 %: 80,779 * 0.24 * 10 / 365 = 531.1) first, then it all prepays.
    book, at = loan_in_state(driver, keys, loan_terms, 0, 10 * DAY)
    book.pay(40_010, at)
    receipt = book.pay(30_000, at + 10 * DAY)
    (applied,) = book.book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    assert (applied.args.interest, applied.args.principal, applied.args.paidInstallments) == (531, 29_469, 1)
    assert book.book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)


def split_costs_what_one_would(w3, book: Book, at: int, rng: random.Random, state: dict) -> None:
    """The first part short of the current installment, exactly covering it, or beyond it; the second anything up
    to what closes the loan: paid at `at` one after the other, they cost what their sum would."""
    payoff, threshold = threshold_of(book, at)
    for first in {rng.randint(1, max(1, threshold - 1)), threshold, rng.randint(threshold, max(threshold, payoff - 1))}:
        if not 0 < first < payoff:
            continue
        second = rng.randint(1, payoff - first)
        snap = snapshot(w3)
        whole = book.cost_to_close(first + second, at)
        revert(w3, snap)
        snap = snapshot(w3)
        book.pay(first, at)
        split = first + book.cost_to_close(second, at)
        revert(w3, snap)
        assert split == whole, (state, threshold, payoff, first, second)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("amortization", [Amortization.ANNUITY, Amortization.EQUAL_PRINCIPAL, Amortization.BULLET])
def test_a_payment_split_in_two_at_one_moment_costs_what_it_would_in_one(driver, keys, loan_terms, w3, amortization,
                                                                         method):
    for s in random_states(9000 + 1000 * int(amortization) + method, 4):
        base = snapshot(w3)
        terms = replace(loan_terms, principal=s["principal"], annualRateBps=s["apr_bps"], amortization=amortization,
                        installments=s["n"], interval=s["interval"], earlyRepayment=method)
        book, at = loan_in_state(driver, keys, terms, s["paid"], s["elapsed"])
        split_costs_what_one_would(w3, book, at, random.Random(s["pick"]), s)
        revert(w3, base)


@pytest.mark.parametrize("day_count", [DayCount.THIRTY_360, DayCount.ACTUAL_365_FIXED])
@pytest.mark.parametrize("method", METHODS)
def test_paying_more_never_costs_more_on_a_monthly_loan(driver, keys, loan_terms, w3, day_count, method):
    # The same property on monthly annuities: periods of 28 to 31 days, each accruing over its real length (and
    # on actual days, charging its own days' interest). The moment tried is within the shortest month.
    for s in random_states(500 + 10 * int(day_count) + method, 4):
        base = snapshot(w3)
        terms = replace(loan_terms, principal=s["principal"], annualRateBps=s["apr_bps"], installments=s["n"],
                        interval=0, frequency=Frequency.MONTHLY, dayCount=day_count, earlyRepayment=method)
        book, at = loan_in_state(driver, keys, terms, s["paid"], s["elapsed"] % (28 * DAY - 1) + 1)
        paying_more_never_costs_more(w3, book, at, random.Random(s["pick"]), s)
        revert(w3, base)


@pytest.mark.parametrize("day_count", [DayCount.THIRTY_360, DayCount.ACTUAL_365_FIXED])
@pytest.mark.parametrize("method", METHODS)
def test_a_payment_split_in_two_at_one_moment_costs_what_it_would_in_one_on_a_monthly_loan(
        driver, keys, loan_terms, w3, day_count, method):
    for s in random_states(600 + 10 * int(day_count) + method, 3):
        base = snapshot(w3)
        terms = replace(loan_terms, principal=s["principal"], annualRateBps=s["apr_bps"], installments=s["n"],
                        interval=0, frequency=Frequency.MONTHLY, dayCount=day_count, earlyRepayment=method)
        book, at = loan_in_state(driver, keys, terms, s["paid"], s["elapsed"] % (28 * DAY - 1) + 1)
        split_costs_what_one_would(w3, book, at, random.Random(s["pick"]), s)
        revert(w3, base)

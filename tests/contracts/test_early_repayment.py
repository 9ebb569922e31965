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

import pytest
from eth_utils import keccak
from web3.logs import DISCARD

from ledger.typed_data import Amortization, LoanTerms

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
    assert (applied.args.interest, applied.args.principal, applied.args.paidInstallments) == (789, 119_999, 0)
    (rebased,) = book.book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)
    assert (rebased.args.rebasedAt, rebased.args.principal) == (0, 1)
    assert rebased.args.installments == (1 if method == REDUCE_INSTALLMENTS else 3)
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
    # Twelve installments, three paid on time; 20 days into the fourth, 30,000 beyond the interest to date. The
    # schedule from installment 4 on is the re-based plan; amountDue and the payoff follow it.
    terms = replace(loan_terms, installments=12, principal=120_000, earlyRepayment=REDUCE_AMOUNT)
    book, at = loan_in_state(driver, keys, terms, 3, 20 * DAY)
    before = book.book.functions.schedule(book.loan_id).call()
    payoff = book.book.functions.payoffAmount(book.loan_id, at).call()
    receipt = book.pay(30_000, at)
    (rebased,) = book.book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)
    after = book.book.functions.schedule(book.loan_id).call()
    assert rebased.args.rebasedAt == 3 and rebased.args.installments == 9 == len(after)
    assert [due for due, _, _ in after] == [due for due, _, _ in before[3:]]  # same due dates
    assert sum(p for _, p, _ in after) == rebased.args.principal == payoff - 30_000
    assert all(p + i < bp + bi for (_, p, i), (_, bp, bi) in zip(after[1:], before[4:], strict=True))
    # Due on installment 4's date: its principal and the interest not settled by the prepayment.
    due = book.book.functions.amountDue(book.loan_id, after[0][0]).call()
    assert due[0] == after[0][1] and 0 < due[1] < after[0][2]
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


# --- the property ---------------------------------------------------------------------------------------------


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
        payoff = book.book.functions.payoffAmount(book.loan_id, at).call()
        rng = random.Random(s["pick"])
        # a < b: below the interest to date, around it, well into principal, a unit apart, at and past the payoff.
        a = rng.choice([1, rng.randint(1, max(1, payoff // 50)), rng.randint(1, max(1, payoff - 1))])
        b = rng.choice([a + 1, rng.randint(a + 1, payoff + 5), payoff])
        b = max(b, a + 1)
        costs = {}
        for amount in (a, b, payoff):
            state = snapshot(w3)
            costs[amount] = book.cost_to_close(amount, at)
            revert(w3, state)
        case = (s, a, b, payoff, costs)
        assert costs[payoff] == payoff, case
        assert costs[b] <= costs[a], case
        assert payoff <= min(costs[a], costs[b]), case
        revert(w3, base)

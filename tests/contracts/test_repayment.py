"""Repayments on the real loan book: allocation, late fee and penalty at chosen times, prepayment, refusals.

Expected amounts are computed here from the terms with the textbook formulas (half-up to the minor unit),
not read back from the contract, so a wrong charge or a wrong order fails the test.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_utils import keccak
from web3.logs import DISCARD

from ledger.errors import ErrorDecoder
from ledger.typed_data import Amortization, LoanTerms

DAY = 86_400
YEAR = 365 * DAY
ACTIVE, REPAID, DEFAULTED, WRITTEN_OFF, OVERPAID = 5, 6, 7, 8, 9


def half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


def late_fee(amount: int, terms: LoanTerms) -> int:
    return half_up(amount * terms.lateFeeBps, 10_000)


def penalty(amount: int, terms: LoanTerms, seconds: int) -> int:
    return half_up(amount * terms.penaltyRateBps * seconds, 10_000 * YEAR)


def ref(label: str) -> bytes:
    return keccak(text=label)


def mine_at(w3, timestamp: int) -> None:
    """The next block is mined at `timestamp`."""
    w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


def mine_block_at(w3, timestamp: int) -> None:
    """A block at `timestamp` now, so calls (which run on the latest block) see that time."""
    w3.provider.make_request("evm_mine", [timestamp])


def repay_at(driver, loan_id: int, amount: int, label: str, timestamp: int):
    """Confirms a repayment paid at `timestamp`, mined in a block with that timestamp; returns its RepaymentApplied."""
    mine_at(driver.w3, timestamp)
    book = driver.stack.book
    tx = book.functions.confirmRepayment(loan_id, ref(label), amount, timestamp).transact(
        {"from": driver.keys["oracle"].address, "gas": 1_000_000})  # no estimate: it would run before `timestamp`
    receipt = driver.w3.eth.wait_for_transaction_receipt(tx)
    assert receipt.status == 1
    (applied,) = book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    return applied.args, receipt


def status(stack, loan_id: int) -> int:
    return stack.book.functions.loanOf(loan_id).call()[2]


@pytest.fixture
def loan(driver, keys, loan_terms):
    loan_id = driver.active_loan(keys["alice"], loan_terms)
    disbursed_at = driver.stack.book.functions.loanOf(loan_id).call()[3]
    schedule = driver.stack.book.functions.schedule(loan_id).call()
    return loan_id, disbursed_at, schedule


def test_installments_are_paid_interest_then_principal_and_the_last_closes_the_loan(driver, stack, keys, loan, loan_terms):
    loan_id, disbursed_at, schedule = loan
    book = stack.book
    assert sum(item[1] for item in schedule) == loan_terms.principal
    for k, (due_at, principal, interest) in enumerate(schedule, start=1):
        assert due_at == disbursed_at + k * loan_terms.interval
        # On the due date: a day earlier the last one would be a prepayment with less interest accrued.
        args, receipt = repay_at(driver, loan_id, principal + interest, f"inst-{k}", due_at)
        assert (args.principal, args.interest, args.lateFee, args.penalty) == (principal, interest, 0, 0)
        assert args.paidInstallments == k
    assert status(stack, loan_id) == REPAID
    (closed,) = book.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)
    assert closed.args.principalRepaid == loan_terms.principal
    assert closed.args.interestPaid == sum(item[2] for item in schedule)
    assert book.functions.outstandingPrincipal(keys["alice"].address, b"CNY").call() == 0


def test_late_fee_is_charged_once_when_grace_ends_and_penalty_runs_from_there(driver, stack, loan, loan_terms):
    loan_id, disbursed_at, schedule = loan
    book = stack.book
    (due1, p1, i1), (due2, p2, i2) = schedule[0], schedule[1]
    late1, late2 = due1 + loan_terms.gracePeriod, due2 + loan_terms.gracePeriod

    # Inside grace: nothing but the installment itself.
    inside = book.functions.amountDue(loan_id, late1 - 1).call()
    assert inside[:4] == (p1, i1, 0, 0)
    assert inside[4] == due1

    # Ten days after grace ended on the first installment.
    t1 = late1 + 10 * DAY
    due = book.functions.amountDue(loan_id, t1).call()
    assert due[:4] == (p1, i1, late_fee(p1 + i1, loan_terms), penalty(p1 + i1, loan_terms, 10 * DAY))

    # Five days after grace ended on the second as well: one fee each, penalties each from its own grace end.
    t2 = late2 + 5 * DAY
    due = book.functions.amountDue(loan_id, t2).call()
    assert due[0] == p1 + p2 and due[1] == i1 + i2
    assert due[2] == late_fee(p1 + i1, loan_terms) + late_fee(p2 + i2, loan_terms)
    assert due[3] == penalty(p1 + i1, loan_terms, t2 - late1) + penalty(p2 + i2, loan_terms, t2 - late2)

    # A payment at t1 covers the penalty, then the late fee, then 100 of interest: that order, those amounts.
    fee, pen = late_fee(p1 + i1, loan_terms), penalty(p1 + i1, loan_terms, 10 * DAY)
    args, receipt = repay_at(driver, loan_id, pen + fee + 100, "late-1", t1)
    assert (args.penalty, args.lateFee, args.interest, args.principal) == (pen, fee, 100, 0)
    (accrued,) = book.events.LateChargesAccrued().process_receipt(receipt, errors=DISCARD)
    assert (accrued.args.lateFee, accrued.args.penalty) == (fee, pen)

    # Five days on: no second late fee for the same installment; penalty on what is still unpaid of it.
    later = book.functions.amountDue(loan_id, t1 + 5 * DAY).call()
    assert later[2] == 0
    assert later[3] == penalty(p1 + i1 - 100, loan_terms, 5 * DAY)
    progress = book.functions.progressOf(loan_id).call()
    assert progress[4:6] == (fee, pen)  # lateFeePaid, penaltyPaid


def test_a_partial_payment_fills_the_oldest_installment_first(driver, stack, loan, loan_terms):
    loan_id, _, schedule = loan
    (due1, p1, i1), (_, _, i2) = schedule[0], schedule[1]
    # All of the first installment and more, paid on the first due date (no charges yet). The rest is paid ahead
    # of the second installment at the very start of its period: no interest has accrued on it yet, so it is all
    # principal (early repayment), where it once paid the second installment's full interest first.
    args, _ = repay_at(driver, loan_id, p1 + i1 + i2 + 7, "partial", due1)
    assert (args.interest, args.principal, args.paidInstallments) == (i1, p1 + i2 + 7, 1)
    due = stack.book.functions.amountDue(loan_id, due1).call()
    assert due[:2] == (0, 0)  # nothing due yet: the second installment falls due later
    outstanding = loan_terms.principal - p1 - i2 - 7
    assert stack.book.functions.outstandingPrincipal(driver.keys["alice"].address, b"CNY").call() == outstanding


def test_a_zero_repayment_is_refused_and_changes_nothing(driver, stack, loan, revert_name):
    loan_id, disbursed_at, _ = loan
    book = stack.book
    at = disbursed_at + 10 * DAY
    before = book.functions.progressOf(loan_id).call()
    mine_block_at(driver.w3, at)
    zero = book.functions.confirmRepayment(loan_id, ref("zero"), 0, at)
    assert revert_name(zero, driver.keys["oracle"].address) == "LoanBookZeroAmount"
    assert book.functions.progressOf(loan_id).call() == before
    assert not book.functions.isPaymentReferenceUsed(ref("zero")).call()


def test_prepayment_pays_interest_accrued_to_date_only_and_closes_the_loan(driver, stack, loan, loan_terms):
    loan_id, disbursed_at, schedule = loan
    at = disbursed_at + 10 * DAY
    accrued = half_up(schedule[0][2] * 10 * DAY, loan_terms.interval)
    payoff = stack.book.functions.payoffAmount(loan_id, at).call()
    assert payoff == loan_terms.principal + accrued
    args, _ = repay_at(driver, loan_id, payoff, "payoff", at)
    assert (args.principal, args.interest) == (loan_terms.principal, accrued)
    assert status(stack, loan_id) == REPAID
    assert stack.book.functions.payoffAmount(loan_id, at + DAY).call() == 0


@pytest.mark.parametrize("amortization", [Amortization.EQUAL_PRINCIPAL, Amortization.BULLET])
def test_other_amortizations_repay_to_closure(driver, stack, keys, loan_terms, amortization):
    terms = replace(loan_terms, amortization=amortization)
    loan_id = driver.active_loan(keys["bob"], terms)
    schedule = stack.book.functions.schedule(loan_id).call()
    if amortization == Amortization.BULLET:
        assert [item[1] for item in schedule] == [0, 0, terms.principal]
    else:
        assert sum(item[1] for item in schedule) == terms.principal
        assert max(item[1] for item in schedule) - min(item[1] for item in schedule) <= 1
    for k, (due_at, principal, interest) in enumerate(schedule, start=1):
        args, _ = repay_at(driver, loan_id, principal + interest, f"{amortization}-{k}", due_at)
        assert (args.principal, args.interest) == (principal, interest)
    assert status(stack, loan_id) == REPAID


def test_default_only_past_the_threshold_then_write_off(driver, stack, keys, loan, loan_terms, revert_name):
    loan_id, disbursed_at, schedule = loan
    book, operator, oracle = stack.book, keys["operator"].address, keys["oracle"].address
    repay_at(driver, loan_id, 1_000, "small", schedule[0][0] - DAY)
    threshold = schedule[0][0] + loan_terms.defaultAfter

    mine_block_at(driver.w3, threshold)
    assert revert_name(book.functions.declareDefault(loan_id), oracle) == "LoanBookNotInDefault"
    mine_block_at(driver.w3, threshold + 1)
    assert revert_name(book.functions.declareDefault(loan_id), keys["eve"].address) == "LoanBookUnauthorizedDefault"
    assert revert_name(book.functions.writeOff(loan_id), stack.four_eyes.address) == "LoanBookInvalidStatus"
    receipt = driver.w3.eth.wait_for_transaction_receipt(book.functions.declareDefault(loan_id).transact({"from": oracle}))
    (defaulted,) = book.events.LoanDefaulted().process_receipt(receipt, errors=DISCARD)
    assert defaulted.args.oldestDueAt == schedule[0][0] and defaulted.args.actor == oracle
    assert status(stack, loan_id) == DEFAULTED

    # Money still arriving on a defaulted loan is credited; then the rest is written off.
    late, _ = repay_at(driver, loan_id, 500, "after-default", threshold + 2)
    assert late.amount == 500 and late.penalty + late.lateFee + late.interest + late.principal == 500
    principal_repaid = book.functions.progressOf(loan_id).call()[2]
    assert revert_name(book.functions.writeOff(loan_id), oracle) == "AccessControlUnauthorizedAccount"
    assert revert_name(book.functions.writeOff(loan_id), operator) == "AccessControlUnauthorizedAccount"  # alone
    receipt = driver.write_off(loan_id)
    (written,) = book.events.LoanWrittenOff().process_receipt(receipt, errors=DISCARD)
    assert written.args.principalWrittenOff == loan_terms.principal - principal_repaid
    assert status(stack, loan_id) == WRITTEN_OFF
    assert book.functions.outstandingPrincipal(keys["alice"].address, b"CNY").call() == 0


def test_cancel_reject_and_the_credit_limit(driver, stack, keys, loan_terms, revert_name):
    book, alice, operator = stack.book, keys["alice"], keys["operator"].address
    driver.register(alice)
    driver.score(alice, limit=150_000)

    requested = driver.request(alice, loan_terms)
    assert revert_name(book.functions.cancel(requested), keys["bob"].address) == "LoanBookNotBorrower"
    driver.w3.eth.wait_for_transaction_receipt(book.functions.cancel(requested).transact({"from": alice.address}))
    assert status(stack, requested) == 4  # Cancelled

    rejected = driver.request(alice, loan_terms)
    driver.w3.eth.wait_for_transaction_receipt(book.functions.reject(rejected, b"policy".ljust(32, b"\0")).transact({"from": operator}))
    assert status(stack, rejected) == 3
    assert revert_name(book.functions.approve(rejected), operator) == "LoanBookInvalidStatus"

    first = driver.request(alice, loan_terms)
    driver.approve(first)
    assert book.functions.outstandingPrincipal(alice.address, b"CNY").call() == loan_terms.principal
    second = driver.request(alice, replace(loan_terms, principal=30_001))
    assert revert_name(book.functions.approve(second), operator) == "LoanBookCreditLimitExceeded"

    # Cancelling an approved loan frees its exposure; once disbursed it can no longer be cancelled.
    driver.w3.eth.wait_for_transaction_receipt(book.functions.cancel(first).transact({"from": alice.address}))
    assert book.functions.outstandingPrincipal(alice.address, b"CNY").call() == 0
    driver.approve(second)
    driver.disburse(second, 30_001, b"payout-2")
    assert status(stack, second) == ACTIVE
    assert revert_name(book.functions.cancel(second), alice.address) == "LoanBookInvalidStatus"


def test_a_reference_is_credited_once_ever_and_a_batch_skips_only_its_duplicate(driver, stack, keys, loan, revert_name):
    loan_id, disbursed_at, _ = loan
    book, oracle = stack.book, keys["oracle"].address
    payout = b"payout-1".ljust(32, b"\0")
    assert revert_name(book.functions.confirmRepayment(loan_id, payout, 100, driver.now), oracle) == "LoanBookDuplicatePayment"

    repay_at(driver, loan_id, 100, "r-1", disbursed_at + DAY)
    now = driver.now
    items = [(loan_id, ref("r-2"), 200, now), (loan_id, ref("r-1"), 100, now), (loan_id, ref("r-3"), 300, now)]
    receipt = driver.w3.eth.wait_for_transaction_receipt(book.functions.confirmRepayments(items).transact({"from": oracle}))
    assert receipt.status == 1
    applied = book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    assert [a.args.paymentRef for a in applied] == [ref("r-2"), ref("r-3")]
    (skipped,) = book.events.PaymentSkipped().process_receipt(receipt, errors=DISCARD)
    assert skipped.args.paymentRef == ref("r-1")
    assert ErrorDecoder([book.abi]).decode(skipped.args.reason).name == "LoanBookDuplicatePayment"
    assert book.functions.progressOf(loan_id).call()[3] + book.functions.progressOf(loan_id).call()[2] == 600


def test_paying_the_payoff_after_late_charges_closes_the_loan_and_a_unit_more_is_held_as_credit(
        driver, stack, keys, loan, loan_terms):
    loan_id, _, schedule = loan
    book = stack.book
    # Past the last due date's grace: every installment is overdue, each with its late fee and penalty.
    at = schedule[-1][0] + loan_terms.gracePeriod + 7 * DAY
    owed = [p + i for _, p, i in schedule]
    fees = sum(late_fee(amount, loan_terms) for amount in owed)
    penalties = sum(penalty(amount, loan_terms, at - due_at - loan_terms.gracePeriod)
                    for amount, (due_at, _, _) in zip(owed, schedule))
    payoff = book.functions.payoffAmount(loan_id, at).call()
    assert payoff == sum(owed) + fees + penalties

    # One unit more than owed closes the loan too, the unit held as credit (then back in time).
    snapshot = driver.w3.provider.make_request("evm_snapshot", [])["result"]
    args, receipt = repay_at(driver, loan_id, payoff + 1, "over", at)
    (held,) = book.events.OverpaymentHeld().process_receipt(receipt, errors=DISCARD)
    assert (args.amount, held.args.credit, held.args.creditBalance) == (payoff, 1, 1)
    assert status(stack, loan_id) == OVERPAID
    assert not book.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)  # not closed until refunded
    driver.w3.provider.make_request("evm_revert", [snapshot])

    args, receipt = repay_at(driver, loan_id, payoff, "payoff-late", at)
    assert (args.principal, args.interest, args.lateFee, args.penalty) == (
        loan_terms.principal, sum(i for _, _, i in schedule), fees, penalties)
    assert status(stack, loan_id) == REPAID
    (closed,) = book.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)
    assert closed.args.principalRepaid == loan_terms.principal
    assert book.functions.outstandingPrincipal(keys["alice"].address, b"CNY").call() == 0


def test_after_two_missed_installments_charges_go_first_then_the_oldest_installment(driver, stack, loan, loan_terms):
    loan_id, _, schedule = loan
    book = stack.book
    (due1, p1, i1), (due2, p2, i2) = schedule[0], schedule[1]
    at = due2 + loan_terms.gracePeriod + 4 * DAY
    late_from = [due1 + loan_terms.gracePeriod, due2 + loan_terms.gracePeriod]
    fees = late_fee(p1 + i1, loan_terms) + late_fee(p2 + i2, loan_terms)
    pen = penalty(p1 + i1, loan_terms, at - late_from[0]) + penalty(p2 + i2, loan_terms, at - late_from[1])

    # Less than the penalty: all of it goes to penalty.
    args, _ = repay_at(driver, loan_id, pen - 1, "small", at)
    assert (args.penalty, args.lateFee, args.interest, args.principal) == (pen - 1, 0, 0, 0)
    # Then: the last unit of penalty, both fees, installment 1 whole, installment 2's interest, 5 of its principal.
    args, _ = repay_at(driver, loan_id, 1 + fees + i1 + p1 + i2 + 5, "rest", at)
    assert (args.penalty, args.lateFee, args.interest, args.principal, args.paidInstallments) == (
        1, fees, i1 + i2, p1 + 5, 1)
    progress = book.functions.progressOf(loan_id).call()
    assert progress[2:8] == (p1 + 5, i1 + i2, fees, pen, 0, 0)  # repaid, interest, fees, penalty paid; none unpaid
    # What is still due: the rest of installment 2, no new fee, penalty only on what of it is unpaid.
    due = book.functions.amountDue(loan_id, at + DAY).call()
    assert due[:4] == (p2 - 5, 0, 0, penalty(p2 - 5, loan_terms, DAY))
    assert due[4] == due2


@pytest.mark.parametrize("actor", ["operator", "oracle"])
def test_default_may_be_declared_by_the_operator_or_the_oracle(driver, stack, keys, loan, loan_terms, revert_name, actor):
    loan_id, _, schedule = loan
    book = stack.book
    requested = driver.request(keys["alice"], loan_terms)
    mine_block_at(driver.w3, schedule[0][0] + loan_terms.defaultAfter + 1)
    assert revert_name(book.functions.declareDefault(requested), keys[actor].address) == "LoanBookInvalidStatus"
    receipt = driver.w3.eth.wait_for_transaction_receipt(
        book.functions.declareDefault(loan_id).transact({"from": keys[actor].address}))
    (defaulted,) = book.events.LoanDefaulted().process_receipt(receipt, errors=DISCARD)
    assert defaulted.args.actor == keys[actor].address
    assert status(stack, loan_id) == DEFAULTED
    assert revert_name(book.functions.declareDefault(loan_id), keys[actor].address) == "LoanBookInvalidStatus"
    # Still owed in full: default does not forgive, it only opens the way to a write-off.
    assert book.functions.outstandingPrincipal(keys["alice"].address, b"CNY").call() == loan_terms.principal


def test_a_limit_may_be_used_exactly_but_not_exceeded_by_one_unit(driver, stack, keys, loan_terms, revert_name):
    book, alice, operator = stack.book, keys["alice"], keys["operator"].address
    driver.register(alice)
    driver.score(alice, limit=150_000)
    first = driver.request(alice, loan_terms)
    driver.approve(first)
    over = driver.request(alice, replace(loan_terms, principal=30_001))
    exact = driver.request(alice, replace(loan_terms, principal=30_000))
    assert revert_name(book.functions.approve(over), operator) == "LoanBookCreditLimitExceeded"
    driver.approve(exact)
    assert book.functions.outstandingPrincipal(alice.address, b"CNY").call() == 150_000
    # Repaid principal frees the limit again.
    driver.disburse(first, loan_terms.principal, b"payout-first")
    driver.repay(first, 1, b"one-unit")
    # Paid seconds after the payout, ahead of schedule: no unit of interest has accrued yet, so it prepays principal.
    assert book.functions.outstandingPrincipal(alice.address, b"CNY").call() == 149_999
    at = driver.now + 1
    repay_at(driver, first, book.functions.payoffAmount(first, at).call(), "payoff-first", at)
    assert status(stack, first) == REPAID
    assert book.functions.outstandingPrincipal(alice.address, b"CNY").call() == 30_000
    driver.approve(over)
    assert book.functions.outstandingPrincipal(alice.address, b"CNY").call() == 60_001


def test_a_batch_skips_a_refused_or_duplicate_item_and_applies_the_rest(driver, stack, keys, loan, loan_terms):
    loan_id, disbursed_at, _ = loan
    book, oracle = stack.book, keys["oracle"].address
    bob = keys["bob"]
    driver.register(bob)
    driver.score(bob, report_id=2)
    second = driver.request(bob, loan_terms)
    driver.approve(second)
    now = driver.now

    # Disbursements: one already used reference (alice's payout) and one good item.
    items = [(second, b"payout-1".ljust(32, b"\0"), loan_terms.principal, now),
             (second, ref("payout-bob"), loan_terms.principal, now)]
    receipt = driver.w3.eth.wait_for_transaction_receipt(
        book.functions.confirmDisbursements(items).transact({"from": oracle}))
    (skipped,) = book.events.PaymentSkipped().process_receipt(receipt, errors=DISCARD)
    assert ErrorDecoder([book.abi]).decode(skipped.args.reason).name == "LoanBookDuplicatePayment"
    (disbursed,) = book.events.LoanDisbursed().process_receipt(receipt, errors=DISCARD)
    assert (disbursed.args.loanId, disbursed.args.paymentRef) == (second, ref("payout-bob"))
    assert status(stack, second) == ACTIVE

    # Repayments: one dated before alice's payout is skipped (its reference stays unused); bob's applies.
    mine_at(driver.w3, now + 1)
    items = [(loan_id, ref("too-early"), 1_000, disbursed_at - 1), (second, ref("bob-1"), 1_000, now)]
    receipt = driver.w3.eth.wait_for_transaction_receipt(
        book.functions.confirmRepayments(items).transact({"from": oracle, "gas": 2_000_000}))
    (skipped,) = book.events.PaymentSkipped().process_receipt(receipt, errors=DISCARD)
    reason = ErrorDecoder([book.abi]).decode(skipped.args.reason)
    assert (reason.name, skipped.args.loanId) == ("LoanBookInvalidPaymentTime", loan_id)
    (applied,) = book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    assert (applied.args.loanId, applied.args.amount) == (second, 1_000)
    assert not book.functions.isPaymentReferenceUsed(ref("too-early")).call()
    assert book.functions.progressOf(loan_id).call()[2:4] == (0, 0)


def test_repayments_are_refused_on_loans_not_running_of_zero_or_at_impossible_times(driver, stack, keys, loan,
                                                                                   loan_terms, revert_name):
    loan_id, disbursed_at, _ = loan
    book, oracle = stack.book, keys["oracle"].address
    requested = driver.request(keys["alice"], loan_terms)
    now = driver.now
    assert revert_name(book.functions.confirmRepayment(requested, ref("a"), 100, now), oracle) == "LoanBookInvalidStatus"
    assert revert_name(book.functions.confirmRepayment(99, ref("a"), 100, now), oracle) == "LoanBookUnknownLoan"
    assert revert_name(book.functions.confirmRepayment(loan_id, ref("a"), 0, now), oracle) == "LoanBookZeroAmount"
    assert revert_name(book.functions.confirmRepayment(loan_id, b"\0" * 32, 100, now), oracle) == "LoanBookEmptyPaymentRef"
    assert revert_name(book.functions.confirmRepayment(loan_id, ref("a"), 100, now + DAY), oracle) == \
        "LoanBookInvalidPaymentTime"
    assert revert_name(book.functions.confirmRepayment(loan_id, ref("a"), 100, disbursed_at - 1), oracle) == \
        "LoanBookInvalidPaymentTime"
    assert revert_name(book.functions.confirmDisbursement(requested, ref("b"), loan_terms.principal, now),
                       oracle) == "LoanBookInvalidStatus"
    driver.approve(requested)
    assert revert_name(book.functions.confirmDisbursement(requested, ref("b"), loan_terms.principal - 1, now),
                       oracle) == "LoanBookDisbursementMismatch"
    assert book.functions.progressOf(loan_id).call()[2:4] == (0, 0)
    assert not book.functions.isPaymentReferenceUsed(ref("a")).call()

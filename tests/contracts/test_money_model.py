"""Where received money goes on the real loan book: credit, refunds, recoveries, reversals, bounced payouts.

Each test drives the contract through one path of the money model and checks the book's own views (status,
progress, amounts due, exposure) and its events against amounts worked out here from the schedule.
"""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from ledger.book import LoanStatus, read_loan, read_progress
from test_repayment import mine_at, mine_block_at, ref, repay_at

DAY = 86_400


def send_at(driver, fn, timestamp: int):
    """Sends `fn` as the oracle in a block mined at `timestamp`; returns the receipt."""
    mine_at(driver.w3, timestamp)
    tx = fn.transact({"from": driver.keys["oracle"].address, "gas": 3_000_000})
    receipt = driver.w3.eth.wait_for_transaction_receipt(tx)
    assert receipt.status == 1
    return receipt


def state(book, loan_id: int) -> tuple[LoanStatus, dict]:
    return read_loan(book, loan_id).status, read_progress(book, loan_id).__dict__


def allocation(args, credit: int = 0) -> tuple[int, ...]:
    return (args.principal, args.interest, args.lateFee, args.penalty, credit, 0)


@pytest.fixture
def loan(driver, keys, loan_terms):
    loan_id = driver.active_loan(keys["alice"], loan_terms)
    disbursed_at = driver.stack.book.functions.loanOf(loan_id).call()[3]
    schedule = driver.stack.book.functions.schedule(loan_id).call()
    return loan_id, disbursed_at, schedule


def test_an_overpayment_closes_the_loan_with_the_rest_held_as_credit_until_refunded(driver, stack, loan, loan_terms,
                                                                                     revert_name):
    loan_id, disbursed_at, _ = loan
    book, oracle = stack.book, driver.keys["oracle"].address
    at = disbursed_at + 10 * DAY
    payoff = book.functions.payoffAmount(loan_id, at).call()
    args, receipt = repay_at(driver, loan_id, payoff + 5_000, "over", at)
    (held,) = book.events.OverpaymentHeld().process_receipt(receipt, errors=DISCARD)
    assert (args.amount, args.principal, held.args.credit, held.args.creditBalance) == (
        payoff, loan_terms.principal, 5_000, 5_000)
    status, progress = state(book, loan_id)
    assert (status, progress["credit_balance"]) == (LoanStatus.OVERPAID, 5_000)
    assert book.functions.outstandingPrincipal(driver.keys["alice"].address, b"CNY").call() == 0
    assert book.functions.payoffAmount(loan_id, at).call() == 0
    # An Overpaid loan takes no more repayments (the rail's money would be suspense, off the book).
    mine_block_at(driver.w3, at + 1)
    assert revert_name(book.functions.confirmRepayment(loan_id, ref("more"), 1, at + 1), oracle) == \
        "LoanBookInvalidStatus"

    # Refunds: more than the balance is refused; two parts close the credit, and the loan is Repaid.
    assert revert_name(book.functions.confirmCreditRefund(loan_id, ref("r0"), 5_001, at + 1), oracle) == \
        "LoanBookCreditExceeded"
    receipt = send_at(driver, book.functions.confirmCreditRefund(loan_id, ref("r1"), 2_000, at + 2), at + 2)
    (refunded,) = book.events.CreditRefunded().process_receipt(receipt, errors=DISCARD)
    assert (refunded.args.amount, refunded.args.creditBalance) == (2_000, 3_000)
    assert state(book, loan_id)[0] is LoanStatus.OVERPAID
    assert revert_name(book.functions.confirmCreditRefund(loan_id, ref("r1"), 1, at + 3), oracle) == \
        "LoanBookDuplicatePayment"
    receipt = send_at(driver, book.functions.confirmCreditRefund(loan_id, ref("r2"), 3_000, at + 3), at + 3)
    (closed,) = book.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)
    assert closed.args.principalRepaid == loan_terms.principal
    status, progress = state(book, loan_id)
    assert (status, progress["credit_balance"]) == (LoanStatus.REPAID, 0)


def test_a_payment_on_a_written_off_loan_is_a_recovery_up_to_what_is_still_owed(driver, stack, keys, loan, loan_terms,
                                                                                revert_name):
    loan_id, _, schedule = loan
    book, oracle, operator = stack.book, keys["oracle"].address, keys["operator"].address
    driver.advance(schedule[0][0] - driver.now + loan_terms.defaultAfter + DAY)
    driver.w3.eth.wait_for_transaction_receipt(book.functions.declareDefault(loan_id).transact({"from": operator}))
    driver.write_off(loan_id)
    exposure = book.functions.outstandingPrincipal(keys["alice"].address, b"CNY").call()

    at = driver.now + 10
    owed = book.functions.payoffAmount(loan_id, at).call()
    assert owed > loan_terms.principal  # principal, interest and the charges of the missed installments
    receipt = send_at(driver, book.functions.confirmRepayment(loan_id, ref("rec-1"), 1_000, at), at)
    (recovery,) = book.events.RecoveryApplied().process_receipt(receipt, errors=DISCARD)
    assert (recovery.args.amount, recovery.args.recovered) == (1_000, 1_000)
    assert not book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    status, progress = state(book, loan_id)
    assert (status, progress["recovered"], progress["principal_repaid"]) == (LoanStatus.WRITTEN_OFF, 1_000, 0)
    assert book.functions.outstandingPrincipal(keys["alice"].address, b"CNY").call() == exposure  # written off already
    left = book.functions.payoffAmount(loan_id, at).call()
    assert left == owed - 1_000
    mine_block_at(driver.w3, at + 1)
    over = book.functions.confirmRepayment(loan_id, ref("rec-2"), left + 1, at + 1)
    assert revert_name(over, oracle) == "LoanBookOverpayment"


def test_a_reversed_installment_is_owed_again_and_the_loan_re_ages(driver, stack, keys, loan, loan_terms, revert_name):
    loan_id, _, schedule = loan
    book, oracle = stack.book, keys["oracle"].address
    (due1, p1, i1), (due2, p2, i2) = schedule[0], schedule[1]
    first, _ = repay_at(driver, loan_id, p1 + i1, "inst-1", due1)
    second, _ = repay_at(driver, loan_id, p2 + i2, "inst-2", due2)
    assert state(book, loan_id)[1]["paid_installments"] == 2
    exposure = book.functions.outstandingPrincipal(keys["alice"].address, b"CNY").call()

    # A forged allocation (the parts as the rail would like them) is refused: the book checks the entry.
    at = due2 + DAY
    mine_block_at(driver.w3, at)
    forged = book.functions.reverseRepayment(loan_id, ref("inst-1"), ref("rev-1"), (p1 + i1, 0, 0, 0, 0, 0), at)
    assert revert_name(forged, oracle) == "LoanBookUnknownEntry"

    receipt = send_at(driver, book.functions.reverseRepayment(
        loan_id, ref("inst-1"), ref("rev-1"), allocation(first), at + 1), at + 1)
    (reversed_,) = book.events.RepaymentReversed().process_receipt(receipt, errors=DISCARD)
    # What is still paid (the second installment's money) now pays the first: one installment paid.
    assert (reversed_.args.amount, reversed_.args.paidInstallments, reversed_.args.principalRepaid,
            reversed_.args.interestPaid) == (p1 + i1, 1, p1, i1)
    status, progress = state(book, loan_id)
    assert (status, progress["paid_installments"], progress["principal_repaid"]) == (LoanStatus.ACTIVE, 1, p1)
    # Re-aged: the second installment is due (since due2) and unpaid again, and the exposure is back up.
    due = book.functions.amountDue(loan_id, at + 1).call()
    assert (due[0], due[1], due[4]) == (p2, i2, due2)
    # Principal outstanding is what the book says is unrepaid: the first installment is paid now, not the second.
    assert book.functions.outstandingPrincipal(keys["alice"].address, b"CNY").call() == exposure + p2
    # The same reversal again, or the reversed payment reversed again, is refused.
    mine_block_at(driver.w3, at + 2)
    again = book.functions.reverseRepayment(loan_id, ref("inst-1"), ref("rev-2"), allocation(first), at + 2)
    assert revert_name(again, oracle) == "LoanBookUnknownEntry"
    assert second.amount == p2 + i2


def test_reversing_the_payment_that_closed_a_loan_reopens_it_and_undoes_its_credit(driver, stack, keys, loan,
                                                                                 loan_terms, revert_name):
    loan_id, disbursed_at, _ = loan
    book, oracle = stack.book, keys["oracle"].address
    at = disbursed_at + 5 * DAY
    payoff = book.functions.payoffAmount(loan_id, at).call()
    closing, receipt = repay_at(driver, loan_id, payoff + 700, "closing", at)
    assert state(book, loan_id)[0] is LoanStatus.OVERPAID

    # With part of the credit refunded, the overpaying payment can no longer be reversed whole.
    snapshot = driver.w3.provider.make_request("evm_snapshot", [])["result"]
    send_at(driver, book.functions.confirmCreditRefund(loan_id, ref("part"), 100, at + 1), at + 1)
    mine_block_at(driver.w3, at + 2)
    late = book.functions.reverseRepayment(loan_id, ref("closing"), ref("rev"), allocation(closing, 700), at + 2)
    assert revert_name(late, oracle) == "LoanBookCreditExceeded"
    driver.w3.provider.make_request("evm_revert", [snapshot])

    receipt = send_at(driver, book.functions.reverseRepayment(
        loan_id, ref("closing"), ref("rev"), allocation(closing, 700), at + 1), at + 1)
    (reversed_,) = book.events.RepaymentReversed().process_receipt(receipt, errors=DISCARD)
    assert (reversed_.args.amount, reversed_.args.status) == (payoff + 700, LoanStatus.ACTIVE)
    status, progress = state(book, loan_id)
    assert (status, progress["principal_repaid"], progress["interest_paid"], progress["credit_balance"]) == (
        LoanStatus.ACTIVE, 0, 0, 0)
    assert book.functions.outstandingPrincipal(keys["alice"].address, b"CNY").call() == loan_terms.principal
    assert book.functions.payoffAmount(loan_id, at + 1).call() >= payoff


def test_a_bounced_payout_returns_the_loan_to_approved_and_it_can_be_paid_out_anew(driver, stack, keys, loan_terms,
                                                                                 revert_name):
    book, oracle = stack.book, keys["oracle"].address
    loan_id = driver.active_loan(keys["alice"], loan_terms, ref=b"payout-1")
    payout = b"payout-1".ljust(32, b"\0")
    at = driver.now + 10
    receipt = send_at(driver, book.functions.reverseDisbursement(loan_id, payout, ref("bounce"), at), at)
    (bounced,) = book.events.DisbursementReversed().process_receipt(receipt, errors=DISCARD)
    assert bounced.args.amount == loan_terms.principal
    status, _ = state(book, loan_id)
    assert (status, book.functions.loanOf(loan_id).call()[3]) == (LoanStatus.APPROVED, 0)
    assert book.functions.outstandingPrincipal(keys["alice"].address, b"CNY").call() == loan_terms.principal  # still approved
    # Paid out again under a new reference; the bounced one stays used.
    driver.disburse(loan_id, loan_terms.principal, b"payout-2")
    assert state(book, loan_id)[0] is LoanStatus.ACTIVE
    assert book.functions.isPaymentReferenceUsed(payout).call()
    # Once anything is repaid from a payout, a bounce cannot undo it.
    driver.repay(loan_id, 100, b"first-repayment")
    mine_block_at(driver.w3, driver.now + 1)
    late = book.functions.reverseDisbursement(loan_id, b"payout-2".ljust(32, b"\0"), ref("bounce-2"), driver.now)
    assert revert_name(late, oracle) == "LoanBookDisbursementInUse"


def test_only_the_oracle_records_refunds_and_reversals(driver, stack, keys, loan, revert_name):
    loan_id, _, _ = loan
    book, operator = stack.book, keys["operator"].address
    now = driver.now
    for fn in (book.functions.confirmCreditRefund(loan_id, ref("x"), 1, now),
               book.functions.reverseRepayment(loan_id, ref("x"), ref("y"), (0, 0, 0, 0, 0, 0), now),
               book.functions.reverseDisbursement(loan_id, ref("x"), ref("y"), now)):
        assert revert_name(fn, operator) == "AccessControlUnauthorizedAccount"

"""Reconciliation of an overpayment and of its credit refund (found by the rail simulation: seeds 20261130 and
1): the rail moved one amount, the loan book applied the payoff and held the rest as the borrower's credit; the
statement line matches the two together, not `amount_differs` against the applied part alone. The refund of
that credit is one line of its own amount (the book records it as credit paid back: counted once)."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.indexer import Indexer
from oracle.payments.inbound import payment_ref
from oracle.payments.provider import StatementEntry
from oracle.payments.reconcile import MATCHED, reconcile

PROVIDER = "mockpay"


def test_an_overpayment_is_one_matched_line_of_applied_plus_credit(w3, stack, keys, driver, sessions, loan_terms):
    loan_id = driver.active_loan(keys["alice"], ref=payment_ref(PROVIDER, "PAY-00000001"))
    extra = 5_000
    amount = driver.payoff(loan_id) + extra
    driver.repay(loan_id, amount, payment_ref(PROVIDER, "COL-00000002"))
    (held,) = stack.book.events.OverpaymentHeld.get_logs(from_block=0)
    assert 0 < held["args"]["credit"] <= extra  # the loan closed Overpaid: part of the money is credit
    Indexer(w3, stack.manifest, sessions).run_once()

    paid_at = driver.now
    statement = [StatementEntry("PAY-00000001", "payout", loan_id, loan_terms.principal, "CNY", paid_at),
                 StatementEntry("COL-00000002", "collection", loan_id, amount, "CNY", paid_at)]
    report = reconcile(PROVIDER, datetime.fromtimestamp(paid_at, UTC).date(), statement, sessions)

    assert report.balanced, report.rows
    collected = next(row for row in report.rows if row.reference == "COL-00000002")
    assert (collected.category, collected.ledger_amount, collected.kind) == (MATCHED, amount, "repayment")
    # And a line the ledger did not take in full still differs.
    short = [StatementEntry("COL-00000002", "collection", loan_id, amount + 1, "CNY", paid_at)]
    (row,) = [r for r in reconcile(PROVIDER, report.day, short, sessions).rows
              if r.reference == "COL-00000002"]
    assert (row.category, row.rail_amount, row.ledger_amount) == ("amount_differs", amount + 1, amount)


def test_a_credit_refund_is_one_matched_line_of_its_own_amount(w3, stack, keys, driver, sessions, loan_terms):
    loan_id = driver.active_loan(keys["alice"], ref=payment_ref(PROVIDER, "PAY-00000001"))
    driver.repay(loan_id, driver.payoff(loan_id) + 5_000, payment_ref(PROVIDER, "COL-00000002"))
    (held,) = stack.book.events.OverpaymentHeld.get_logs(from_block=0)
    credit = held["args"]["credit"]
    driver.send(stack.book.functions.confirmCreditRefund(loan_id, payment_ref(PROVIDER, "REF-00000003"), credit,
                                                         driver.now), keys["oracle"])
    Indexer(w3, stack.manifest, sessions).run_once()

    paid_at = driver.now
    refund = StatementEntry("REF-00000003", "refund", loan_id, credit, "CNY", paid_at)
    (row,) = [r for r in reconcile(PROVIDER, datetime.fromtimestamp(paid_at, UTC).date(), [refund], sessions).rows
              if r.reference == "REF-00000003"]
    assert (row.category, row.kind, row.rail_amount, row.ledger_amount) == (MATCHED, "credit_refund", credit, credit)

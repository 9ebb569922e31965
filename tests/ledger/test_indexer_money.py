"""The read model follows the loan book's money model: credit, refunds, recoveries, reversals, bounced payouts.

Driven on the real contract, indexed, then checked two ways: the read model against the contract's views
(ledger.verify.recomputed_state: the fold of the events, the rows and the chain agree), and the payment rows
(where every received unit went) against the amounts the test sent.
"""

from __future__ import annotations

from eth_utils import keccak
from web3.logs import DISCARD

from ledger.indexer import Indexer
from ledger.store.models.chain import Loan
from ledger.verify import recomputed_state

DAY = 86_400


def ref(label: str) -> bytes:
    return keccak(text=label)


def oracle_send(driver, fn):
    receipt = driver.w3.eth.wait_for_transaction_receipt(
        fn.transact({"from": driver.keys["oracle"].address, "gas": 3_000_000}))
    assert receipt.status == 1
    return receipt


def index_and_verify(w3, stack, sessions) -> None:
    Indexer(w3, stack.manifest, sessions).run_once()
    with sessions() as session:
        result = recomputed_state(w3, stack.manifest, session)
        assert result.ok, result.details


def test_overpayment_credit_refund_and_reversal_are_indexed_as_the_book_holds_them(w3, stack, keys, driver, sessions,
                                                                                   loan_terms):
    book = stack.book
    loan_id = driver.active_loan(keys["alice"], loan_terms)
    driver.advance(5 * DAY)
    first = book.functions.schedule(loan_id).call()[0]
    receipt = oracle_send(driver, book.functions.confirmRepayment(loan_id, ref("part"), 3_000, driver.now))
    (part,) = book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    payoff = driver.payoff(loan_id) + 5  # a few seconds of interest at most
    receipt = oracle_send(driver, book.functions.confirmRepayment(loan_id, ref("over"), payoff + 4_000, driver.now))
    (held,) = book.events.OverpaymentHeld().process_receipt(receipt, errors=DISCARD)
    index_and_verify(w3, stack, sessions)
    with sessions() as session:
        row = session.get(Loan, loan_id)
        assert (row.status, row.credit_balance, row.closed_at is not None) == ("Overpaid", held.args.credit, True)
        over = next(p for p in row.payments if p.kind == "repayment" and p.credit)
        assert over.amount + over.credit == payoff + 4_000  # applied + held: the whole receipt

    refund = held.args.credit - 1_000
    oracle_send(driver, book.functions.confirmCreditRefund(loan_id, ref("refund-1"), refund, driver.now))
    index_and_verify(w3, stack, sessions)
    with sessions() as session:
        row = session.get(Loan, loan_id)
        assert (row.status, row.credit_balance) == ("Overpaid", 1_000)
        assert [p.amount for p in row.payments if p.kind == "credit_refund"] == [refund]

    oracle_send(driver, book.functions.confirmCreditRefund(loan_id, ref("refund-2"), 1_000, driver.now))
    # The first, partial repayment is charged back: the closed loan owes it again.
    paid = (part.args.principal, part.args.interest, part.args.lateFee, part.args.penalty, 0, 0)
    oracle_send(driver, book.functions.reverseRepayment(loan_id, ref("part"), ref("chargeback"), paid, driver.now))
    index_and_verify(w3, stack, sessions)
    with sessions() as session:
        row = session.get(Loan, loan_id)
        assert (row.status, row.credit_balance, row.closed_at) == ("Active", 0, None)
        (reversal,) = [p for p in row.payments if p.kind == "reversal"]
        assert (reversal.amount, reversal.reverses) == (3_000, "0x" + ref("part").hex())
        # The money still paid is re-allocated oldest first: it no longer covers the whole schedule.
        schedule = book.functions.schedule(loan_id).call()
        assert row.principal_repaid < loan_terms.principal and row.paid_installments < len(schedule)
        assert row.next_due_at == schedule[row.paid_installments][0] and row.next_due_at >= first[0]


def test_recoveries_and_a_bounced_payout_are_indexed(w3, stack, keys, driver, sessions, loan_terms):
    book, operator = stack.book, keys["operator"].address
    written_off = driver.active_loan(keys["alice"], loan_terms)
    driver.advance(30 * DAY + loan_terms.defaultAfter + DAY)
    w3.eth.wait_for_transaction_receipt(book.functions.declareDefault(written_off).transact({"from": operator}))
    driver.write_off(written_off)
    oracle_send(driver, book.functions.confirmRepayment(written_off, ref("recovery"), 2_500, driver.now))

    bob = keys["bob"]
    bounced = driver.active_loan(bob, loan_terms, ref=b"payout-bob", report_id=2)
    oracle_send(driver, book.functions.reverseDisbursement(bounced, b"payout-bob".ljust(32, b"\0"), ref("bounce"),
                                                         driver.now))
    index_and_verify(w3, stack, sessions)
    with sessions() as session:
        row = session.get(Loan, written_off)
        assert (row.status, row.recovered) == ("WrittenOff", 2_500)
        assert [(p.kind, p.amount, p.recovery) for p in row.payments][-1] == ("recovery", 2_500, 2_500)
        row = session.get(Loan, bounced)
        assert (row.status, row.disbursed_at, row.schedule[0].due_at) == ("Approved", 0, loan_terms.interval)
        assert [p.kind for p in row.payments] == ["disbursement", "payout_reversal"]

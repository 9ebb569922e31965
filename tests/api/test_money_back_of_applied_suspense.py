"""Money going back for a payment an operator applied from suspense to the right loan (both found by the rail
simulation): the rail's webhook names the loan the payer typed (no loan of the book), the book credited another.
A chargeback is reversed on the loan that was credited (not retried until rejected as "not on-chain"), and a
refund of the credit that payment left is confirmed on that loan (not rejected as LoanBookUnknownLoan)."""

from __future__ import annotations

from ledger.chain import ChainClient
from oracle.outbox import Outbox, OutboxWorker
from oracle.payments.webhook import Confirmation, payment_ref

PROVIDER = "mockpay"
TYPED = 999_999  # the loan id the payer typed: no loan of the book


def confirmation(kind: str, reference: str, amount: int, paid_at: int, reverses: str | None = None) -> Confirmation:
    return Confirmation(kind=kind, loan_id=TYPED, reference=reference, payment_ref=payment_ref(PROVIDER, reference),
                        amount=amount, currency="CNY", paid_at=paid_at, provider=PROVIDER, event_id=f"evt-{reference}",
                        reverses=reverses)


def drain(outbox: Outbox, worker: OutboxWorker) -> None:
    """Rounds until nothing is pending (a retried item's back-off passed by moving the outbox's clock)."""
    for _ in range(12):
        worker.drain_once()
        if not outbox.items("pending"):
            return
        outbox.clock.now += 400
    raise AssertionError(f"still pending: {[(i.reference, i.last_error) for i in outbox.items('pending')]}")


def worker_for(outbox: Outbox, w3, keys, stack) -> OutboxWorker:
    return OutboxWorker(outbox, ChainClient(w3, keys["oracle"], stack.errors), stack.book,
                        from_block=stack.manifest.start_block)


def test_a_chargeback_of_a_payment_applied_from_suspense_reverses_it_on_the_loan_it_was_applied_to(
        api, operator, driver, keys, stack, w3, clock):
    outbox = Outbox(api[1].sessions, clock=clock)
    worker = worker_for(outbox, w3, keys, stack)
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-applied")
    outbox.put(confirmation("repayment", "COL-1", 9_000, driver.now))
    drain(outbox, worker)
    (item,) = operator.suspense(state="open")
    operator.apply_suspense(item["id"], loan_id)
    drain(outbox, worker)
    assert sum(stack.book.functions.progressOf(loan_id).call()[2:6]) == 9_000

    outbox.put(confirmation("reversal", "REV-2", 9_000, driver.now, reverses="COL-1"))  # as the rail names it
    drain(outbox, worker)

    (reversal,) = [i for i in outbox.items() if i.reference == "REV-2"]
    assert (reversal.status, reversal.outcome) == ("done", "credited"), reversal.last_error
    (reversed_,) = stack.book.events.RepaymentReversed.get_logs(from_block=stack.manifest.start_block)
    assert (reversed_["args"]["loanId"], reversed_["args"]["amount"]) == (loan_id, 9_000)
    assert sum(stack.book.functions.progressOf(loan_id).call()[2:6]) == 0  # what the payment paid is owed again


def test_a_credit_refund_of_an_overpayment_applied_from_suspense_closes_the_credit_of_that_loan(
        api, operator, driver, keys, stack, w3, clock):
    outbox = Outbox(api[1].sessions, clock=clock)
    worker = worker_for(outbox, w3, keys, stack)
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-overpaid")
    outbox.put(confirmation("repayment", "COL-1", driver.payoff(loan_id) + 5_000, driver.now))
    drain(outbox, worker)
    (item,) = operator.suspense(state="open")
    operator.apply_suspense(item["id"], loan_id)
    drain(outbox, worker)
    (held,) = stack.book.events.OverpaymentHeld.get_logs(from_block=stack.manifest.start_block)
    credit = held["args"]["credit"]
    assert held["args"]["loanId"] == loan_id and credit > 0  # the loan closed Overpaid

    outbox.put(confirmation("credit_refund", "REF-2", credit, driver.now, reverses="COL-1"))  # as the rail names it
    drain(outbox, worker)

    (refund,) = [i for i in outbox.items() if i.reference == "REF-2"]
    assert (refund.status, refund.outcome) == ("done", "credited"), refund.last_error
    (refunded,) = stack.book.events.CreditRefunded.get_logs(from_block=stack.manifest.start_block)
    assert (refunded["args"]["loanId"], refunded["args"]["amount"], refunded["args"]["creditBalance"]) == \
        (loan_id, credit, 0)
    assert stack.book.functions.loanOf(loan_id).call()[2] == 6  # Repaid

"""Credit refunds against a real rail process: an Overpaid loan's credit is paid back once, however often and
however concurrently it is asked, and a rail that stalls between taking and answering the refund is asked
before anything is re-sent (issue 14, "every receipt has a home")."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from api_outcomes import call_status

from ledger.chain import ChainClient
from ledger.store.models.chain import Loan
from oracle.outbox import Outbox, OutboxWorker
from oracle.payments.webhook import Confirmation, payment_ref

PROVIDER = "mockpay"


@pytest.fixture
def overpaid_loan(api, rail, driver, keys, stack, w3, clock):
    """A loan overpaid over the rail (the oracle's outbox credits it on-chain), indexed: (id, reference, credit)."""
    _, context = api
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-credit", report_id=1)
    amount = driver.payoff(loan_id) + 5_000
    answer = httpx.post(f"{rail.url}/v1/collections", json={"loan_id": loan_id, "amount": amount, "currency": "CNY"},
                        timeout=10)
    answer.raise_for_status()
    reference = answer.json()["reference"]
    outbox = Outbox(context.sessions, clock=clock)
    outbox.put(Confirmation(kind="repayment", loan_id=loan_id, reference=reference,
                            payment_ref=payment_ref(PROVIDER, reference), amount=amount, currency="CNY",
                            paid_at=driver.now, provider=PROVIDER, event_id=f"evt-{reference}"))
    assert OutboxWorker(outbox, ChainClient(w3, keys["oracle"], stack.errors), stack.book).drain_once().credited == 1
    deadline = time.monotonic() + 20  # the API's indexer (a thread of the `api` fixture) takes it in
    while not _indexed_credit(context, loan_id):
        assert time.monotonic() < deadline, "the overpayment never reached the read model"
        time.sleep(0.05)
    credit = stack.book.functions.progressOf(loan_id).call()[8]
    assert credit > 0
    return loan_id, reference, credit


def _indexed_credit(context, loan_id: int) -> int:
    with context.sessions() as session:
        loan = session.get(Loan, loan_id)
        return 0 if loan is None else loan.credit_balance


def refunds_on_rail(rail, reference: str) -> list[dict]:
    """The rail's own record: refunds against the payment, from its statement of the day."""
    day = datetime.now(UTC).date().isoformat()
    answer = httpx.get(f"{rail.url}/v1/statements/{day}", timeout=10)
    answer.raise_for_status()
    return [e for e in answer.json()["entries"] if e["direction"] == "refund" and e["payment_reference"] == reference]


def test_the_credit_is_refunded_once_however_concurrently_it_is_asked(api, rail, operator, overpaid_loan):
    loan_id, reference, credit = overpaid_loan
    answers: list = []
    threads = [threading.Thread(target=lambda k=k: answers.append(operator.refund_credit(loan_id, idempotency_key=k)))
               for k in ("c-1", "c-2", "c-3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 3
    (order,) = operator.credit_refunds(loan_id)
    assert (order["amount"], order["payment_reference"], order["provider"]) == (credit, reference, PROVIDER)
    assert order["state"] == "sent" and order["refund_reference"]
    assert {a["refund_reference"] for a in answers} == {order["refund_reference"]}
    on_rails = refunds_on_rail(rail, reference)
    assert len(on_rails) == 1, (on_rails, answers)
    (on_rail,) = on_rails
    assert (on_rail["amount"], on_rail["reference"]) == (credit, order["refund_reference"])
    # Concurrent asks may each hand the same key over (the rail executes it once); a later ask is answered from
    # the order and sends nothing.
    attempts = order["attempts"]
    assert 1 <= attempts <= 3 and operator.refund_credit(loan_id)["attempts"] == attempts
    assert len(refunds_on_rail(rail, reference)) == 1


def test_a_stalled_rail_leaves_the_refund_sent_and_the_retry_asks_instead_of_refunding_again(
        api, rail, operator, overpaid_loan):
    loan_id, reference, credit = overpaid_loan
    rail.process.send_signal(signal.SIGSTOP)
    try:
        assert call_status(lambda: operator.refund_credit(loan_id, idempotency_key="s-1")) == (503, "rail_unavailable")
        (order,) = operator.credit_refunds(loan_id)
        assert (order["state"], order["refund_reference"], order["attempts"]) == ("sent", None, 1)
    finally:
        rail.process.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 20
    while not refunds_on_rail(rail, reference):
        assert time.monotonic() < deadline, "the rail never executed the refund it had taken"
        time.sleep(0.05)
    answer = operator.refund_credit(loan_id, idempotency_key="s-2")
    (on_rail,) = refunds_on_rail(rail, reference)
    assert (answer["refund_reference"], answer["attempts"], on_rail["amount"]) == (on_rail["reference"], 1, credit)


def test_a_loan_without_credit_has_nothing_to_refund(api, rail, operator, driver, keys):
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-nocredit", report_id=1)
    assert call_status(lambda: operator.refund_credit(loan_id)) == (409, "no_credit")
    assert call_status(lambda: operator.refund_credit(99_999)) == (404, "loan_book_unknown_loan")
    assert operator.credit_refunds(loan_id) == []


def test_the_automatic_policy_refunds_every_overpaid_loan_once(api, rail, operator, overpaid_loan):
    app, _ = api
    loan_id, reference, credit = overpaid_loan
    (ordered,) = app.state.credit_refunder.run_once()
    assert (ordered.loan_id, ordered.amount, ordered.ordered_by) == (loan_id, credit, "policy")
    assert app.state.credit_refunder.run_once() == []  # an open order: nothing more to do
    assert len(refunds_on_rail(rail, reference)) == 1
    assert operator.refund_credit(loan_id)["id"] == ordered.id  # the operator's ask answers the policy's order

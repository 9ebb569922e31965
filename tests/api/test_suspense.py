"""Suspense and refunds (issue 14, "every receipt has a home"): money the rail delivered that the loan book
refused becomes an open suspense item with the rail's reference, and an operator refunds it over a real
rail process exactly once, whether the refund is asked twice at once or retried after a timeout."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.client import ApiError
from ledger.chain import ChainClient
from ledger.store.models.action_log import ActionLogEntry
from ledger.store.models.outbox import OutboxItem
from oracle.intake import WEBHOOK_PATH, payment_webhooks
from oracle.outbox import Outbox, OutboxWorker
from oracle.payments.signatures import HmacScheme, signature_headers
from oracle.payments.webhook import Confirmation, WebhookVerifier, payment_ref

PROVIDER = "mockpay"



@pytest.fixture
def outbox(api, clock) -> Outbox:
    return Outbox(api[1].sessions, clock=clock)


@pytest.fixture
def worker(outbox, w3, keys, stack) -> OutboxWorker:
    return OutboxWorker(outbox, ChainClient(w3, keys["oracle"], stack.errors), stack.book)


def collect(rail, outbox: Outbox, driver, loan_id: int, amount: int, currency: str = "CNY") -> str:
    """Money collected on the rail and its confirmation stored, as the oracle's webhook intake does."""
    answer = httpx.post(f"{rail.url}/v1/collections", json={"loan_id": loan_id, "amount": amount,
                                                          "currency": currency}, timeout=10)
    answer.raise_for_status()
    reference = answer.json()["reference"]
    outbox.put(Confirmation(kind="repayment", loan_id=loan_id, reference=reference,
                            payment_ref=payment_ref(PROVIDER, reference), amount=amount, currency=currency,
                            paid_at=driver.now, provider=PROVIDER, event_id=f"evt-{reference}"))
    return reference


def drain_until_settled(outbox: Outbox, worker: OutboxWorker) -> None:
    """Rounds until nothing is pending: a retryable refusal (a repaid loan) uses up its attempts first."""
    for _ in range(12):
        worker.drain_once()
        if not outbox.items("pending"):
            return
        outbox.clock.now += 400  # past the longest item back-off
    raise AssertionError(f"items still pending: {[(i.reference, i.last_error) for i in outbox.items('pending')]}")


def suspense_items(client, **params) -> list[dict]:
    return client.suspense(**params)


def refund(operator, item_id: int, key: str) -> dict:
    return operator.refund_suspense(item_id, idempotency_key=key)


def refunds_on_rail(rail, reference: str) -> list[dict]:
    day = datetime.now(UTC).date().isoformat()
    answer = httpx.get(f"{rail.url}/v1/statements/{day}", timeout=10)
    answer.raise_for_status()
    return [e for e in answer.json()["entries"] if e["direction"] == "refund"
            and e["payment_reference"] == reference]


def received_on_rail(rail, references: set[str]) -> int:
    answer = httpx.get(f"{rail.url}/v1/payments", params={"direction": "collection"}, timeout=10)
    return sum(p["amount"] for p in answer.json() if p["reference"] in references)


def test_refused_payments_are_held_in_suspense_and_refunded_exactly_once(
        api, rail, outbox, worker, operator, driver, keys):
    usd_loan = driver.active_loan(keys["alice"], ref=b"payout-usd", report_id=1)
    repaid_loan = driver.active_loan(keys["bob"], ref=b"payout-repaid", report_id=2)
    foreign = 5_000
    payoff = driver.payoff(repaid_loan)
    usd_ref = collect(rail, outbox, driver, usd_loan, foreign, currency="USD")  # not the loan's currency
    payoff_ref = collect(rail, outbox, driver, repaid_loan, payoff)
    drain_until_settled(outbox, worker)  # the payoff is credited: the loan is repaid
    late_ref = collect(rail, outbox, driver, repaid_loan, 7_000)  # a payment for a loan already repaid
    drain_until_settled(outbox, worker)

    outcomes = {i.reference: (i.status, i.outcome) for i in outbox.items()}
    assert outcomes == {usd_ref: ("rejected", "CurrencyMismatch"), payoff_ref: ("done", "credited"),
                        late_ref: ("rejected", "LoanBookInvalidStatus")}
    items = {i["reference"]: i for i in suspense_items(operator)}
    assert set(items) == {usd_ref, late_ref}
    assert (items[usd_ref]["state"], items[usd_ref]["amount"], items[usd_ref]["loan_id"],
            items[usd_ref]["reason"]) == ("open", foreign, usd_loan, "CurrencyMismatch")
    assert (items[late_ref]["state"], items[late_ref]["amount"], items[late_ref]["reason"]) == \
        ("open", 7_000, "LoanBookInvalidStatus")
    assert items[usd_ref]["payment_ref"] == "0x" + payment_ref(PROVIDER, usd_ref).hex()
    references = {usd_ref, payoff_ref, late_ref}
    applied = sum(i.amount for i in outbox.items("done") if i.reference in references)
    open_suspense = sum(i["amount"] for i in suspense_items(operator, state="open"))
    assert received_on_rail(rail, references) == applied + open_suspense == payoff + foreign + 7_000

    # Refund the foreign payment twice at once (two keys, as two operators would): one refund on the rail.
    answers: list = []
    threads = [threading.Thread(target=lambda k=k: answers.append(refund(operator, items[usd_ref]["id"], k)))
               for k in ("r-1", "r-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [a["state"] for a in answers] == ["refunded", "refunded"]
    (on_rail,) = refunds_on_rail(rail, usd_ref)
    assert on_rail["amount"] == foreign
    assert {a["refund"]["refund_reference"] for a in answers} == {on_rail["reference"]}
    assert refund(operator, items[usd_ref]["id"], "r-3")["refund"]["attempts"] in (1, 2)  # answered, not re-sent
    assert len(refunds_on_rail(rail, usd_ref)) == 1

    # A refund whose answer is lost stays `sent`; the retry asks the rail instead of refunding again.
    rail.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(ApiError) as lost:
            refund(operator, items[late_ref]["id"], "r-late")
        assert (lost.value.status, lost.value.code) == (503, "rail_unavailable")
        (item,) = [i for i in suspense_items(operator) if i["reference"] == late_ref]
        assert (item["state"], item["refund"]["state"], item["refund"]["refund_reference"]) == \
            ("refunding", "sent", None)
    finally:
        rail.process.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 20
    while not refunds_on_rail(rail, late_ref):
        assert time.monotonic() < deadline, "the rail never executed the refund it had taken"
        time.sleep(0.05)
    answer = refund(operator, items[late_ref]["id"], "r-late")
    (on_rail,) = refunds_on_rail(rail, late_ref)
    assert (answer["state"], answer["refund"]["refund_reference"], answer["refund"]["attempts"]) == \
        ("refunded", on_rail["reference"], 1)
    assert len(refunds_on_rail(rail, late_ref)) == 1

    # Every yuan of the test's references: received = applied + open suspense + refunded.
    refunded = sum(e["amount"] for ref in (usd_ref, late_ref) for e in refunds_on_rail(rail, ref))
    assert suspense_items(operator, state="open") == []
    assert received_on_rail(rail, references) == applied + 0 + refunded
    with api[1].sessions() as session:
        logged = list(session.scalars(select(ActionLogEntry.action)))
    assert logged.count("suspense.refunded") == 2 and logged.count("suspense.refund_ordered") == 2


def test_a_payment_for_an_unknown_loan_is_applied_to_the_right_loan_with_its_rail_reference(
        api, rail, outbox, worker, operator, driver, keys, stack):
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-apply", report_id=1)
    reference = collect(rail, outbox, driver, 999_999, 9_000)  # the payer mistyped the loan id
    drain_until_settled(outbox, worker)
    (item,) = suspense_items(operator)
    assert (item["reference"], item["loan_id"], item["amount"], item["state"], item["reason"]) == \
        (reference, 999_999, 9_000, "open", "LoanBookUnknownLoan")

    with pytest.raises(ApiError) as wrong:
        operator.apply_suspense(item["id"], 888_888)
    assert (wrong.value.status, wrong.value.code) == (404, "loan_book_unknown_loan")
    applied = operator.apply_suspense(item["id"], loan_id, idempotency_key="a-1")
    assert (applied["state"], applied["loan_id"]) == ("applied", 999_999)  # the item keeps what the rail sent
    assert operator.apply_suspense(item["id"], loan_id, idempotency_key="a-1") == applied  # replayed
    with pytest.raises(ApiError) as again:
        operator.apply_suspense(item["id"], loan_id, idempotency_key="a-2")
    assert (again.value.status, again.value.code) == (409, "not_open")
    with pytest.raises(ApiError) as refund_too:
        refund(operator, item["id"], "r-after-apply")
    assert (refund_too.value.status, refund_too.value.code) == (409, "already_applied")

    drain_until_settled(outbox, worker)
    ((status, outcome, credited_loan),) = {(i.status, i.outcome, i.loan_id) for i in outbox.items()}
    assert (status, outcome, credited_loan) == ("done", "credited", loan_id)
    assert stack.book.functions.isPaymentReferenceUsed(payment_ref(PROVIDER, reference)).call()
    assert sum(stack.book.functions.progressOf(loan_id).call()[2:6]) == 9_000
    assert suspense_items(operator, state="open") == [] and refunds_on_rail(rail, reference) == []
    assert received_on_rail(rail, {reference}) == 9_000  # = applied on-chain; nothing in suspense or refunded


def test_an_applied_item_the_book_refuses_for_that_loan_too_is_reopened_once(
        api, rail, outbox, worker, operator, driver, keys):
    reference = collect(rail, outbox, driver, 999_998, 4_000)
    drain_until_settled(outbox, worker)
    (item,) = suspense_items(operator)
    driver.advance(60)
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-reopen", report_id=1)  # paid out after the payment
    operator.apply_suspense(item["id"], loan_id)
    drain_until_settled(outbox, worker)
    (reopened,) = suspense_items(operator)  # the same item, not a second one
    assert (reopened["id"], reopened["state"], reopened["reason"], reopened["resolved_by"]) == \
        (item["id"], "open", "LoanBookInvalidPaymentTime", None)
    assert refund(operator, item["id"], "r-reopened")["state"] == "refunded"
    (on_rail,) = refunds_on_rail(rail, reference)
    assert on_rail["amount"] == 4_000 == received_on_rail(rail, {reference})


# ---------------------------------------------------------------------------- receipts that never reach the chain


WEBHOOK_KEY = HmacScheme(b"suspense-test-webhook-key")


@pytest.fixture
def intake(outbox) -> TestClient:
    """The oracle's webhook endpoint on the API's store (one store, as `loanledger run` has it)."""
    app = FastAPI()
    app.include_router(payment_webhooks(WebhookVerifier({PROVIDER: WEBHOOK_KEY}), outbox))
    with TestClient(app) as client:
        yield client


def webhook(intake: TestClient, reference: str, loan_id: int, amount: int, paid_at: int, nonce: str = "n-1"):
    event = {"id": f"evt-{reference}", "type": "payment.succeeded", "created_at": paid_at,
             "data": {"direction": "collection", "loan_id": loan_id, "reference": reference, "amount": amount,
                      "currency": "CNY", "paid_at": paid_at}}
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = signature_headers(PROVIDER, WEBHOOK_KEY, body, timestamp=int(time.time()), nonce=nonce)
    return intake.post(WEBHOOK_PATH, content=body, headers={**headers, "Content-Type": "application/json"})


def test_a_webhook_refused_on_its_content_is_held_applied_to_its_loan_and_redeliveries_change_nothing(
        api, outbox, worker, operator, intake, driver, keys, stack):
    """Issue 14, defect 4 and "every receipt has a home": a signed repayment to loan 2**256 is held (nothing in
    the outbox, so nothing holds back the others); the operator applies it to the loan it was meant for, which
    gives it its outbox row; the rail's redelivery of the original is a duplicate, one naming the loan it was
    applied to a conflict."""
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-held", report_id=1)
    paid_at = driver.now  # the rail's payment time: each redelivery repeats it
    first = webhook(intake, "COL-HELD", 2**256, 6_000, paid_at)
    assert (first.status_code, first.json()["status"], first.json()["reason"]) == \
        (200, "held_in_suspense", "LoanIdOutOfRange")
    assert outbox.items() == []
    (item,) = suspense_items(operator)
    assert (item["id"], item["reference"], item["loan_id"], item["amount"], item["state"], item["outbox_item_id"],
            item["paid_at"]) == (first.json()["suspense_item_id"], "COL-HELD", 2**256, 6_000, "open", None, paid_at)
    assert item["detail"].startswith("loan_id: ")

    applied = operator.apply_suspense(item["id"], loan_id, idempotency_key="held-1")
    assert (applied["state"], applied["loan_id"]) == ("applied", 2**256)
    (queued,) = outbox.items()
    assert (queued.id, queued.loan_id, queued.reference, queued.amount, queued.status, queued.paid_at) == \
        (applied["outbox_item_id"], loan_id, "COL-HELD", 6_000, "pending", paid_at)
    drain_until_settled(outbox, worker)
    assert [(i.status, i.outcome) for i in outbox.items()] == [("done", "credited")]
    assert sum(stack.book.functions.progressOf(loan_id).call()[2:6]) == 6_000

    again = webhook(intake, "COL-HELD", 2**256, 6_000, paid_at, nonce="n-2")
    assert (again.status_code, again.json()["status"], again.json()["state"]) == (200, "duplicate", "applied")
    redirected = webhook(intake, "COL-HELD", loan_id, 6_000, paid_at, nonce="n-3")
    assert (redirected.status_code, redirected.json()["error"]["code"]) == (409, "conflicting_replay")
    assert len(outbox.items()) == 1 and len(suspense_items(operator)) == 1
    assert sum(stack.book.functions.progressOf(loan_id).call()[2:6]) == 6_000  # credited once


def test_a_repayment_set_aside_by_the_outbox_is_held_and_applied_to_the_right_loan(
        api, outbox, worker, operator, driver, keys, stack):
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-aside", report_id=1)
    with outbox.sessions.begin() as session:  # as a version before the intake's bounds could have stored it
        session.add(OutboxItem(provider=PROVIDER, event_id="evt-aside", kind="repayment", loan_id=2**256,
                               reference="COL-ASIDE", payment_ref="0x" + payment_ref(PROVIDER, "COL-ASIDE").hex(),
                               amount=5_000, currency="CNY", paid_at=driver.now, received_at=1, status="pending",
                               attempts=0, next_attempt_at=0, updated_at=1))
    assert worker.drain_once().set_aside == 1
    (item,) = suspense_items(operator)
    assert (item["reference"], item["reason"], item["state"], item["loan_id"]) == \
        ("COL-ASIDE", "ItemUnusable", "open", 2**256)

    operator.apply_suspense(item["id"], loan_id)
    drain_until_settled(outbox, worker)
    assert [(i.status, i.outcome, i.loan_id) for i in outbox.items()] == [("done", "credited", loan_id)]
    assert sum(stack.book.functions.progressOf(loan_id).call()[2:6]) == 5_000


def test_an_exact_redelivery_after_an_outbox_item_was_applied_to_another_loan_is_a_duplicate(
        api, outbox, worker, operator, intake, driver, keys):
    """The outbox row now names the loan the operator chose; the rail's redelivery names the one it sent, which
    the suspense item keeps: a duplicate, not a conflict (the rail would otherwise redeliver for an hour)."""
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-redeliver", report_id=1)
    paid_at = driver.now
    assert webhook(intake, "COL-TYPO", 999_997, 4_000, paid_at).json()["status"] == "accepted"
    drain_until_settled(outbox, worker)
    (item,) = suspense_items(operator)
    assert item["reason"] == "LoanBookUnknownLoan"
    operator.apply_suspense(item["id"], loan_id)
    drain_until_settled(outbox, worker)

    again = webhook(intake, "COL-TYPO", 999_997, 4_000, paid_at, nonce="n-2")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    for other in ({"loan_id": loan_id, "amount": 4_000}, {"loan_id": 999_997, "amount": 4_001}):
        response = webhook(intake, "COL-TYPO", other["loan_id"], other["amount"], paid_at, nonce="n-3")
        assert (response.status_code, response.json()["error"]["code"]) == (409, "conflicting_replay"), other


def test_the_reconciliation_route_shows_held_payments_as_rail_only_with_their_suspense_item(
        api, rail, outbox, worker, operator, intake, driver, keys, http, borrower):
    loan_id = driver.active_loan(keys["bob"], ref=b"payout-recon", report_id=2)
    credited = collect(rail, outbox, driver, loan_id, 1_000)
    drain_until_settled(outbox, worker)
    (done,) = outbox.items("done")
    assert api[1].wait_indexed(done.block_number)
    answer = httpx.post(f"{rail.url}/v1/collections", json={"loan_id": 2**256, "amount": 2_500}, timeout=10)
    held_ref = answer.json()["reference"]
    assert webhook(intake, held_ref, 2**256, 2_500, driver.now).json()["status"] == "held_in_suspense"

    day = datetime.now(UTC).date().isoformat()  # the rail dates its payments by its own clock
    report = operator.audit("reconciliation", date=day)
    assert (report["date"], report["skipped"]) == (day, {})
    (mockpay,) = report["reports"]
    rows = {row["reference"]: row for row in mockpay["rows"]}
    assert (rows[credited]["category"], rows[credited]["rail_amount"], rows[credited]["ledger_amount"]) == \
        ("matched", 1_000, 1_000)
    held_row = rows[held_ref]
    (item,) = suspense_items(operator)
    assert (held_row["category"], held_row["outbox_status"], held_row["suspense_item_id"],
            held_row["suspense_state"], held_row["loan_id"]) == ("rail_only", None, item["id"], "open", 2**256)
    assert mockpay["statement_lines"] == 2 and mockpay["counts"]["rail_only"] == 1 and not mockpay["balanced"]

    csv = http.get("/v1/audit/reconciliation.csv", params={"date": day},
                   headers={"authorization": f"Bearer {operator.token}"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0].startswith("category,provider,reference,") and lines[0].endswith(",suspense_item_id,suspense_state")
    assert len(lines) == 1 + len(mockpay["rows"])
    assert any(line.startswith(f"rail_only,mockpay,{held_ref},") and line.endswith(f",{item['id']},open")
               for line in lines)

    # The held payment goes back the way it came, once; every yuan of the day's collections has its home.
    refunded = refund(operator, item["id"], "r-held")
    assert (refunded["state"], refunded["refund"]["state"]) == ("refunded", "refunded")
    (back,) = refunds_on_rail(rail, held_ref)
    assert back["amount"] == 2_500
    assert received_on_rail(rail, {credited, held_ref}) == 1_000 + 0 + back["amount"]  # applied + open + refunded
    rows = {row["reference"]: row for row in operator.audit("reconciliation", date=day)["reports"][0]["rows"]}
    assert rows[held_ref]["suspense_state"] == "refunded" and rows[back["reference"]]["direction"] == "refund"

    with pytest.raises(ApiError) as denied:
        borrower.audit("reconciliation", date=day)
    assert denied.value.status == 403
    with pytest.raises(ApiError) as unknown:
        operator.audit("reconciliation", date=day, provider="nopay")
    assert (unknown.value.status, unknown.value.code) == (404, "not_found")
    rail.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(ApiError) as down:
            operator.audit("reconciliation", date=day)
        assert (down.value.status, down.value.code) == (503, "rail_unavailable")
    finally:
        rail.process.send_signal(signal.SIGCONT)

"""The collection run (issue 17 "automatic debit") against a real chain, the real index and the rail stand-in: on the
due date it debits exactly the loan book's amount due, once, however often the run repeats or wherever it is cut
off; a card short of funds is retried by the documented policy (+1 day, +3 days), then set aside, with one notice;
a revoked mandate is not debited."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledger.chain import ChainClient
from ledger.store.models.mandates import CollectionIntent
from ledger.store.models.notifications import Notification
from oracle.collections import (
    COLLECTED,
    DAY,
    DECLINED,
    FAILED,
    PENDING_INTENT,
    SENT,
    SET_ASIDE,
    CollectionRun,
)
from oracle.intake import WEBHOOK_PATH, payment_webhooks
from oracle.outbox import Outbox, OutboxWorker
from oracle.payments.rail import PaymentRail, create_app
from oracle.payments.signatures import RsaScheme
from oracle.payments.webhook import WebhookVerifier


class Killed(Exception):
    """The process stopped between recording an intent and calling the rail."""


@pytest.fixture(scope="module")
def scheme():
    return RsaScheme.generate()


@pytest.fixture
def stand_in(scheme):
    rail = PaymentRail(provider="mockpay", scheme=scheme, webhook_url=None)
    with TestClient(create_app(rail), base_url="http://rail") as http:
        yield rail, http


@pytest.fixture
def mandated_loan(api, borrower, application, driver) -> tuple[int, int]:
    """(loan id, its first due date): an active loan with a mandate in force for its bound card."""
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-debit-run")
    assert api[1].wait_indexed(driver.w3.eth.block_number)
    borrower.sign_debit_mandate(loan_id, 10**9, 2**39)
    return loan_id, borrower.loan(loan_id)["schedule"][0]["due_at"]


def run_for(api, stand_in, **kwargs) -> CollectionRun:
    context = api[1]
    return CollectionRun(context.sessions, context.bindings.book, stand_in[1], **kwargs)


def intents(api, loan_id: int) -> list[CollectionIntent]:
    with api[1].sessions() as session:
        return list(session.scalars(select(CollectionIntent).where(CollectionIntent.loan_id == loan_id)
                                    .order_by(CollectionIntent.id)))


def collections(stand_in, loan_id: int) -> list:
    return [p for p in stand_in[0].payments.values() if p.loan_id == loan_id and p.direction == "collection"]


def test_the_due_date_debits_the_amount_due_once_however_the_run_repeats_or_dies(api, stand_in, mandated_loan):
    loan_id, due_at = mandated_loan
    book = api[1].bindings.book
    owed = sum(book.functions.amountDue(loan_id, due_at).call()[:4])
    assert owed > 0
    before = run_for(api, stand_in).run_once(due_at - 1)  # the day before: announced, not debited
    assert (before.announced, before.ordered) == ([(loan_id, 1)], [])
    assert not run_for(api, stand_in).run_once(due_at - 2)  # announced once
    assert collections(stand_in, loan_id) == []
    with api[1].sessions() as session:
        (scheduled,) = session.scalars(select(Notification).where(Notification.kind == "debit_scheduled")).all()
    assert (scheduled.loan_id, scheduled.installment, scheduled.due_at, scheduled.amount_due) == \
        (loan_id, 1, due_at, owed)

    def die(key):
        raise Killed(key)

    with pytest.raises(Killed):  # recorded, then killed before the rail was called
        run_for(api, stand_in, before_call=die).run_once(due_at)
    (pending,) = intents(api, loan_id)
    assert (pending.status, pending.attempt, pending.amount) == (PENDING_INTENT, 1, owed)
    assert collections(stand_in, loan_id) == []

    report = run_for(api, stand_in).run_once(due_at + 60)  # the next round sends the recorded key
    assert report.ordered == [pending.key]
    (paid,) = collections(stand_in, loan_id)
    assert paid.amount == owed  # the contract's amount due at the run, exactly
    for later in (due_at + 120, due_at + 3600, due_at + DAY - 1):  # repeats: nothing more
        run_for(api, stand_in).run_once(later)
    assert len(collections(stand_in, loan_id)) == 1
    (sent,) = intents(api, loan_id)
    assert (sent.status, sent.reference) == (SENT, paid.reference)


def test_an_order_taken_but_its_answer_lost_is_found_by_its_key(api, stand_in, mandated_loan):
    loan_id, due_at = mandated_loan

    def lost_answer(key):  # the rail took the order; the answer never came back (a timeout)
        stand_in[1].post("/v1/collections", headers={"Idempotency-Key": key},
                         json={"loan_id": loan_id, "amount": intents(api, loan_id)[0].amount, "currency": "CNY"})
        raise Killed(key)

    with pytest.raises(Killed):
        run_for(api, stand_in, before_call=lost_answer).run_once(due_at)
    assert len(collections(stand_in, loan_id)) == 1
    run_for(api, stand_in).run_once(due_at + 60)  # asks the rail by key: taken, so not sent again
    assert len(collections(stand_in, loan_id)) == 1
    assert intents(api, loan_id)[0].status == SENT


def test_insufficient_funds_is_retried_per_policy_then_set_aside_with_one_notice(api, borrower, operator, stand_in,
                                                                                  mandated_loan):
    loan_id, due_at = mandated_loan
    card = borrower.debit_mandate(loan_id)["mandate"]["card"]
    assert stand_in[1].put(f"/v1/cards/{card[-4:]}/funds", json={"sufficient": False}).status_code == 200
    run = run_for(api, stand_in)
    declined = run.run_once(due_at).declined
    first = intents(api, loan_id)[0]
    assert declined == [f"debit-{first.mandate_id}-{due_at}-1"]
    assert (first.status, first.reason, first.retry_at) == (FAILED, "insufficient_funds", due_at + DAY)
    assert not run.run_once(due_at + DAY - 1)  # not before the policy says
    assert len(run.run_once(due_at + DAY).declined) == 1
    second = intents(api, loan_id)[1]
    assert (second.attempt, second.status, second.retry_at) == (2, FAILED, due_at + 4 * DAY)
    report = run.run_once(due_at + 4 * DAY)
    assert len(report.set_aside) == 1
    assert [i.status for i in intents(api, loan_id)] == [FAILED, FAILED, SET_ASIDE]
    stand_in[1].put(f"/v1/cards/{card[-4:]}/funds", json={"sufficient": True})
    assert not run.run_once(due_at + 10 * DAY)  # set aside: no more attempts
    assert collections(stand_in, loan_id) == []  # no money moved
    shown = borrower.debit_mandate(loan_id)["collections"]  # what the borrower and operators see
    assert [(c["attempt"], c["status"], c["reason"]) for c in shown] == \
        [(3, SET_ASIDE, "insufficient_funds"), (2, FAILED, "insufficient_funds"), (1, FAILED, "insufficient_funds")]
    with api[1].sessions() as session:
        notices = session.scalars(select(Notification).where(Notification.loan_id == loan_id,
                                                             Notification.kind == "debit_failed")).all()
    assert [(n.installment, n.due_at) for n in notices] == [(1, due_at)]
    (listed,) = operator.notices(kind="debit_failed", loan_id=loan_id)  # operators see it and its delivery
    assert (listed["installment"], listed["channel"]) == (1, "sms")


def test_a_revoked_mandate_is_not_debited(api, borrower, stand_in, mandated_loan):
    loan_id, due_at = mandated_loan
    borrower.revoke_debit_mandate(loan_id)
    assert not run_for(api, stand_in).run_once(due_at)
    assert intents(api, loan_id) == [] and collections(stand_in, loan_id) == []


# ---------------------------------------------------------------------------- the rail's answers as signed webhooks


@pytest.fixture
def intake(api, scheme):
    """The oracle's webhook endpoint and outbox on the API's store, trusting the stand-in's key."""
    outbox = Outbox(api[1].sessions)
    app = FastAPI()
    app.include_router(payment_webhooks(WebhookVerifier({"mockpay": scheme}), outbox))
    with TestClient(app) as client:
        yield client, outbox


def deliver(rail: PaymentRail, intake_client: TestClient, made) -> dict:
    """The rail's signed webhook for `made`, posted to the intake as its delivery thread would."""
    headers, body = rail.signed_webhook(made)
    answer = intake_client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_debit_is_credited_on_chain_through_the_intake_once(api, stand_in, intake, mandated_loan, driver, w3,
                                                              keys, stack):
    loan_id, due_at = mandated_loan
    driver.advance(due_at - driver.now + 1)
    owed = sum(stack.book.functions.amountDue(loan_id, driver.now).call()[:4])
    assert run_for(api, stand_in).run_once().ordered
    (paid,) = collections(stand_in, loan_id)
    assert paid.amount == owed
    assert deliver(stand_in[0], intake[0], paid)["status"] == "accepted"
    assert deliver(stand_in[0], intake[0], paid)["status"] == "duplicate"  # the rail's redelivery
    worker = OutboxWorker(intake[1], ChainClient(w3, keys["oracle"], stack.errors), stack.book)
    worker.drain_once()
    assert [(i.status, i.outcome, i.reference) for i in intake[1].items()] == [("done", "credited", paid.reference)]
    assert sum(stack.book.functions.progressOf(loan_id).call()[2:6]) == owed  # credited once, the amount due
    assert sum(stack.book.functions.amountDue(loan_id, driver.now).call()[:4]) == 0
    assert intents(api, loan_id)[0].status == SENT
    assert not run_for(api, stand_in).run_once()  # the next round: collected, and nothing more to debit
    assert [i.status for i in intents(api, loan_id)] == [COLLECTED]
    assert len(collections(stand_in, loan_id)) == 1


def test_a_decline_told_by_webhook_is_retried_by_the_policy(api, borrower, stand_in, intake, mandated_loan):
    loan_id, due_at = mandated_loan
    rail, http = stand_in
    card = borrower.debit_mandate(loan_id)["mandate"]["card"]
    http.put(f"/v1/cards/{card[-4:]}/funds", json={"sufficient": False})

    def answer_lost(key):  # the rail declines the order; its answer to the run is lost
        http.post("/v1/collections", headers={"Idempotency-Key": key},
                  json={"loan_id": loan_id, "amount": intents(api, loan_id)[0].amount, "currency": "CNY",
                        "card": card})
        raise Killed(key)

    with pytest.raises(Killed):
        run_for(api, stand_in, before_call=answer_lost).run_once(due_at)
    (declined,) = rail.declined.values()
    assert (declined.order_key, declined.reason) == (intents(api, loan_id)[0].key, "insufficient_funds")
    assert deliver(rail, intake[0], declined)["status"] == "recorded"
    assert deliver(rail, intake[0], declined)["status"] == "duplicate"
    assert intents(api, loan_id)[0].status == DECLINED
    assert intake[1].items() == []  # no money: nothing for the outbox
    report = run_for(api, stand_in).run_once(due_at + 60)  # the next round applies the policy
    assert len(report.declined) == 1
    first = intents(api, loan_id)[0]
    assert (first.status, first.retry_at, first.reference) == (FAILED, due_at + 60 + DAY, declined.reference)
    with api[1].sessions() as session:
        assert session.scalar(select(Notification.kind).where(Notification.loan_id == loan_id)) == "debit_failed"
    assert collections(stand_in, loan_id) == []

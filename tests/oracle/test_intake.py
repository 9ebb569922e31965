"""The webhook endpoint over HTTP: verified, stored, and only then acknowledged; anything else refused by code."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from ledger.store import open_store
from ledger.store.models.suspense import SuspenseItem
from oracle.intake import WEBHOOK_PATH, payment_webhooks
from oracle.outbox import Outbox
from oracle.payments.inbound import (
    Confirmation,
    MalformedWebhook,
    RefusedPayment,
    check_confirmation,
)
from oracle.payments.providers import HmacJsonProvider
from oracle.payments.providers.hmac_json import sign
from oracle.payments.signatures import (
    HEADER_SIGNATURE,
    HmacScheme,
    RsaScheme,
    signature_headers,
)
from oracle.payments.webhook import WebhookVerifier, payment_ref

RAIL = RsaScheme.generate()


def event(event_id: str = "evt_1", **data) -> dict:
    payment = {"direction": "collection", "loan_id": 7, "reference": "COL-0001", "amount": 41_588,
               "currency": "CNY", "paid_at": int(time.time()) - 5}
    payment.update(data)
    return {"id": event_id, "type": "payment.succeeded", "created_at": payment["paid_at"], "data": payment}


def signed(payload: dict, scheme=RAIL, provider: str = "mockpay", timestamp: int | None = None,
           nonce: str = "n-1") -> tuple[dict, bytes]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = signature_headers(provider, scheme, body, timestamp=int(time.time()) if timestamp is None else timestamp,
                                nonce=nonce)
    return {**headers, "Content-Type": "application/json"}, body


def verifier() -> WebhookVerifier:
    return WebhookVerifier({"mockpay": RsaScheme.from_pem(RAIL.public_pem()), "hmacpay": HmacScheme(b"s3cret")})


@pytest.fixture
def outbox(tmp_path):
    sessions = open_store(f"sqlite:///{tmp_path / 'oracle.db'}")
    yield Outbox(sessions)
    sessions.kw["bind"].dispose()


@pytest.fixture
def http(outbox):
    app = FastAPI()
    app.include_router(payment_webhooks(verifier(), outbox))
    with TestClient(app) as client:
        yield client


def post(http, headers_and_body):
    headers, body = headers_and_body
    return http.post(WEBHOOK_PATH, content=body, headers=headers)


def test_a_signed_webhook_is_stored_then_acknowledged(http, outbox):
    response = post(http, signed(event()))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    (item,) = outbox.items()
    assert response.json() == {"status": "accepted", "id": item.id, "payment_ref": item.payment_ref}
    assert (item.kind, item.loan_id, item.reference, item.amount, item.currency, item.status) == (
        "repayment", 7, "COL-0001", 41_588, "CNY", "pending")
    assert item.payment_ref == "0x" + payment_ref("mockpay", "COL-0001").hex()
    assert (item.provider, item.event_id) == ("mockpay", "evt_1")


def test_hmac_providers_are_accepted_too(http, outbox):
    response = post(http, signed(event(direction="payout", amount=120_000), scheme=HmacScheme(b"s3cret"),
                                 provider="hmacpay"))
    assert response.status_code == 200, response.text
    assert [(i.provider, i.kind) for i in outbox.items()] == [("hmacpay", "disbursement")]


def test_a_replay_is_a_duplicate_and_stores_nothing_twice(http, outbox):
    payload = event()
    first = post(http, signed(payload, nonce="n-1"))
    # The rail's retry: the same event, signed afresh (new timestamp and nonce).
    again = post(http, signed(payload, nonce="n-2"))
    # A captured request sent again byte for byte.
    headers, body = signed(payload, nonce="n-3")
    replayed = [post(http, (headers, body)) for _ in range(2)]
    assert first.json()["status"] == "accepted"
    for response in (again, *replayed):
        assert response.status_code == 200
        assert response.json() == {**first.json(), "status": "duplicate"}
    assert len(outbox.items()) == 1


def test_the_same_reference_under_a_new_event_id_is_a_duplicate(http, outbox):
    post(http, signed(event("evt_1")))
    response = post(http, signed(event("evt_2")))  # a rail that re-issues the event id
    assert (response.status_code, response.json()["status"]) == (200, "duplicate")
    assert len(outbox.items()) == 1


def test_a_replay_with_other_facts_is_a_conflict_and_the_first_is_kept(http, outbox):
    post(http, signed(event(amount=41_588)))
    response = post(http, signed(event(amount=99_999)))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflicting_replay"
    assert [i.amount for i in outbox.items()] == [41_588]


def _forged_signature():
    headers, body = signed(event())
    return {**headers, HEADER_SIGNATURE: RsaScheme.generate().sign(b"something else")}, body


def _tampered_body():
    headers, body = signed(event())
    return headers, body.replace(b"41588", b"91588")


@pytest.mark.parametrize(("make", "status", "code"), [
    (_forged_signature, 401, "bad_signature"),
    (_tampered_body, 401, "bad_signature"),
    (lambda: signed(event(), scheme=RsaScheme.generate()), 401, "bad_signature"),  # someone else's key
    (lambda: signed(event(), scheme=HmacScheme(b"guess"), provider="hmacpay"), 401, "bad_signature"),
    (lambda: signed(event(), provider="evilpay"), 401, "unknown_provider"),
    (lambda: signed(event(), timestamp=int(time.time()) - 3600), 401, "outside_time_window"),
    (lambda: signed(event(), timestamp=int(time.time()) + 3600), 401, "outside_time_window"),
    (lambda: signed({**event(), "data": {**event()["data"], "amount": -5}}), 400, "malformed_webhook"),
    (lambda: signed({**event(), "data": {**event()["data"], "amount": "100"}}), 400, "malformed_webhook"),
    (lambda: signed({**event(), "extra": 1}), 400, "malformed_webhook"),
    # Identifiers out of the contract's range are refused before anything is stored (issue 14, defect 4); for a
    # repayment with a usable reference that is money held in suspense instead (test_..._held_in_suspense).
    (lambda: signed(event(direction="payout", loan_id=2**256)), 400, "malformed_webhook"),
    (lambda: signed(event(direction="payout", loan_id=0)), 400, "malformed_webhook"),
    (lambda: signed(event(direction="payout", currency="cny")), 400, "malformed_webhook"),
    (lambda: signed(event(loan_id=2**256, reference="R" * 65)), 400, "malformed_webhook"),  # no reference to keep
    (lambda: signed(event(reference="")), 400, "malformed_webhook"),
    (lambda: signed(event(amount=0)), 400, "malformed_webhook"),  # no money moved
    (lambda: signed(event(amount=10**78)), 400, "malformed_webhook"),  # more than any store holds
    (lambda: signed({**event(), "type": "payment.failed"}), 400, "malformed_webhook"),
    (lambda: ({k: v for k, v in signed(event())[0].items() if k != "X-Rail-Nonce"}, signed(event())[1]), 400,
     "malformed_webhook"),
])
def test_refused_webhooks_get_a_stable_code_and_store_nothing(http, outbox, make, status, code):
    response = post(http, make())
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert outbox.items() == []
    assert held(outbox) == []


def held(outbox) -> list[SuspenseItem]:
    with outbox.sessions() as session:
        return list(session.scalars(select(SuspenseItem).order_by(SuspenseItem.id)))


@pytest.mark.parametrize(("change", "reason", "stored"), [
    ({"loan_id": 2**256}, "LoanIdOutOfRange", {"loan_id": 2**256}),
    ({"loan_id": 2**256 + 7}, "LoanIdOutOfRange", {"loan_id": 2**256 + 7}),
    ({"loan_id": 0}, "LoanIdOutOfRange", {"loan_id": 0}),
    ({"loan_id": -1}, "LoanIdOutOfRange", {"loan_id": 0}),  # no loan the store can name
    ({"loan_id": 10**80}, "LoanIdOutOfRange", {"loan_id": 0}),
    ({"paid_at": 2**40}, "PaidAtOutOfRange", {"paid_at": None}),
    ({"amount": 2**96}, "AmountOutOfRange", {"amount": 2**96}),
    ({"currency": "cny"}, "UnknownCurrency", {"currency": "XXX"}),
    ({"currency": "EURO"}, "UnknownCurrency", {"currency": "XXX"}),
    ({"reference": "COL 1; DROP"}, "MalformedReference", {"reference": "COL 1; DROP"}),
])
def test_an_authentic_repayment_the_book_could_never_take_is_held_in_suspense(http, outbox, change, reason, stored):
    """Issue 14, "every receipt has a home": the rail has moved the money, so the refusal is recorded with the
    rail's reference and answered 200 (the rail redelivers anything else), and nothing goes to the outbox."""
    payload = event(**change)
    response = post(http, signed(payload))
    assert response.status_code == 200, response.text
    (item,) = held(outbox)
    reference = payload["data"]["reference"]
    assert response.json() == {"status": "held_in_suspense", "suspense_item_id": item.id, "state": "open",
                               "reason": reason, "payment_ref": "0x" + payment_ref("mockpay", reference).hex()}
    expected = {"provider": "mockpay", "reference": reference, "outbox_item_id": None, "loan_id": 7,
                "amount": 41_588, "currency": "CNY", "paid_at": payload["data"]["paid_at"], "event_id": "evt_1",
                "reason": reason, "state": "open", **stored}
    assert {k: getattr(item, k) for k in expected} == expected
    assert item.detail.startswith(f"{next(iter(change))}: ")
    assert outbox.items() == []

    # The rail's retry, signed afresh, changes nothing: a duplicate of the same item.
    again = post(http, signed(payload, nonce="n-2"))
    assert again.status_code == 200
    assert again.json() == {**response.json(), "status": "duplicate"}
    assert len(held(outbox)) == 1 and outbox.items() == []


def test_a_redelivery_with_other_facts_for_a_held_reference_is_a_conflict(http, outbox):
    first = post(http, signed(event(loan_id=2**256)))
    assert first.json()["status"] == "held_in_suspense"
    for other in (event(loan_id=2**256 + 1), event(loan_id=2**256, amount=1), event(loan_id=7)):
        # Refused on content again, or now a valid payment: either way not the payment held under COL-0001.
        response = post(http, signed(other, nonce="n-x"))
        assert (response.status_code, response.json()["error"]["code"]) == (409, "conflicting_replay"), other
    assert len(held(outbox)) == 1 and outbox.items() == []


def test_a_refused_webhook_for_a_reference_the_outbox_holds_is_a_conflict_and_holds_nothing(http, outbox):
    assert post(http, signed(event())).json()["status"] == "accepted"
    response = post(http, signed(event(loan_id=2**256), nonce="n-2"))
    assert (response.status_code, response.json()["error"]["code"]) == (409, "conflicting_replay")
    assert held(outbox) == [] and len(outbox.items()) == 1


def test_a_body_that_is_not_json_is_refused(http, outbox):
    headers, _ = signed(event())
    body = b"{not json"
    headers = {**headers, **signature_headers("mockpay", RAIL, body, timestamp=int(time.time()), nonce="n-9")}
    response = post(http, (headers, body))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "malformed_webhook")
    assert outbox.items() == []


def test_store_down_is_503_so_the_rail_retries(tmp_path):
    # A database that cannot be opened: the verification passes, the write cannot happen.
    broken = Outbox(sessionmaker(create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'oracle.db'}")))
    app = FastAPI()
    app.include_router(payment_webhooks(verifier(), broken))
    with TestClient(app) as client:
        response = post(client, signed(event()))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"


def test_over_a_real_socket_with_the_rail_stand_in(serve_app, outbox):
    """The rail's own delivery loop against the endpoint served by uvicorn: acknowledged once, stored once."""
    from oracle.payments.rail import PaymentRail

    app = FastAPI()
    app.include_router(payment_webhooks(verifier(), outbox))

    @app.get("/healthz")
    def healthz() -> dict:
        return {}

    with serve_app(app) as url:
        rail = PaymentRail("mockpay", RAIL, webhook_url=f"{url}{WEBHOOK_PATH}")
        payment = rail.pay("payout", 3, 120_000, deliver=False)
        assert rail.deliver_until_acknowledged(payment, give_up_after=5)
        assert rail.deliver_once(payment)  # redelivered: acknowledged again, as a duplicate
    (item,) = outbox.items()
    assert (item.kind, item.loan_id, item.amount, item.reference) == ("disbursement", 3, 120_000, payment.reference)


def test_a_webhook_for_an_unknown_loan_does_not_stop_the_read_model(http, outbox, w3, stack, keys, driver):
    """Signed by the rail, naming loan 999 that was never requested: the outbox passes it on, the book skips it
    (PaymentSkipped), and the indexer still indexes the ordinary repayment that follows."""
    from ledger.chain import ChainClient
    from ledger.indexer import Indexer
    from ledger.store.models.chain import Loan
    from oracle.outbox import OutboxWorker

    loan_id = driver.active_loan(keys["alice"])
    worker = OutboxWorker(outbox, ChainClient(w3, keys["oracle"], stack.errors), stack.book, interval=0.05)
    indexer = Indexer(w3, stack.manifest, outbox.sessions)
    indexer.run_once()

    assert post(http, signed(event("evt_ghost", loan_id=999, reference="COL-GHOST", amount=5_000,
                                   paid_at=driver.now))).status_code == 200
    assert worker.drain_once().claimed == 1
    (ghost,) = outbox.items()
    assert (ghost.status, ghost.outcome) == ("rejected", "LoanBookUnknownLoan")
    assert post(http, signed(event("evt_real", loan_id=loan_id, reference="COL-0002", amount=10_000,
                                   paid_at=driver.now), nonce="n-2")).status_code == 200
    assert worker.drain_once().credited == 1

    report = indexer.run_once()

    assert report.to_block == w3.eth.block_number and report.events == 2  # PaymentSkipped, RepaymentApplied
    with outbox.sessions() as session:
        assert session.get(Loan, 999) is None
        row = session.get(Loan, loan_id)
        repayment = row.payments[-1]
        assert (repayment.kind, repayment.amount, repayment.payment_ref) == (
            "repayment", 10_000, "0x" + payment_ref("mockpay", "COL-0002").hex())
        assert row.principal_repaid + row.interest_paid == 10_000


def test_a_second_provider_is_accepted_side_by_side_on_its_own_path(outbox):
    """tradepay signs Standard Webhooks over a trade payload; the stand-in keeps its endpoint and layout."""
    providers = {**verifier().providers, "tradepay": HmacJsonProvider("tradepay", b"tradepay-secret")}
    app = FastAPI()
    app.include_router(payment_webhooks(WebhookVerifier(providers), outbox))
    now = int(time.time())
    trade = {"event": "transfer.succeeded", "payment": {
        "trade_no": "2026113022001400001", "total_amount": "1200.00", "currency": "CNY",
        "paid_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 5)), "metadata": {"loan_id": "3"}}}
    body = json.dumps(trade).encode()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now),
               "webhook-signature": sign(b"tradepay-secret", "msg_1", now, body)}
    with TestClient(app) as client:
        theirs = client.post("/v1/webhooks/tradepay", content=body, headers=headers)
        ours = post(client, signed(event()))
        ours_by_path = client.post("/v1/webhooks/mockpay", content=signed(event("evt_2", reference="COL-2"))[1],
                                   headers=signed(event("evt_2", reference="COL-2"))[0])
        again = client.post("/v1/webhooks/tradepay", content=body, headers=headers)
        refused = [client.post("/v1/webhooks/tradepay", content=body.replace(b"1200.00", b"9200.00"), headers=headers),
                   client.post("/v1/webhooks/mockpay", content=body, headers=headers),   # another provider's layout
                   post(client, (headers, body)),                                      # on the stand-in's endpoint
                   client.post("/v1/webhooks/evilpay", content=body, headers=headers)]
    assert [r.status_code for r in (theirs, ours, ours_by_path)] == [200, 200, 200], theirs.text
    assert again.json()["status"] == "duplicate"
    assert [(r.status_code, r.json()["error"]["code"]) for r in refused] == [
        (401, "bad_signature"), (400, "malformed_webhook"), (400, "malformed_webhook"), (401, "unknown_provider")]
    stored = {i.provider: i for i in outbox.items()}
    assert sorted((i.provider, i.reference) for i in outbox.items()) == [
        ("mockpay", "COL-0001"), ("mockpay", "COL-2"), ("tradepay", "2026113022001400001")]
    tradepay = stored["tradepay"]
    assert (tradepay.kind, tradepay.loan_id, tradepay.amount, tradepay.event_id) == (
        "disbursement", 3, 120_000, "msg_1")
    assert tradepay.payment_ref == "0x" + payment_ref("tradepay", "2026113022001400001").hex()


def test_the_largest_loan_id_the_contract_takes_is_accepted(http, outbox):
    response = post(http, signed(event(loan_id=2**256 - 1)))
    assert response.status_code == 200, response.text
    assert [i.loan_id for i in outbox.items()] == [2**256 - 1]


@pytest.mark.parametrize("field_value", [("loan_id", 2**256), ("loan_id", 0), ("loan_id", True), ("amount", 0),
                                         ("paid_at", 2**40), ("currency", "CN"), ("currency", "cny"),
                                         ("reference", ""), ("reference", "a b"), ("event_id", "e" * 65),
                                         ("kind", "refund"), ("payment_ref", b"short")])
def test_the_shared_checks_refuse_every_identifier_out_of_bounds_whatever_the_provider(field_value):
    good = Confirmation(kind="repayment", loan_id=7, reference="COL-1", payment_ref=payment_ref("p", "COL-1"),
                        amount=100, currency="CNY", paid_at=1_700_000_000, provider="p", event_id="evt-1")
    check_confirmation(good)
    field, value = field_value
    with pytest.raises(MalformedWebhook, match=field.split("_")[0]):
        check_confirmation(replace(good, **{field: value}))


@pytest.mark.parametrize(("field_value", "recorded"), [
    (("loan_id", 2**256), True), (("currency", "cny"), True), (("paid_at", 0), True), (("amount", 2**96), True),
    (("reference", "a b"), True), (("event_id", ""), True),
    (("amount", 0), False), (("reference", ""), False), (("reference", "COL\x00-1"), False),
    (("kind", "disbursement"), False),
])
def test_a_refusal_names_the_money_when_there_is_money_to_record(field_value, recorded):
    """A repayment with a positive amount and a reference to refund it by is a RefusedPayment carrying it."""
    good = Confirmation(kind="repayment", loan_id=7, reference="COL-1", payment_ref=payment_ref("p", "COL-1"),
                        amount=100, currency="CNY", paid_at=1_700_000_000, provider="p", event_id="evt-1")
    field, value = field_value
    bad = replace(good, **({field: value, "loan_id": 0} if field == "kind" else {field: value}))
    with pytest.raises(MalformedWebhook) as refused:
        check_confirmation(bad)
    assert isinstance(refused.value, RefusedPayment) is recorded
    if recorded:
        assert refused.value.confirmation == bad and refused.value.reason


def test_holding_and_redelivering_a_refused_payment_on_sqlite_and_postgresql(sessions):
    """The suspense path on both stores (`sessions` is parametrised over them): one item per reference, a
    redelivery is a duplicate, and other facts under that reference a conflict."""
    store = Outbox(sessions)
    app = FastAPI()
    app.include_router(payment_webhooks(verifier(), store))
    # One payload, redelivered: event() stamps paid_at from the clock, and a second boundary between two calls
    # would make the "redelivery" another fact (a conflict, not a duplicate).
    payload = event(loan_id=2**256)
    changed = {**payload, "data": {**payload["data"], "amount": 5}}
    with TestClient(app) as client:
        first = post(client, signed(payload))
        again = post(client, signed(payload, nonce="n-2"))
        other = post(client, signed(changed, nonce="n-3"))
    assert (first.status_code, first.json()["status"]) == (200, "held_in_suspense")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert (other.status_code, other.json()["error"]["code"]) == (409, "conflicting_replay")
    (item,) = held(store)
    assert (item.loan_id, item.outbox_item_id, item.amount) == (2**256, None, 41_588)
    assert store.items() == []

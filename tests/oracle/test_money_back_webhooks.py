"""Refund and reversal webhooks in both provider layouts: what they become, how they are bounded, and how the
rail stand-in makes, signs, replays and lists them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
from eth_utils import keccak

from oracle.payments.inbound import (
    Confirmation,
    MalformedWebhook,
    check_confirmation,
    payment_ref,
)
from oracle.payments.provider import RefundOrder
from oracle.payments.providers import HmacJsonProvider, StandinProvider
from oracle.payments.providers.hmac_json import secret_bytes, sign
from oracle.payments.rail import PaymentRail, create_app
from oracle.payments.signatures import RsaScheme, signature_headers
from oracle.payments.webhook import WebhookVerifier

NOW = 1_800_000_000
SECRET = "whsec_" + "c2VjcmV0LW9mLXRyYWRlcGF5"
RAIL = RsaScheme.generate()


@pytest.fixture
def verifier() -> WebhookVerifier:
    return WebhookVerifier({"mockpay": RsaScheme.from_pem(RAIL.public_pem()),
                            "tradepay": HmacJsonProvider("tradepay", secret_bytes(SECRET))}, clock=lambda: NOW)


def standin(event_type: str, **data) -> tuple[dict, bytes]:
    body = {"reference": "REV-0001", "payment_reference": "COL-0001", "loan_id": 7, "amount": 41_288,
            "currency": "CNY"}
    body.update(data)
    payload = {"id": "evt_9", "type": event_type, "created_at": NOW, "data": body}
    raw = json.dumps(payload).encode()
    return signature_headers("mockpay", RAIL, raw, timestamp=NOW, nonce="n-1"), raw


def tradepay(event: str, **payment) -> tuple[dict, bytes]:
    body = {"trade_no": "R2026113000001", "original_trade_no": "2026113022001400001", "total_amount": "412.88",
            "currency": "CNY", "paid_at": datetime.fromtimestamp(NOW - 5, UTC).isoformat(),
            "metadata": {"loan_id": "7"}}
    body.update(payment)
    raw = json.dumps({"event": event, "payment": body}).encode()
    return {"webhook-id": "msg_9", "webhook-timestamp": str(NOW),
            "webhook-signature": sign(secret_bytes(SECRET), "msg_9", NOW, raw)}, raw


@pytest.mark.parametrize(("event_type", "extra", "kind"), [
    ("payment.reversed", {"reversed_at": NOW - 5}, "reversal"),
    ("payout.returned", {"reversed_at": NOW - 5}, "payout_reversal"),
    ("refund.succeeded", {"refunded_at": NOW - 5, "purpose": "credit"}, "credit_refund"),
    ("refund.succeeded", {"refunded_at": NOW - 5, "purpose": "suspense"}, "suspense_refund"),
])
def test_stand_in_money_back_events_name_their_own_reference_and_the_payment_they_return(
        verifier, event_type, extra, kind):
    c = verifier.verify(*standin(event_type, **extra))
    assert (c.kind, c.reference, c.reverses, c.loan_id, c.amount, c.paid_at) == (
        kind, "REV-0001", "COL-0001", 7, 41_288, NOW - 5)
    assert c.payment_ref == keccak(b"mockpay:REV-0001")  # its own reference, as a payment's


@pytest.mark.parametrize(("event", "metadata", "kind"), [
    ("charge.reversed", {"loan_id": "7"}, "reversal"),
    ("transfer.returned", {"loan_id": "7"}, "payout_reversal"),
    ("refund.succeeded", {"loan_id": "7", "purpose": "credit"}, "credit_refund"),
    ("refund.succeeded", {"loan_id": "7"}, "suspense_refund"),
])
def test_trade_layout_money_back_events(verifier, event, metadata, kind):
    c = verifier.verify_from("tradepay", *tradepay(event, metadata=metadata))
    assert (c.kind, c.reference, c.reverses, c.amount) == (kind, "R2026113000001", "2026113022001400001", 41_288)


@pytest.mark.parametrize(("event_type", "data", "words"), [
    ("payment.reversed", {"reversed_at": NOW, "payment_reference": "has space"}, "reverses"),  # the shared check
    ("payment.reversed", {"reversed_at": NOW, "payment_reference": None}, "payment_reference"),
    ("payment.reversed", {"reversed_at": NOW, "loan_id": 2**256}, "loan_id"),
    ("refund.succeeded", {"refunded_at": NOW, "purpose": "gift"}, "purpose"),
    ("refund.succeeded", {"refunded_at": NOW}, "purpose"),  # a refund says what it pays back
    ("payment.reversed", {"reversed_at": NOW, "payment_reference": "REV-0001"}, "its own reference"),
])
def test_money_back_events_are_bounded_like_payments(verifier, event_type, data, words):
    with pytest.raises(MalformedWebhook) as refused:
        verifier.verify(*standin(event_type, **data))
    assert words in refused.value.message


def test_a_trade_reversal_without_the_original_is_refused_and_a_payment_may_not_name_one(verifier):
    with pytest.raises(MalformedWebhook, match="reverses"):
        verifier.verify_from("tradepay", *tradepay("charge.reversed", original_trade_no=None))
    with pytest.raises(MalformedWebhook, match="names no earlier payment"):
        verifier.verify_from("tradepay", *tradepay("charge.succeeded"))
    plain = Confirmation(kind="repayment", loan_id=7, reference="COL-1", payment_ref=payment_ref("p", "COL-1"),
                         amount=1, currency="CNY", paid_at=NOW, provider="p", event_id="e")
    check_confirmation(plain)
    with pytest.raises(MalformedWebhook, match="reverses"):
        check_confirmation(replace(plain, kind="reversal", reverses="x" * 65))


def test_the_stand_in_reverses_once_refunds_with_a_purpose_and_lists_both_in_its_statement(serve_app):
    rail = PaymentRail("mockpay", RAIL, clock=lambda: NOW)  # no webhook URL: nothing is delivered
    with serve_app(create_app(rail)) as url:
        collected = httpx.post(f"{url}/v1/collections", json={"loan_id": 7, "amount": 50_000}).json()
        paid = httpx.post(f"{url}/v1/payouts", json={"loan_id": 7, "amount": 120_000}).json()
        first = httpx.post(f"{url}/v1/payments/{collected['reference']}/reverse")
        again = httpx.post(f"{url}/v1/payments/{collected['reference']}/reverse")
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json() == again.json()
        assert first.json()["payment_reference"] == collected["reference"] and first.json()["amount"] == 50_000
        assert httpx.post(f"{url}/v1/payments/{paid['reference']}/reverse").status_code == 422  # payouts return
        assert httpx.post(f"{url}/v1/payments/{collected['reference']}/return").status_code == 422
        assert httpx.post(f"{url}/v1/payments/NOPE/return").status_code == 404
        returned = httpx.post(f"{url}/v1/payments/{paid['reference']}/return").json()

        provider = StandinProvider("mockpay", None)
        provider.api.url = url
        refund = provider.order_refund(RefundOrder(7, collected["reference"], 1_000, "CNY", purpose="credit"), "rf-1")
        assert rail.refunds[refund.rail_reference].purpose == "credit"
        event = rail.refunds[refund.rail_reference].event()
        assert (event["type"], event["data"]["purpose"], event["data"]["payment_reference"]) == (
            "refund.succeeded", "credit", collected["reference"])
        conflict = httpx.post(f"{url}/v1/refunds", headers={"Idempotency-Key": "rf-1"},
                              json={"loan_id": 7, "payment_reference": collected["reference"], "amount": 1_000,
                                    "purpose": "suspense"})
        assert conflict.status_code == 422  # the same key for another purpose is another order

        entries = httpx.get(f"{url}/v1/statements/{datetime.fromtimestamp(NOW, UTC).date().isoformat()}").json()["entries"]
        by_direction = {e["direction"]: e for e in entries}
        assert set(by_direction) == {"collection", "payout", "reversal", "return", "refund"}
        assert (by_direction["reversal"]["reference"], by_direction["reversal"]["payment_reference"]) == (
            first.json()["reference"], collected["reference"])
        assert by_direction["return"]["reference"] == returned["reference"]
        assert [e.direction for e in provider.statement(datetime.fromtimestamp(NOW, UTC).date())] == [
            e["direction"] for e in entries]

"""Money from the rail is ASCII digits (issue 17): `str.isdigit`, `int()` and `Decimal()` all take "１２００" and
"١٢٠٠", so a decimal amount in any other digits is refused by name, through the intake's refusal path (400
`malformed_webhook`, nothing stored, nothing held), like any amount that is not a decimal."""

from __future__ import annotations

import json
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ledger.store import open_store
from ledger.store.models.suspense import SuspenseItem
from oracle.intake import payment_webhooks
from oracle.outbox import Outbox
from oracle.payments.inbound import MalformedWebhook, minor_units, unix_seconds
from oracle.payments.providers import HmacJsonProvider
from oracle.payments.providers.hmac_json import sign
from oracle.payments.webhook import WebhookVerifier

SECRET = b"tradepay-secret"


def in_digits(text: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isascii() and c.isdigit() else c for c in text)


@pytest.mark.parametrize("amount", [in_digits("1200.00", 0xFF10), in_digits("1200.00", 0x0660),
                                    in_digits("1200.00", 0x0966), "1200.0" + in_digits("0", 0xFF10), "¹²⁰⁰", "1_200"])
def test_an_amount_in_other_digits_is_not_money(amount):
    with pytest.raises(MalformedWebhook) as caught:
        minor_units(amount, "CNY", "payment.total_amount")
    assert str(caught.value).startswith("payment.total_amount: ") and "ASCII digits" in str(caught.value)


def test_ascii_amounts_are_read_exactly():
    assert (minor_units("1200.00", "CNY", "a"), minor_units("0.01", "CNY", "a"), minor_units("1200", "JPY", "a")) == (
        120_000, 1, 1200)


def test_a_timestamp_header_in_other_digits_is_refused():
    assert unix_seconds("1767225600", "webhook-timestamp") == 1_767_225_600
    with pytest.raises(MalformedWebhook, match="webhook-timestamp must be unix seconds"):
        unix_seconds(in_digits("1767225600", 0xFF10), "webhook-timestamp")


@pytest.fixture
def outbox(tmp_path):
    sessions = open_store(f"sqlite:///{tmp_path / 'oracle.db'}")
    yield Outbox(sessions)
    sessions.kw["bind"].dispose()


def _trade(amount: str, now: int) -> bytes:
    return json.dumps({"event": "charge.succeeded", "payment": {
        "trade_no": "2026120122001400007", "total_amount": amount, "currency": "CNY",
        "paid_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 5)), "metadata": {"loan_id": "3"}}},
        ensure_ascii=False).encode()


def test_a_signed_webhook_with_a_full_width_amount_is_refused_by_the_intake_and_stores_nothing(outbox):
    app = FastAPI()
    app.include_router(payment_webhooks(WebhookVerifier({"tradepay": HmacJsonProvider("tradepay", SECRET)}), outbox))
    now = int(time.time())

    def post(client, amount: str, webhook_id: str):
        body = _trade(amount, now)
        headers = {"webhook-id": webhook_id, "webhook-timestamp": str(now),
                   "webhook-signature": sign(SECRET, webhook_id, now, body)}
        return client.post("/v1/webhooks/tradepay", content=body, headers=headers)

    with TestClient(app) as client:
        refused = [post(client, in_digits("1200.00", zero), f"msg_{zero}") for zero in (0xFF10, 0x0660)]
        for answer in refused:
            assert (answer.status_code, answer.json()["error"]["code"]) == (400, "malformed_webhook"), answer.text
            assert "payment.total_amount" in answer.json()["error"]["message"]
        assert outbox.items() == []
        with outbox.sessions() as session:
            assert session.scalar(select(func.count()).select_from(SuspenseItem)) == 0
        # The same trade in ASCII digits is money: accepted (the refusals held nothing that would block it).
        accepted = post(client, "1200.00", "msg_ascii")
    assert accepted.status_code == 200, accepted.text
    assert [(i.reference, i.amount) for i in outbox.items()] == [("2026120122001400007", 120_000)]

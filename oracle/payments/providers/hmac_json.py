"""Provider kind "hmac_json": Standard Webhooks signatures over a trade-style JSON payload.

This is how many card and wallet providers (and Svix-based ones) notify: headers `webhook-id`,
`webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` (several
space-separated when the secret is being rotated), a shared secret written `whsec_<base64>`, and a body
that names amounts as decimal strings in major units, times as ISO 8601 and the merchant's own data as
strings:

    {"event": "transfer.succeeded" | "charge.succeeded",
     "payment": {"trade_no": "2026113022001400001", "out_trade_no": "...", "total_amount": "1200.00",
                 "currency": "CNY", "paid_at": "2026-11-30T13:00:00+08:00", "metadata": {"loan_id": "7"}}}

A transfer (money out to the borrower) is a disbursement, a charge (money in) a repayment; `trade_no`, the
provider's transaction number, is the rail reference that its statement shows. Money going back names the
earlier trade in `original_trade_no` and has its own `trade_no`: `refund.succeeded` (a refund we ordered; the
metadata echoes its `purpose`, "credit" for a loan's credit balance, else suspense money), `charge.reversed` (a
chargeback or bounced debit of a charge) and `transfer.returned` (a transfer the receiving bank sent back). Amounts become integer
minor units exactly (oracle.payments.inbound.minor_units) or the webhook is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oracle.payments.inbound import (
    BadSignature,
    Confirmation,
    Headers,
    MalformedWebhook,
    currency_exponent,
    first_error,
    minor_units,
    payment_ref,
    unix_seconds,
)
from oracle.payments.provider import (
    LookupUnsupported,
    OrderedPayment,
    PaymentOrder,
    PaymentProvider,
    ProviderApi,
    RefundOrder,
)

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
SIGNATURE_VERSION = "v1"


def secret_bytes(secret: str) -> bytes:
    """A Standard Webhooks secret: `whsec_` + base64 of the key; anything else is taken as the raw key."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def sign(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value (what the provider sends; tests sign with it too)."""
    mac = hmac.new(secret, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(mac).decode()}"


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    loan_id: str = Field(pattern=r"^[1-9][0-9]{0,19}$")


class Trade(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # providers add fields; we read these

    trade_no: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.:]+$")
    out_trade_no: str | None = Field(default=None, max_length=64)
    total_amount: str = Field(max_length=40)  # major units, e.g. "1200.00": never a JSON number
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    paid_at: str = Field(max_length=40)
    metadata: Metadata
    original_trade_no: str | None = Field(default=None, min_length=1, max_length=64,
                                          pattern=r"^[A-Za-z0-9_\-.:]+$")  # what a refund or reversal returns


# Events that return an earlier trade, and what they become (a refund by its metadata's purpose).
_RETURNING = {"charge.reversed": "reversal", "transfer.returned": "payout_reversal"}


class TradeEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    event: Literal["transfer.succeeded", "charge.succeeded", "refund.succeeded", "charge.reversed",
                   "transfer.returned"]
    payment: Trade


class HmacJsonProvider(PaymentProvider):
    kind: ClassVar[str] = "hmac_json"

    def __init__(self, name: str, secret: bytes | None, api: ProviderApi | None = None):
        self.name, self.secret = name, secret
        self.api = api or ProviderApi(name, None)

    @property
    def verifies_webhooks(self) -> bool:
        return self.secret is not None

    # ------------------------------------------------------------------ inbound

    def authenticate(self, headers: Headers, body: bytes) -> int:
        webhook_id, timestamp = headers.require(HEADER_ID), headers.require(HEADER_TIMESTAMP)
        signatures = headers.require(HEADER_SIGNATURE).split()
        signed_at = unix_seconds(timestamp, HEADER_TIMESTAMP)
        if self.secret is None:
            raise BadSignature(f"no secret is configured to verify {self.name}'s webhooks")
        expected = sign(self.secret, webhook_id, signed_at, body)
        if not any(hmac.compare_digest(expected, s) for s in signatures):
            raise BadSignature(f"the signature is not {self.name}'s: no {SIGNATURE_VERSION} signature verifies")
        return signed_at

    def read_payment(self, headers: Headers, body: bytes) -> Confirmation:
        try:
            event = TradeEvent.model_validate(json.loads(body))
        except (ValueError, ValidationError) as exc:
            raise MalformedWebhook(f"the payload is not a payment event: {first_error(exc)}") from exc
        trade = event.payment
        amount = minor_units(trade.total_amount, trade.currency, "payment.total_amount")
        return Confirmation(
            kind=_kind(event), reverses=trade.original_trade_no,
            loan_id=int(trade.metadata.loan_id), reference=trade.trade_no,
            payment_ref=payment_ref(self.name, trade.trade_no), amount=amount, currency=trade.currency,
            paid_at=_unix_seconds(trade.paid_at), provider=self.name, event_id=headers.require(HEADER_ID))

    # ------------------------------------------------------------------ outbound

    def order_payout(self, order: PaymentOrder, idempotency_key: str) -> OrderedPayment:
        return self._order("/v1/transfers", _trade_body(order, idempotency_key), idempotency_key)

    def order_collection(self, order: PaymentOrder, idempotency_key: str) -> OrderedPayment:
        return self._order("/v1/charges", _trade_body(order, idempotency_key), idempotency_key)

    def order_refund(self, order: RefundOrder, idempotency_key: str) -> OrderedPayment:
        body = {"trade_no": order.rail_reference, "refund_amount": major_units(order.amount, order.currency),
                "currency": order.currency, "out_request_no": idempotency_key,
                "metadata": {"loan_id": str(order.loan_id), "purpose": order.purpose}}
        return self._order("/v1/refunds", body, idempotency_key)

    def find_order(self, idempotency_key: str) -> OrderedPayment | None:
        # This layout has no lookup by merchant order number; it honours `out_trade_no`, so re-sending the
        # order with the same key answers the first payment instead of paying again.
        raise LookupUnsupported(f"{self.name}'s API cannot look an order up by its key; re-send with the same key")

    def _order(self, path: str, body: dict, idempotency_key: str) -> OrderedPayment:
        answer, replayed = self.api.post(path, body, idempotency_key)
        return OrderedPayment(self.name, str(answer["trade_no"]), replayed, answer)


def major_units(amount: int, currency: str) -> str:
    """The decimal string this layout uses for amounts: 120_000 CNY -> "1200.00" (exact, no float)."""
    places = currency_exponent(currency)
    if places == 0:
        return str(amount)
    whole, fraction = divmod(amount, 10**places)
    return f"{whole}.{fraction:0{places}d}"


def _trade_body(order: PaymentOrder, idempotency_key: str) -> dict:
    return {"out_trade_no": idempotency_key, "total_amount": major_units(order.amount, order.currency),
            "currency": order.currency, "metadata": {"loan_id": str(order.loan_id)}}


def _kind(event: TradeEvent) -> str:
    """The confirmation kind; a refund's comes from the purpose the order put in its metadata."""
    if event.event == "refund.succeeded":
        purpose = (event.payment.metadata.model_extra or {}).get("purpose")
        return "credit_refund" if purpose == "credit" else "suspense_refund"
    if event.event in _RETURNING:
        return _RETURNING[event.event]
    return "disbursement" if event.event == "transfer.succeeded" else "repayment"


def _unix_seconds(iso: str) -> int:
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError as exc:
        raise MalformedWebhook(f"payment.paid_at: {iso!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise MalformedWebhook(f"payment.paid_at: {iso!r} has no time zone")
    return int(moment.timestamp())

"""Provider kind "standin": the layout of the rail stand-in (`loanledger rail`), signed as WeChat Pay v3 signs.

Headers `X-Rail-Provider`, `X-Rail-Timestamp`, `X-Rail-Nonce`, `X-Rail-Signature-Type` and
`X-Rail-Signature` over "<timestamp>\\n<nonce>\\n<body>\\n" (oracle.payments.signatures), RSA-SHA256 or
HMAC-SHA256; the body is an event with integer minor units: `payment.succeeded` (a payout is a disbursement, a
collection a repayment), `collection.failed` (a debit declined: no money, DeclinedDebit), `refund.succeeded` (its `purpose` says whether it pays back a loan's credit,
`credit_refund`, or returns suspense money, `suspense_refund`), `payment.reversed` (a collection taken back:
`reversal`) or `payout.returned` (a payout sent back: `payout_reversal`); the last three name the earlier
payment by its `payment_reference`. Orders go to the stand-in's
`/v1/payouts`, `/v1/collections` and `/v1/refunds`, each honouring an `Idempotency-Key` header; an order's
outcome is looked up by that key at `/v1/orders/{key}`; a day's settlement statement is `/v1/statements/{date}`.
"""

from __future__ import annotations

import json
from datetime import date
from typing import ClassVar, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oracle.payments.inbound import (
    BadSignature,
    Confirmation,
    DeclinedDebit,
    Headers,
    MalformedWebhook,
    UnknownProvider,
    first_error,
    payment_ref,
    unix_seconds,
)
from oracle.payments.provider import (
    OrderedPayment,
    PaymentOrder,
    PaymentProvider,
    ProviderApi,
    RailUnavailable,
    RefundOrder,
    StatementEntry,
)
from oracle.payments.signatures import (
    HEADER_NONCE,
    HEADER_PROVIDER,
    HEADER_SCHEME,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    Scheme,
    SignatureMismatch,
    signed_message,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Event(_Strict):
    """What every event carries around its `type` and `data`."""

    id: str = Field(min_length=1, max_length=64)
    created_at: int = Field(ge=1)


class PaymentData(_Strict):
    """The layout only (types, strictly): the bounds of ids, amounts and currencies are the shared
    check_confirmation's, which holds an authentic payment it refuses in suspense instead of dropping it."""

    direction: Literal["payout", "collection"]
    loan_id: int
    reference: str
    amount: int
    currency: str
    paid_at: int


class PaymentEvent(_Event):
    type: Literal["payment.succeeded"]
    data: PaymentData


class RefundData(_Strict):
    """Types only, as PaymentData: the bounds are the shared check_confirmation's."""

    reference: str
    payment_reference: str
    loan_id: int
    amount: int
    currency: str
    refunded_at: int
    purpose: Literal["credit", "suspense"]


class RefundEvent(_Event):
    type: Literal["refund.succeeded"]
    data: RefundData


class ReversalData(_Strict):
    """Types only, as PaymentData: the bounds are the shared check_confirmation's."""

    reference: str
    payment_reference: str
    loan_id: int
    amount: int
    currency: str
    reversed_at: int


class ReversalEvent(_Event):
    type: Literal["payment.reversed", "payout.returned"]
    data: ReversalData


class DeclineData(_Strict):
    reference: str = Field(min_length=1, max_length=64)
    order_key: str = Field(min_length=1, max_length=128)
    loan_id: int
    amount: int
    currency: str
    card: str
    reason: str = Field(min_length=1, max_length=64)
    declined_at: int


class DeclineEvent(_Event):
    """`collection.failed`: a debit the card's bank declined (automatic debit, issue 17); no money moved."""

    type: Literal["collection.failed"]
    data: DeclineData


_EVENT_MODELS = {"payment.succeeded": PaymentEvent, "refund.succeeded": RefundEvent,
                 "payment.reversed": ReversalEvent, "payout.returned": ReversalEvent,
                 "collection.failed": DeclineEvent}


class StandinProvider(PaymentProvider):
    kind: ClassVar[str] = "standin"

    def __init__(self, name: str, scheme: Scheme | None, api: ProviderApi | None = None):
        self.name, self.scheme = name, scheme
        self.api = api or ProviderApi(name, None)

    @property
    def verifies_webhooks(self) -> bool:
        return self.scheme is not None

    # ------------------------------------------------------------------ inbound

    def authenticate(self, headers: Headers, body: bytes) -> int:
        named = headers.require(HEADER_PROVIDER)
        if named != self.name:
            raise UnknownProvider(f"the webhook is from {named!r}, not from {self.name!r}")
        if self.scheme is None:
            raise UnknownProvider(f"no key is configured to verify {self.name}'s webhooks")
        if headers.require(HEADER_SCHEME) != self.scheme.name:
            raise BadSignature(f"{self.name} signs with {self.scheme.name}, not {headers.require(HEADER_SCHEME)}")
        timestamp, nonce = headers.require(HEADER_TIMESTAMP), headers.require(HEADER_NONCE)
        signed_at = unix_seconds(timestamp, HEADER_TIMESTAMP)
        try:
            self.scheme.verify(signed_message(timestamp, nonce, body), headers.require(HEADER_SIGNATURE))
        except SignatureMismatch as exc:
            raise BadSignature(f"the signature is not {self.name}'s: {exc}") from exc
        return signed_at

    def read_payment(self, headers: Headers, body: bytes) -> Confirmation:
        try:
            raw = json.loads(body)
            model = _EVENT_MODELS.get(raw.get("type") if isinstance(raw, dict) else None, PaymentEvent)
            event = model.model_validate(raw)
        except (ValueError, ValidationError) as exc:
            raise MalformedWebhook(f"the payload is not a payment event: {first_error(exc)}") from exc
        if isinstance(event, DeclineEvent):  # not a payment: the intake hands it to the collection intents
            raise DeclinedDebit(self.name, event.data.reference, event.data.order_key, event.data.loan_id,
                                event.data.reason)
        data = event.data
        common = {"loan_id": data.loan_id, "reference": data.reference, "amount": data.amount,
                  "payment_ref": payment_ref(self.name, data.reference), "currency": data.currency,
                  "provider": self.name, "event_id": event.id}
        if isinstance(event, RefundEvent):
            kind = "credit_refund" if event.data.purpose == "credit" else "suspense_refund"
            return Confirmation(kind=kind, paid_at=event.data.refunded_at, reverses=event.data.payment_reference,
                                **common)
        if isinstance(event, ReversalEvent):
            kind = "reversal" if event.type == "payment.reversed" else "payout_reversal"
            return Confirmation(kind=kind, paid_at=event.data.reversed_at, reverses=event.data.payment_reference,
                                **common)
        return Confirmation(kind="disbursement" if data.direction == "payout" else "repayment",
                            paid_at=data.paid_at, **common)

    # ------------------------------------------------------------------ outbound

    def order_payout(self, order: PaymentOrder, idempotency_key: str) -> OrderedPayment:
        return self._order("/v1/payouts", _order_body(order), idempotency_key)

    def order_collection(self, order: PaymentOrder, idempotency_key: str) -> OrderedPayment:
        return self._order("/v1/collections", _order_body(order), idempotency_key)

    def order_refund(self, order: RefundOrder, idempotency_key: str) -> OrderedPayment:
        body = {"loan_id": order.loan_id, "payment_reference": order.rail_reference, "amount": order.amount,
                "currency": order.currency, "purpose": order.purpose}
        return self._order("/v1/refunds", body, idempotency_key)

    def find_order(self, idempotency_key: str) -> OrderedPayment | None:
        answer = self.api.get(f"/v1/orders/{quote(idempotency_key, safe='')}")
        return None if answer is None else OrderedPayment(self.name, str(answer["reference"]), True, answer)

    def statement(self, day: date) -> list[StatementEntry]:
        answer = self.api.get(f"/v1/statements/{day.isoformat()}")
        if answer is None:
            raise RailUnavailable(f"{self.name} has no statement endpoint (HTTP 404)")
        try:
            return [StatementEntry(reference=str(e["reference"]), direction=e["direction"], loan_id=int(e["loan_id"]),
                                   amount=int(e["amount"]), currency=str(e["currency"]), paid_at=int(e["paid_at"]))
                    for e in answer["entries"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise RailUnavailable(f"{self.name}'s statement is not in the expected layout: {exc!r}") from exc

    def _order(self, path: str, body: dict, idempotency_key: str) -> OrderedPayment:
        answer, replayed = self.api.post(path, body, idempotency_key)
        return OrderedPayment(self.name, str(answer["reference"]), replayed, answer)


def _order_body(order: PaymentOrder) -> dict:
    body: dict = {"loan_id": order.loan_id, "amount": order.amount, "currency": order.currency}
    if order.paid_at is not None:
        body["paid_at"] = order.paid_at
    return body

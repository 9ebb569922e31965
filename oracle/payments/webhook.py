"""Incoming payment webhooks: verify the provider's signature and time window, then normalise.

A webhook becomes a `Confirmation` {kind, loan, reference, amount, paid_at} only when every check passes;
each failure is a `WebhookRejected` with a stable code the endpoint returns, and nothing is stored.
Replays inside the window are not rejected here: the outbox keys on (provider, event id) and answers a
provider's retry with the first result, and the chain credits a payment reference once, ever.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledger.errors import LoanLedgerError
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

DEFAULT_WINDOW = 300  # seconds either side of our clock, as the big providers document
MAX_BODY = 64 * 1024
MAX_AMOUNT = 2**96 - 1  # the contracts' uint96


class WebhookRejected(LoanLedgerError):
    """A webhook that is not accepted; `code` is stable, the message says what was wrong."""

    code = "webhook_rejected"
    status = 400

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class UnknownProvider(WebhookRejected):
    code = "unknown_provider"
    status = 401


class BadSignature(WebhookRejected):
    code = "bad_signature"
    status = 401


class OutsideTimeWindow(WebhookRejected):
    code = "outside_time_window"
    status = 401


class MalformedWebhook(WebhookRejected):
    code = "malformed_webhook"
    status = 400


class PaymentData(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    direction: Literal["payout", "collection"]
    loan_id: int = Field(ge=1)
    reference: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.:]+$")
    amount: int = Field(ge=1, le=MAX_AMOUNT)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    paid_at: int = Field(ge=1)


class PaymentEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=64)
    type: Literal["payment.succeeded"]
    created_at: int = Field(ge=1)
    data: PaymentData


@dataclass(frozen=True)
class Confirmation:
    """A payment the rail says happened, in the shape the loan book confirms."""

    kind: Literal["disbursement", "repayment"]
    loan_id: int
    reference: str  # the rail's own reference
    payment_ref: bytes  # bytes32 credited once on-chain: keccak256("<provider>:<reference>")
    amount: int  # minor units
    currency: str
    paid_at: int  # unix seconds
    provider: str
    event_id: str


def payment_ref(provider: str, reference: str) -> bytes:
    """The on-chain reference: scoped by provider so two rails' references never collide."""
    return keccak(f"{provider}:{reference}".encode())


class WebhookVerifier:
    """Checks webhooks against the providers' keys and a time window."""

    def __init__(self, providers: Mapping[str, Scheme], *, window: int = DEFAULT_WINDOW,
                 clock: Callable[[], float] = time.time):
        self.providers, self.window, self.clock = dict(providers), window, clock

    def verify(self, headers: Mapping[str, str], body: bytes) -> Confirmation:
        lower = {k.lower(): v for k, v in headers.items()}

        def header(name: str) -> str:
            value = lower.get(name.lower())
            if not value:
                raise MalformedWebhook(f"the {name} header is missing")
            return value

        provider = header(HEADER_PROVIDER)
        scheme = self.providers.get(provider)
        if scheme is None:
            raise UnknownProvider(f"no payment provider named {provider!r} is configured")
        if header(HEADER_SCHEME) != scheme.name:
            raise BadSignature(f"{provider} signs with {scheme.name}, not {header(HEADER_SCHEME)}")
        timestamp, nonce = header(HEADER_TIMESTAMP), header(HEADER_NONCE)
        if not timestamp.isdigit():
            raise MalformedWebhook(f"{HEADER_TIMESTAMP} must be unix seconds")
        if len(body) > MAX_BODY:
            raise MalformedWebhook(f"the body is larger than {MAX_BODY} bytes")
        try:
            scheme.verify(signed_message(timestamp, nonce, body), header(HEADER_SIGNATURE))
        except SignatureMismatch as exc:
            raise BadSignature(f"the signature is not {provider}'s: {exc}") from exc
        # Checked after the signature so an attacker learns nothing about our clock from unsigned probes.
        skew = abs(self.clock() - int(timestamp))
        if skew > self.window:
            raise OutsideTimeWindow(f"the webhook is {int(skew)}s away from our clock (window {self.window}s)")
        try:
            event = PaymentEvent.model_validate(json.loads(body))
        except (ValueError, ValidationError) as exc:
            raise MalformedWebhook(f"the payload is not a payment event: {_first_error(exc)}") from exc
        data = event.data
        return Confirmation(
            kind="disbursement" if data.direction == "payout" else "repayment", loan_id=data.loan_id,
            reference=data.reference, payment_ref=payment_ref(provider, data.reference), amount=data.amount,
            currency=data.currency, paid_at=data.paid_at, provider=provider, event_id=event.id)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)

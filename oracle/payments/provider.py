"""The rail seam: one `PaymentProvider` adapter holds everything one payment provider needs.

Inbound, a provider has its own header names, signature scheme and key, and payload layout; the checks
every provider shares (body size, time window, bounds of identifiers and amounts) run here, once, around the provider's
own two steps (`authenticate`, then `read_payment`). Outbound, it orders payouts, collections and
refunds over the provider's HTTP API with an idempotency key the provider honours, so a retried order
never moves money twice. Adapters live in oracle.payments.providers, one module per provider kind, and
are configured in the settings (oracle.payments.config).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Literal

import httpx

from ledger.errors import LoanLedgerError
from oracle.payments.inbound import (
    DEFAULT_WINDOW,
    Confirmation,
    Headers,
    check_body_size,
    check_confirmation,
    check_time_window,
)


class ProviderError(LoanLedgerError):
    """An order the provider did not take; nothing moved (or, for a lost answer, retry with the same key)."""


class RailUnavailable(ProviderError):
    """The provider did not answer, or answered 5xx: retrying with the same idempotency key is safe."""


class LookupUnsupported(ProviderError):
    """The provider's API cannot look an order up by key: re-sending with the same key is the safe path."""


class OrderRefused(ProviderError):
    """The provider answered 4xx: the order itself is wrong; retrying will not help."""

    def __init__(self, message: str, status: int):
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class PaymentOrder:
    """Money to move for a loan: a payout to the borrower, or a collection from them."""

    loan_id: int
    amount: int  # minor units
    currency: str
    paid_at: int | None = None  # the stand-in dates the payment with it (demos run on chain time)


@dataclass(frozen=True)
class RefundOrder:
    """Money to return against an earlier payment, named by the rail's reference of that payment.

    `purpose` says what the money was on the ledger, and the provider echoes it in its refund webhook (as
    providers echo a merchant's metadata): a `credit` refund pays back an Overpaid loan's credit balance and
    is confirmed on-chain; a `suspense` refund returns money the book never took, and stays off the book.
    """

    loan_id: int
    rail_reference: str
    amount: int  # minor units
    currency: str
    purpose: Literal["credit", "suspense"] = "suspense"


@dataclass(frozen=True)
class OrderedPayment:
    """The provider's answer to an order: its own reference for the payment, and what it said."""

    provider: str
    rail_reference: str
    replayed: bool = False  # the idempotency key was seen before: this is the first order's payment
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatementEntry:
    """One line of a provider's daily settlement statement: money it moved, by its own reference."""

    reference: str
    direction: Literal["payout", "collection", "refund", "reversal", "return"]
    loan_id: int
    amount: int  # minor units
    currency: str
    paid_at: int  # unix seconds


class StatementUnsupported(LookupUnsupported):
    """The provider's API publishes no statement this adapter can read: reconcile from its files by hand."""


class PaymentProvider(ABC):
    """A payment provider: webhooks in (`parse_webhook`), orders out (`order_payout` and friends)."""

    kind: ClassVar[str]  # the adapter's name in the settings, e.g. "standin"
    name: str  # this provider's configured name; scopes its references on-chain ("<name>:<reference>")

    # ------------------------------------------------------------------ inbound

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, *, now: float,
                      window: int = DEFAULT_WINDOW) -> Confirmation:
        """A verified, normalised confirmation, or a `WebhookRejected` with a stable code."""
        check_body_size(body)
        signed_at = self.authenticate(Headers(headers), body)
        check_time_window(signed_at, now, window)
        confirmation = self.read_payment(Headers(headers), body)
        check_confirmation(confirmation)
        return confirmation

    @property
    def verifies_webhooks(self) -> bool:
        """False when no verification key is configured (the provider then only takes orders)."""
        return True

    @abstractmethod
    def authenticate(self, headers: Headers, body: bytes) -> int:
        """Checks the signature with this provider's key; returns the signed timestamp (unix seconds)."""

    @abstractmethod
    def read_payment(self, headers: Headers, body: bytes) -> Confirmation:
        """The payload in this provider's layout, normalised; called only on an authentic webhook."""

    # ------------------------------------------------------------------ outbound

    @abstractmethod
    def order_payout(self, order: PaymentOrder, idempotency_key: str) -> OrderedPayment:
        """Pays a loan's principal out to its borrower."""

    @abstractmethod
    def order_collection(self, order: PaymentOrder, idempotency_key: str) -> OrderedPayment:
        """Collects a repayment from the borrower (auto-debit)."""

    @abstractmethod
    def order_refund(self, order: RefundOrder, idempotency_key: str) -> OrderedPayment:
        """Returns money against an earlier payment."""

    @abstractmethod
    def find_order(self, idempotency_key: str) -> OrderedPayment | None:
        """What became of the order sent with this key: its payment, or None if the provider never took it.

        Asked before re-sending an order whose answer was lost (a timeout is not "not ordered").
        `RailUnavailable` if the provider does not answer; `LookupUnsupported` if its API has no lookup.
        """

    def statement(self, day: date) -> list[StatementEntry]:
        """The provider's settlement statement for one UTC day: every payment and refund it executed.

        `RailUnavailable` if the provider does not answer; `StatementUnsupported` if this adapter cannot read one.
        """
        raise StatementUnsupported(f"{self.name}: this adapter ({self.kind}) cannot read the provider's statements")


class ProviderApi:
    """A provider's HTTP API: JSON orders carrying an `Idempotency-Key` header, errors sorted by who must act."""

    def __init__(self, provider: str, url: str | None, *, api_key: str | None = None, timeout: float = 10.0,
                 http: httpx.Client | None = None):
        self.provider, self.url, self.api_key, self.timeout = provider, (url or "").rstrip("/"), api_key, timeout
        self.http = http  # a shared client (tests give a mock transport); else one per order, closed after it

    def post(self, path: str, body: Mapping[str, Any], idempotency_key: str) -> tuple[dict, bool]:
        """(the provider's JSON answer, whether it replayed an earlier order with this key)."""
        response = self._send("POST", path, content=json.dumps(body),
                              headers={"Idempotency-Key": idempotency_key, "Content-Type": "application/json"})
        return self._answer(response), response.headers.get("Idempotent-Replayed", "").lower() == "true"

    def get(self, path: str) -> dict | None:
        """The provider's JSON answer to a lookup, or None when it answers 404 (it has no such thing)."""
        response = self._send("GET", path)
        return None if response.status_code == 404 else self._answer(response)

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        if not self.url:
            raise ProviderError(f"no URL is configured for payment provider {self.provider}")
        headers = dict(kwargs.pop("headers", {}))
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        client = self.http or httpx.Client(timeout=self.timeout)
        try:
            return client.request(method, f"{self.url}{path}", headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise RailUnavailable(f"{self.provider} at {self.url} did not answer: {type(exc).__name__}: {exc}") from exc
        finally:
            if self.http is None:
                client.close()

    def _answer(self, response: httpx.Response) -> dict:
        if response.status_code >= 500:
            raise RailUnavailable(f"{self.provider} answered HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            raise OrderRefused(f"{self.provider} refused the order (HTTP {response.status_code}): "
                               f"{response.text[:200]}", response.status_code)
        try:
            return response.json()
        except ValueError as exc:
            raise RailUnavailable(f"{self.provider} answered with something that is not JSON") from exc

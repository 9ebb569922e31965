"""What every provider's webhook becomes, the ways it is refused, and the checks all providers share.

A webhook becomes a `Confirmation` {kind, loan, rail reference, amount, paid_at} only when every check
passes; each failure is a `WebhookRejected` with a stable code the endpoint returns, and nothing is stored,
with one exception: an authentic repayment whose content the loan book could never take (a loan id past
uint256, an unknown currency...) is still money the rail says it moved. Its refusal, `RefusedPayment`,
carries the confirmation, and the intake holds it in suspense (oracle/suspense.py) instead of dropping it.
The checks that do not depend on the provider (body size, time window, and the bounds of every identifier
and amount: `check_confirmation`) live here once;
a provider adapter (oracle.payments.provider) brings its headers, signature scheme and payload layout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Literal

from eth_utils import keccak
from pydantic import ValidationError

from ledger.errors import LoanLedgerError

DEFAULT_WINDOW = 300  # seconds either side of our clock, as the big providers document
MAX_BODY = 64 * 1024
MAX_AMOUNT = 2**96 - 1  # the contracts' uint96
MAX_LOAN_ID = 2**256 - 1  # ILoanBook's loan ids are uint256
MAX_PAID_AT = 2**40 - 1  # the contracts' uint40 times
MAX_ID = 64  # characters of a rail reference or event id: what the outbox's columns hold
MAX_STORED = 10**78 - 1  # the largest amount or id the store's MinorUnits columns hold
KINDS = ("disbursement", "repayment", "credit_refund", "suspense_refund", "reversal", "payout_reversal")
# Kinds that name an earlier payment of the same provider (`Confirmation.reverses`): refunds pay back against
# one, reversals take one back.
REFERRING_KINDS = frozenset({"credit_refund", "suspense_refund", "reversal", "payout_reversal"})
_REFERENCE = re.compile(r"[A-Za-z0-9_\-.:]{1,64}")
_CURRENCY = re.compile(r"[A-Z]{3}")


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


class RefusedPayment(MalformedWebhook):
    """An authentic repayment the loan book can never take as it is, but that names money we can record:
    a reference to refund it by and a positive amount. `reason` is a stable name for the suspense item."""

    def __init__(self, message: str, reason: str, confirmation: Confirmation):
        super().__init__(message)
        self.reason, self.confirmation = reason, confirmation


class DeclinedDebit(WebhookRejected):
    """An authentic notice that a debit ordered under `order_key` was declined (no money moved): not a payment, so
    not for the outbox; the intake hands it to the collection run's intents (oracle.collections.record_decline)."""

    code = "debit_declined"
    status = 200

    def __init__(self, provider: str, reference: str, order_key: str, loan_id: int, reason: str):
        super().__init__(f"{provider} declined debit {reference} (order {order_key}, loan {loan_id}): {reason}")
        self.provider, self.reference, self.order_key, self.loan_id, self.reason = \
            provider, reference, order_key, loan_id, reason


@dataclass(frozen=True)
class Confirmation:
    """A payment the rail says happened, in the shape the loan book confirms."""

    kind: Literal["disbursement", "repayment", "credit_refund", "suspense_refund", "reversal", "payout_reversal"]
    loan_id: int
    reference: str  # the rail's own reference: what the provider's statement shows
    payment_ref: bytes  # bytes32 credited once on-chain: keccak256("<provider>:<reference>")
    amount: int  # minor units
    currency: str
    paid_at: int  # unix seconds
    provider: str
    event_id: str
    # The rail reference of the earlier payment this one refunds or takes back (None for a disbursement or a
    # repayment); on-chain that payment is payment_ref(provider, reverses).
    reverses: str | None = None


def payment_ref(provider: str, reference: str) -> bytes:
    """The on-chain reference: scoped by provider so two rails' references never collide."""
    return keccak(f"{provider}:{reference}".encode())


class Headers:
    """Case-insensitive header lookup; a missing header is a malformed webhook naming it."""

    def __init__(self, headers: Mapping[str, str]):
        self._lower = {k.lower(): v for k, v in headers.items()}

    def get(self, name: str) -> str | None:
        return self._lower.get(name.lower()) or None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise MalformedWebhook(f"the {name} header is missing")
        return value


def check_body_size(body: bytes) -> None:
    if len(body) > MAX_BODY:
        raise MalformedWebhook(f"the body is larger than {MAX_BODY} bytes")


def unix_seconds(value: str, header: str) -> int:
    if not _ascii_digits(value):
        raise MalformedWebhook(f"{header} must be unix seconds (ASCII digits)")
    return int(value)


def check_time_window(signed_at: int, now: float, window: int) -> None:
    """Run after the signature verifies, so unsigned probes learn nothing about our clock."""
    skew = abs(now - signed_at)
    if skew > window:
        raise OutsideTimeWindow(f"the webhook is {int(skew)}s away from our clock (window {window}s)")


def check_confirmation(c: Confirmation) -> None:
    """What the loan book and the outbox can take, whatever the provider's layout let through.

    Run before anything is stored: a value the contract cannot encode (a loan id past uint256) would
    otherwise sit in the outbox as an item that can never be sent. The refusal is a `RefusedPayment` when the
    webhook still names money received that we can record (see `is_recordable`), else a `MalformedWebhook`.
    """
    problem = _first_problem(c)
    if problem is None:
        return
    reason, message = problem
    if is_recordable(c):
        raise RefusedPayment(message, reason, c)
    raise MalformedWebhook(message)


def is_recordable(c: Confirmation) -> bool:
    """Money received we can hold and refund: a repayment, a positive amount the store holds, and a reference
    (any 1 to 64 printable characters: the provider's own, the one a refund must name)."""
    return (c.kind == "repayment" and _is_int(c.amount) and 1 <= c.amount <= MAX_STORED
            and isinstance(c.reference, str) and 1 <= len(c.reference) <= MAX_ID and c.reference.isprintable()
            and isinstance(c.payment_ref, bytes) and len(c.payment_ref) == 32)


def _first_problem(c: Confirmation) -> tuple[str, str] | None:
    """(a stable reason, the message) of the first check `c` fails, or None."""
    if c.kind not in KINDS:
        return "UnknownKind", f"kind: {c.kind!r} is not one of {', '.join(KINDS)}"
    if not _is_int(c.loan_id) or not 1 <= c.loan_id <= MAX_LOAN_ID:
        return "LoanIdOutOfRange", f"loan_id: {c.loan_id} is not a loan id (1 to 2**256 - 1)"
    if not _is_int(c.amount) or not 1 <= c.amount <= MAX_AMOUNT:
        return "AmountOutOfRange", f"amount: {c.amount} is not between 1 and {MAX_AMOUNT} minor units"
    if not _is_int(c.paid_at) or not 1 <= c.paid_at <= MAX_PAID_AT:
        return "PaidAtOutOfRange", f"paid_at: {c.paid_at} is not unix seconds the loan book can hold"
    if not isinstance(c.currency, str) or not _CURRENCY.fullmatch(c.currency):
        return "UnknownCurrency", f"currency: {c.currency!r} is not three capital letters (ISO 4217)"
    if not isinstance(c.reference, str) or not _REFERENCE.fullmatch(c.reference):
        return "MalformedReference", f"reference: {c.reference!r} is not 1 to {MAX_ID} letters, digits or _-.:"
    if not isinstance(c.event_id, str) or not 1 <= len(c.event_id) <= MAX_ID:
        return "MalformedEventId", f"event id: must be 1 to {MAX_ID} characters"
    if not isinstance(c.payment_ref, bytes) or len(c.payment_ref) != 32:
        return "MalformedPaymentRef", "payment_ref: not 32 bytes"
    return _reverses_problem(c)


def _reverses_problem(c: Confirmation) -> tuple[str, str] | None:
    """A refund or reversal names the payment it returns (a reference like any other, not its own); others none."""
    if c.kind not in REFERRING_KINDS:
        if c.reverses is not None:
            return "MalformedReverses", f"reverses: a {c.kind} names no earlier payment"
        return None
    if not isinstance(c.reverses, str) or not _REFERENCE.fullmatch(c.reverses):
        return "MalformedReverses", f"reverses: {c.reverses!r} is not 1 to {MAX_ID} letters, digits or _-.:"
    if c.reverses == c.reference:
        return "MalformedReverses", f"reverses: a {c.kind} has its own reference, not the one of the payment it returns"
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# For providers that send amounts as decimal strings: ISO 4217 minor-unit exponents (2 unless listed).
_ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"})


def currency_exponent(currency: str) -> int:
    """Decimal places of the currency's minor unit: 2 for CNY (fen), 0 for JPY."""
    return 0 if currency in _ZERO_DECIMAL_CURRENCIES else 2


def minor_units(amount: str, currency: str, field: str) -> int:
    """An exact decimal string in major units ("412.88" CNY) as minor units (41_288); never via a float.

    Refuses what would need rounding (a third decimal for CNY, any decimal for JPY): money is not rounded
    on the way in.
    """
    if not 0 < len(amount) <= 40 or amount.count(".") > 1 or not _ascii_digits(amount.replace(".", "")):
        # ASCII only: str.isdigit, int() and Decimal() also take "４１２" or "٤١٢", which no rail sends as money.
        raise MalformedWebhook(f"{field}: {amount!r} is not a decimal amount (ASCII digits and one '.')")
    with localcontext() as exact:
        exact.prec = 80  # more digits than any accepted amount has: scaling never rounds
        try:
            scaled = Decimal(amount).scaleb(currency_exponent(currency))
        except InvalidOperation as exc:
            raise MalformedWebhook(f"{field}: {amount!r} is not a decimal amount") from exc
    if scaled != scaled.to_integral_value():
        raise MalformedWebhook(f"{field}: {amount} {currency} has a fraction of a minor unit")
    return int(scaled)


def _ascii_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)

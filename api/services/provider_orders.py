"""What every order to a payment provider shares: payouts, suspense refunds and credit refunds.

Each kind keeps its own table and states, and follows the same three rules: the order is recorded (with an
idempotency key the provider honours) before the provider is called; it is marked `sent` before the call,
so a lost answer leaves it `sent` with no provider reference; and a `sent` order is looked up at the
provider by its key before anything is sent again. These helpers are those steps, with the provider's
failures sorted into what the caller must record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oracle.payments.config import build_provider, provider_settings
from oracle.payments.provider import (
    LookupUnsupported,
    OrderedPayment,
    OrderRefused,
    PaymentProvider,
    ProviderError,
)


class Detached:
    """An order row's fields as a frozen dataclass (the subclass), read once and free of its session."""

    @classmethod
    def of(cls, row):
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


class ProviderMissing(LookupError):
    """The provider an order was recorded with is no longer configured."""


@dataclass(frozen=True)
class Attempt:
    """One call to the provider, sorted: it took the order, refused it (4xx), or did not answer."""

    reference: str | None = None  # the provider's reference: it took the order
    refused: str | None = None  # the order itself is wrong; re-sending will not help
    unanswered: str | None = None  # a timeout, 5xx or dropped connection: it may have taken it


def provider_named(context, name: str) -> PaymentProvider:
    """The configured provider `name`, for ordering (its webhook key is not needed)."""
    entries = provider_settings(context.settings)
    if name not in entries:
        raise ProviderMissing(f"payment provider {name} is not configured")
    return build_provider(name, entries[name], context.settings.home, context.env or context.settings.environ,
                          webhooks=False)


def look_up(provider: PaymentProvider, idempotency_key: str) -> Attempt:
    """What the provider did with the order it was sent under `idempotency_key`.

    An empty Attempt when it never took it, or cannot be asked (re-sending with the same key is then the
    safe way to ask: the provider honours the key).
    """
    try:
        found = provider.find_order(idempotency_key)
    except LookupUnsupported:
        return Attempt()
    except ProviderError as exc:
        return Attempt(unanswered=str(exc)[:500])
    return Attempt(reference=None if found is None else found.rail_reference)


def call(order: Callable[[], OrderedPayment]) -> Attempt:
    """Sends one order (the caller has already marked it `sent`)."""
    try:
        payment = order()
    except OrderRefused as exc:
        return Attempt(refused=str(exc)[:500])
    except ProviderError as exc:
        return Attempt(unanswered=str(exc)[:500])
    return Attempt(reference=payment.rail_reference)

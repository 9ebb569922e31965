"""Incoming payment webhooks: the provider is found, its adapter verifies and normalises.

A provider is named by the endpoint's path (`/v1/webhooks/{provider}`) or, on the stand-in's endpoint
(`/v1/webhooks/payments`), by its `X-Rail-Provider` header. Replays inside the window are not rejected
here: the outbox keys on (provider, event id) and answers a provider's retry with the first result, and
the chain credits a payment reference once, ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from oracle.payments.inbound import (
    DEFAULT_WINDOW,
    MAX_AMOUNT,
    MAX_BODY,
    BadSignature,
    Confirmation,
    Headers,
    MalformedWebhook,
    OutsideTimeWindow,
    UnknownProvider,
    WebhookRejected,
    payment_ref,
)
from oracle.payments.provider import PaymentProvider
from oracle.payments.providers.standin import StandinProvider
from oracle.payments.signatures import HEADER_PROVIDER, Scheme

# What a webhook becomes and how it is refused, importable from here as before the providers were split out.
__all__ = ["DEFAULT_WINDOW", "MAX_AMOUNT", "MAX_BODY", "BadSignature", "Confirmation", "MalformedWebhook",
           "OutsideTimeWindow", "UnknownProvider", "WebhookRejected", "WebhookVerifier", "payment_ref"]


class WebhookVerifier:
    """Dispatches webhooks to the providers' adapters, with one clock and one time window for all.

    `providers` maps a name to its adapter; a bare signature `Scheme` stands for a provider in the rail
    stand-in's layout signing with it.
    """

    def __init__(self, providers: Mapping[str, PaymentProvider | Scheme], *, window: int = DEFAULT_WINDOW,
                 clock: Callable[[], float] = time.time):
        self.providers: dict[str, PaymentProvider] = {
            name: p if isinstance(p, PaymentProvider) else StandinProvider(name, p) for name, p in providers.items()}
        self.window, self.clock = window, clock

    def verify(self, headers: Mapping[str, str], body: bytes) -> Confirmation:
        """A webhook on the stand-in's endpoint: the provider is the one its X-Rail-Provider header names."""
        return self.verify_from(Headers(headers).require(HEADER_PROVIDER), headers, body)

    def verify_from(self, provider: str, headers: Mapping[str, str], body: bytes) -> Confirmation:
        """A webhook for `provider` (named by the path it was posted to)."""
        adapter = self.providers.get(provider)
        if adapter is None:
            raise UnknownProvider(f"no payment provider named {provider!r} is configured")
        return adapter.parse_webhook(headers, body, now=self.clock(), window=self.window)

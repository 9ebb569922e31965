"""Notification senders: where reminders, overdue warnings and default notices go.

A sender gets a `Notice` (no PII: the loan, the pseudonymous borrower address, amounts) and either
returns a short receipt or raises `DeliveryFailed`. Resolving an address to a phone number and an SMS
is the job of whatever receives the webhook (the API owns the PII vault), so the oracle never holds PII.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Protocol

import httpx

log = logging.getLogger("loanledger.notifications")


@dataclass(frozen=True)
class Notice:
    kind: str          # "reminder" | "overdue_warning" | "default_notice"
    loan_id: int
    installment: int   # 1-based; 0 for the whole loan
    borrower: str
    due_at: int        # unix seconds
    amount_due: int    # minor units
    currency: str
    detail: dict

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()


class DeliveryFailed(Exception):
    """The notice did not reach its channel; the monitor records the failure and tries again next round."""


class NotificationSender(Protocol):
    channel: str

    def send(self, notice: Notice) -> str: ...


class LogSender:
    """Development: one structured log line per notice."""

    channel = "log"

    def send(self, notice: Notice) -> str:
        log.info("notice %s", notice.to_json().decode())
        return "logged"


class WebhookSender:
    """POSTs the notice as JSON, signed with HMAC-SHA256 over `timestamp.body` (the rails' scheme)."""

    channel = "webhook"

    def __init__(self, url: str, secret: bytes, timeout: float = 5.0):
        self.url, self.secret, self.timeout = url, secret, timeout

    def send(self, notice: Notice) -> str:
        body = notice.to_json()
        timestamp = str(int(time.time()))
        signature = hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        try:
            response = httpx.post(self.url, content=body, timeout=self.timeout, headers={
                "content-type": "application/json", "x-loanledger-timestamp": timestamp,
                "x-loanledger-signature": signature})
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise DeliveryFailed(f"{self.url} answered {response.status_code}: {response.text[:200]}")
        return f"{response.status_code}"

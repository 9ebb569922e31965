"""Notification senders: where reminders, overdue warnings and default notices go.

A sender gets a `Notice` (no PII: the loan, the pseudonymous borrower address, amounts) and either
returns a short receipt or raises `DeliveryFailed`. The oracle never holds PII nor the vault's keys, so it cannot
text a borrower itself:

- `SmsQueue` (the default of `loanledger oracle run`): the notice reaches the borrower's phone. The monitor records
  it with its facts (the amounts the loan book computed, the due date) as a `NoticeDelivery` in the same transaction
  as the notice itself; the API's notice sender (api/notices/sender.py), which holds the vault, reads the phone and
  the borrower's language, renders the template and sends it through the SMS provider, retrying with back-off. The
  handoff goes through the store both processes share, so a notice recorded is sent once whichever process stops.
- `WebhookSender`: POSTs the notice to a system of the lender's that resolves the address itself.
- `LogSender`: one log line (development).
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


class SmsQueue:
    """The borrower's phone, through the API's notice sender: the monitor records, the API renders and sends.

    `idempotency_key(notice)` names the message to the SMS provider: stable for the notice's unique key (loan,
    kind, installment) on this loan book, so no retry, rerun or second sender texts the borrower twice.
    """

    channel = "sms"

    def __init__(self, book_address: str):
        self.book_address = book_address.lower()

    def idempotency_key(self, notice: Notice) -> str:
        return f"notice-{self.book_address}-{notice.loan_id}-{notice.kind}-{notice.installment}"

    def facts(self, notice: Notice) -> str:
        """What the API's sender renders the text from (no PII): the notice as the monitor saw it."""
        return notice.to_json().decode()

    def send(self, notice: Notice) -> str:
        raise DeliveryFailed("SMS notices are sent by the API's notice sender, not by the oracle")

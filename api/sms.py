"""The SMS provider one-time codes and notices go through (one provider per API process, `sms_provider(settings)`).

- `DevOutbox` (development): appends each message as a JSON line to a file only the service's user can read; a
  tester reads a code off it (`last_code`), never off an API response.
- `HttpSmsProvider`: POSTs the payload documented in docs/operator.md ("Notices") to the provider's URL, with a
  bearer key, a timeout and an idempotency key per message that the provider is asked to honour: a message sent
  again with the same key (a retry after a timeout or a crash) must not reach the phone twice.

`send` answers an `SmsDelivery`: accepted (with the provider's reference) or failed with a reason; it never raises
for the provider's sake, so the caller records what happened.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from ledger.config import Settings
from ledger.identity import InvalidIdentity, normalize_phone


def _canonical(phone: str) -> str:
    """Codes go to the canonical (E.164) number; a tester may name it as typed ("139...")."""
    try:
        return normalize_phone(phone)
    except InvalidIdentity:
        return phone


@dataclass(frozen=True)
class SmsDelivery:
    """What the provider answered: `accepted` (with its reference) or not, and why not. `permanent`: the provider
    refused the message itself (a malformed number, a rejected text): sending it again cannot help."""

    accepted: bool
    reference: str = ""
    reason: str = ""
    permanent: bool = False

    @property
    def status(self) -> str:
        return "accepted" if self.accepted else "failed"


class SmsSender(Protocol):
    name: str

    def send(self, phone: str, text: str, *, idempotency_key: str | None = None) -> SmsDelivery: ...


class DevOutbox:
    """Appends each message as a JSON line {"to", "text", "at"[, "key"]} to a file only the service's user can read.

    A message whose idempotency key the file already holds is not appended again (as a real provider would dedup).
    """

    name = "outbox"
    _lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = Path(path)

    def send(self, phone: str, text: str, *, idempotency_key: str | None = None) -> SmsDelivery:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row = {"to": phone, "text": text, "at": time.time()}
        if idempotency_key is not None:
            row["key"] = idempotency_key
        with self._lock:
            if idempotency_key is not None and any(m.get("key") == idempotency_key for m in self.messages()):
                return SmsDelivery(True, reference=idempotency_key)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        return SmsDelivery(True, reference=idempotency_key or "")

    def messages(self, phone: str | None = None) -> list[dict]:
        if not self.path.exists():
            return []
        rows = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [r for r in rows if phone is None or _canonical(r["to"]) == _canonical(phone)]

    def last_code(self, phone: str, purpose: str) -> str:
        """The newest code sent to `phone` for `purpose` (what a tester reads off the handset)."""
        for message in reversed(self.messages(phone)):
            if f"({purpose})" in message["text"]:
                return message["text"].split("code ")[1].split(" ")[0]
        raise LookupError(f"no {purpose} code was sent to {phone}")


# Answers that mean the message itself is refused: retrying the same message cannot succeed.
_PERMANENT = {400, 422}


class HttpSmsProvider:
    """POST <url> {"to", "text", "sender", "idempotency_key"} with `Authorization: Bearer <key>` and
    `Idempotency-Key: <key>`; a 2xx answer {"id": ...} accepts the message, anything else fails it with a reason."""

    name = "http"

    def __init__(self, url: str, api_key: str = "", *, timeout: float = 5.0, sender_id: str = "LoanLedger",
                 client: httpx.Client | None = None):
        if not url:
            raise ValueError("the HTTP SMS provider needs a URL (sms_url)")
        self.url, self.timeout, self.sender_id = url, timeout, sender_id
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(timeout=timeout)

    def send(self, phone: str, text: str, *, idempotency_key: str | None = None) -> SmsDelivery:
        key = idempotency_key or uuid.uuid4().hex  # a one-time code is its own message: a fresh key each time
        payload = {"to": phone, "text": text, "sender": self.sender_id, "idempotency_key": key}
        try:
            response = self.client.post(self.url, json=payload, timeout=self.timeout,
                                        headers={**self.headers, "idempotency-key": key})
        except httpx.HTTPError as exc:
            return SmsDelivery(False, reason=f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= response.status_code < 300:
            try:
                reference = str(response.json().get("id") or key)
            except ValueError:
                reference = key
            return SmsDelivery(True, reference=reference[:128])
        return SmsDelivery(False, reason=f"HTTP {response.status_code}: {response.text[:300]}",
                           permanent=response.status_code in _PERMANENT)


def sms_provider(settings: Settings) -> SmsSender:
    """The provider the settings name (`sms_provider`): the development outbox or the HTTP provider."""
    if settings.sms_provider == "http":
        key = settings.sms_api_key.get_secret_value() if settings.sms_api_key else ""
        return HttpSmsProvider(settings.sms_url, key, timeout=settings.sms_timeout, sender_id=settings.sms_sender_id)
    return DevOutbox(settings.sms_outbox_path)

"""SMS senders for one-time codes. In development the code is read from the sender's outbox file,
never from an API response; production plugs a provider's client in behind the same interface."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Protocol

from ledger.identity import InvalidIdentity, normalize_phone


def _canonical(phone: str) -> str:
    """Codes go to the canonical (E.164) number; a tester may name it as typed ("139...")."""
    try:
        return normalize_phone(phone)
    except InvalidIdentity:
        return phone


class SmsSender(Protocol):
    def send(self, phone: str, text: str) -> None: ...


class DevOutbox:
    """Appends each message as a JSON line to a file only the service's user can read."""

    _lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = Path(path)

    def send(self, phone: str, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"to": phone, "text": text, "at": time.time()}) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as fh:
                fh.write(line)

    def messages(self, phone: str | None = None) -> list[dict]:
        if not self.path.exists():
            return []
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [r for r in rows if phone is None or _canonical(r["to"]) == _canonical(phone)]

    def last_code(self, phone: str, purpose: str) -> str:
        """The newest code sent to `phone` for `purpose` (what a tester reads off the handset)."""
        for message in reversed(self.messages(phone)):
            if f"({purpose})" in message["text"]:
                return message["text"].split("code ")[1].split(" ")[0]
        raise LookupError(f"no {purpose} code was sent to {phone}")

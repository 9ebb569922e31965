"""The payment-rail stand-in's card verification, as banks offer it to lenders binding a card (`loanledger rail`).

`POST /v1/card-verifications` {card_number, holder_name, id_number, phone} with an `Idempotency-Key` header: the
bank checks the card against its own records (the card exists, is the holder's, and `phone` is the number reserved
with the bank for it) and texts ITS OWN code to that reserved phone. The lender never sees the code: the borrower
reads it off the handset and the lender relays it with `POST /v1/card-verifications/{id}/confirm` {code}. The same
key again answers the first verification (200, `Idempotent-Replayed: true`) and texts nothing more, so a caller
whose answer was lost (a timeout) retries safely; a refusal is answered again as it was.

Refusals name why (`{"detail": {"code", "message"}}`): 422 `card_unknown`, `card_holder_mismatch`,
`card_phone_mismatch` at the start; 404 `verification_unknown`, 422 `wrong_code` (with `attempts_left`),
429 `too_many_attempts`, 410 `code_expired` at the confirmation.

The stand-in's bank knows the sample identities' cards (ledger.samples.sample_card) with the phone each was issued
with; `reserve_phone` is what a bank branch does when the holder changes the number (tests, the demo). The code goes
to the development SMS outbox (the file api.sms.DevOutbox reads) with a sender naming the bank, as the line
{"to", "text", "at", "key", "sender"} whose text reads "... code NNNNNN (card) ...", so `last_code(phone, "card")`
finds it.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response
from pydantic import BaseModel, Field

from ledger.samples import sample_card

BANK = "MockBank (rail stand-in)"
CODE_TTL = 600  # seconds a bank's code is valid
MAX_ATTEMPTS = 3  # wrong codes before the verification is locked (a new one must be started)


def _national(phone: str) -> str:
    """The 11-digit mainland number of '+86...', '0086...' or '1...'."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    return digits[-11:]


def _squeezed(name: str) -> str:
    return "".join(name.split())


class CardRefused(Exception):
    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass
class CardVerification:
    id: str
    card_last4: str
    phone: str  # the reserved phone the code went to (E.164 as given)
    created_at: int
    expires_at: int
    status: str = "code_sent"  # code_sent | verified | locked
    attempts: int = 0
    code: str = field(default="", repr=False)

    def shown(self) -> dict:
        answer = asdict(self)
        answer.pop("code")
        answer["phone"] = f"****{_national(self.phone)[-4:]}"
        answer["attempts_left"] = max(0, MAX_ATTEMPTS - self.attempts)
        return answer


@dataclass
class CardDesk:
    """The bank side of card verification: the card table, the verifications, the texts to reserved phones."""

    outbox: Path | None = None
    clock: Callable[[], float] = time.time
    verifications: dict[str, CardVerification] = field(default_factory=dict)
    reserved: dict[str, str] = field(default_factory=dict)  # card -> a reserved phone changed at the bank

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[tuple, CardVerification | CardRefused]] = {}

    def reserve_phone(self, card_number: str, phone: str) -> None:
        """The holder changed the card's reserved phone at the bank."""
        if sample_card(card_number) is None:
            raise CardRefused(422, "card_unknown", "the bank has no such card")
        self.reserved[card_number] = _national(phone)

    def start(self, key: str, card_number: str, holder_name: str, id_number: str, phone: str,
              ) -> tuple[CardVerification, bool]:
        """(the verification, replayed?); raises CardRefused naming why the bank refused it."""
        facts = (card_number, _squeezed(holder_name), id_number.upper(), _national(phone))
        with self._lock:
            seen = self._keys.get(key)
            if seen is not None:
                if seen[0] != facts:
                    raise CardRefused(422, "idempotency_conflict", f"Idempotency-Key {key!r} was used for another "
                                                                   "card verification")
                if isinstance(seen[1], CardRefused):
                    raise seen[1]
                return seen[1], True
            try:
                made = self._check_and_text(card_number, holder_name, id_number, phone)
            except CardRefused as refused:
                self._keys[key] = (facts, refused)
                raise
            self._keys[key] = (facts, made)
            return made, False

    def _check_and_text(self, card_number: str, holder_name: str, id_number: str, phone: str) -> CardVerification:
        holder = sample_card(card_number)
        if holder is None:
            raise CardRefused(422, "card_unknown", "the bank has no such card")
        if _squeezed(holder["name"]) != _squeezed(holder_name) or holder["id_number"] != id_number.upper():
            raise CardRefused(422, "card_holder_mismatch", "the card is not this person's (name or ID number differ)")
        reserved = self.reserved.get(card_number, holder["phone"])
        if reserved != _national(phone):
            raise CardRefused(422, "card_phone_mismatch", "this phone is not the one reserved with the bank for the "
                                                          "card")
        at = int(self.clock())
        made = CardVerification(id=f"cv_{secrets.token_hex(8)}", card_last4=card_number[-4:], phone=phone,
                                created_at=at, expires_at=at + CODE_TTL, code=f"{secrets.randbelow(10**6):06d}")
        self.verifications[made.id] = made
        self._text(made)
        return made

    def _text(self, made: CardVerification) -> None:
        if self.outbox is None:
            return
        text = (f"【{BANK}】Card binding verification code {made.code} (card) for the card ending "
                f"{made.card_last4}; valid {CODE_TTL // 60} minutes. Never tell it to anyone.")
        row = {"to": made.phone, "text": text, "at": time.time(), "key": f"rail-{made.id}", "sender": BANK}
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.outbox, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    def confirm(self, verification_id: str, code: str) -> CardVerification:
        with self._lock:
            found = self.verifications.get(verification_id)
            if found is None:
                raise CardRefused(404, "verification_unknown", f"no card verification {verification_id}")
            if found.status == "verified":
                return found  # confirmed before: a retried request
            if found.status == "locked":
                raise CardRefused(429, "too_many_attempts", "too many wrong codes: start a new verification")
            if self.clock() > found.expires_at:
                raise CardRefused(410, "code_expired", "the bank's code expired: start a new verification")
            if not secrets.compare_digest(found.code, code):
                found.attempts += 1
                if found.attempts >= MAX_ATTEMPTS:
                    found.status = "locked"
                    raise CardRefused(429, "too_many_attempts", "too many wrong codes: start a new verification")
                raise CardRefused(422, "wrong_code", "the code is not the one the bank sent",
                                  attempts_left=MAX_ATTEMPTS - found.attempts)
            found.status = "verified"
            return found


class CardVerificationIn(BaseModel):
    card_number: str = Field(pattern=r"^[0-9]{12,19}$")
    holder_name: str = Field(min_length=1, max_length=64)
    id_number: str = Field(pattern=r"^[0-9]{17}[0-9Xx]$")
    phone: str = Field(min_length=11, max_length=20, description="the phone the card should be reserved with")


class CardCodeIn(BaseModel):
    code: str = Field(pattern=r"^[0-9]{6}$")


class ReservedPhoneIn(BaseModel):
    phone: str = Field(min_length=11, max_length=20)


def _refused(exc: CardRefused) -> HTTPException:
    return HTTPException(status_code=exc.status, detail={"code": exc.code, "message": exc.message, **exc.extra})


def card_router(desk: CardDesk) -> APIRouter:
    router = APIRouter(tags=["card verification"])

    @router.post("/v1/card-verifications", status_code=201)
    def start(body: CardVerificationIn, response: Response,
              idempotency_key: Annotated[str, Header(min_length=1, max_length=255)]) -> dict:
        """Checks the card with the bank and texts the bank's code to the card's reserved phone."""
        try:
            made, replayed = desk.start(idempotency_key, body.card_number, body.holder_name, body.id_number,
                                        body.phone)
        except CardRefused as exc:
            raise _refused(exc) from None
        if replayed:
            response.status_code, response.headers["Idempotent-Replayed"] = 200, "true"
        return made.shown()

    @router.get("/v1/card-verifications/{verification_id}")
    def show(verification_id: str) -> dict:
        found = desk.verifications.get(verification_id)
        if found is None:
            raise _refused(CardRefused(404, "verification_unknown", f"no card verification {verification_id}"))
        return found.shown()

    @router.post("/v1/card-verifications/{verification_id}/confirm")
    def confirm(verification_id: str, body: CardCodeIn) -> dict:
        """The code the holder read off the reserved phone: verified, or refused by name."""
        try:
            return desk.confirm(verification_id, body.code).shown()
        except CardRefused as exc:
            raise _refused(exc) from None

    @router.put("/v1/test-cards/{card_number}/reserved-phone")
    def reserve(card_number: str, body: ReservedPhoneIn) -> dict:
        """Test/admin: the holder changed the card's reserved phone at a branch."""
        try:
            desk.reserve_phone(card_number, body.phone)
        except CardRefused as exc:
            raise _refused(exc) from None
        return {"card_last4": card_number[-4:], "phone": f"****{_national(body.phone)[-4:]}"}

    return router

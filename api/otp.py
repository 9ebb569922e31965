"""One-time codes: six digits, five minutes, single use, five tries, rate-limited per phone and per wallet.

Only a keyed hash of each code is stored; a new code for the same (wallet, purpose) retires the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time

from sqlalchemy import select, update

from api.errors import ApiError
from api.ratelimit import RateLimiter
from api.sms import SmsSender
from ledger.store.models.api import OtpChallenge

log = logging.getLogger(__name__)

TTL = 300
MAX_ATTEMPTS = 5
PURPOSES = {"phone": "phone number", "card": "bank-card binding", "phone_change": "new phone number"}


class OtpService:
    def __init__(self, sessions, sms: SmsSender, limiter: RateLimiter, secret: bytes, clock=time.time):
        self.sessions, self.sms, self.limiter, self.secret, self.clock = sessions, sms, limiter, secret, clock

    def _hash(self, address: str, purpose: str, code: str) -> str:
        return hmac.new(self.secret, f"otp\0{address}\0{purpose}\0{code}".encode(), hashlib.sha256).hexdigest()

    def send(self, address: str, purpose: str, phone: str) -> int:
        """Sends a fresh code; returns when it expires."""
        phone_key = hashlib.sha256(phone.encode()).hexdigest()
        self.limiter.hit("otp_send_phone", phone_key)
        self.limiter.hit("otp_send_address", address)
        code = f"{secrets.randbelow(10**6):06d}"
        now = int(self.clock())
        with self.sessions.begin() as session:
            session.execute(update(OtpChallenge).where(OtpChallenge.address == address, OtpChallenge.purpose == purpose,
                                                       OtpChallenge.used_at.is_(None)).values(used_at=-1))
            session.add(OtpChallenge(address=address, purpose=purpose, code_hash=self._hash(address, purpose, code),
                                     created_at=now, expires_at=now + TTL, attempts=0, used_at=None))
        sent = self.sms.send(phone, f"LoanLedger code {code} ({purpose}): confirms your {PURPOSES[purpose]}. "
                                    f"Valid 5 minutes. Never share it.")
        if not sent.accepted:  # the provider failed (api/sms.py): say so rather than wait for a code never sent
            log.warning("%s code to the SMS provider failed: %s", purpose, sent.reason)
            raise ApiError(503, "sms_unavailable", "the code could not be sent; ask for a new one shortly")
        return now + TTL

    def verify(self, address: str, purpose: str, code: str) -> None:
        """Spends the current code for (address, purpose) or raises a 4xx ApiError saying why not."""
        self.limiter.hit("otp_verify", address)
        now = int(self.clock())
        with self.sessions.begin() as session:
            challenge = session.scalar(select(OtpChallenge).where(
                OtpChallenge.address == address, OtpChallenge.purpose == purpose, OtpChallenge.used_at.is_(None))
                .order_by(OtpChallenge.id.desc()).with_for_update())
            if challenge is None:
                raise ApiError(422, "otp_not_requested", f"no {purpose} code is pending: ask for a new one")
            if challenge.expires_at < now:
                raise ApiError(422, "otp_expired", f"the {purpose} code expired: ask for a new one")
            if challenge.attempts >= MAX_ATTEMPTS:
                raise ApiError(422, "otp_locked", f"too many wrong {purpose} codes: ask for a new one")
            if not hmac.compare_digest(challenge.code_hash, self._hash(address, purpose, code)):
                challenge.attempts += 1
                left = MAX_ATTEMPTS - challenge.attempts
                wrong = ApiError(422, "otp_wrong", f"wrong {purpose} code; {left} tries left")
            else:
                challenge.used_at, wrong = now, None
        if wrong is not None:  # raised after the commit, so the attempt is counted
            raise wrong

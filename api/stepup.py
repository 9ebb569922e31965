"""Step-up codes: a fresh one-time code, texted to the borrower's verified phone (the vault's), that authorises ONE
action with ONE set of parameters (applying for ¥1,000 in 3 installments of product 1, changing the phone to a given
number, asking for a given reschedule), once, within five minutes.

The code is bound to sha256(action, canonical parameters) and the wallet: the protected route recomputes the binding
from what it is about to execute, so a code for applying ¥1,000 does not authorise applying ¥10,000. Only a keyed
hash of the code is stored; a new code retires the previous one; five wrong codes retire it too. Sending is
rate-limited per wallet and per phone (429 with Retry-After). Refusals change nothing but the wrong-code count:

- 428 `step_up_required`: no code sent with the request (header `X-Step-Up-Code`);
- 422 `step_up_wrong`: no code sent to this wallet matches;
- 422 `step_up_expired`: the code is older than five minutes;
- 422 `step_up_used`: the code was spent (or retired by a newer code or by too many wrong ones);
- 422 `step_up_other_action`: the code was sent for another action or other parameters.

(403 stays the roles' answer: a borrower refused for want of a code is past the role gate.)

A request retried with the same Idempotency-Key and the same code is the same request (its stored answer is
replayed by api/idempotency.py), so the code that request spent lets its retry through.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from limits import parse
from sqlalchemy import select, update

from api.errors import ApiError, ErrorResponse
from api.ratelimit import RateLimiter
from api.sms import SmsSender
from ledger.identity import InvalidIdentity, normalize_bank_card, normalize_phone
from ledger.store.models.api import StepUpChallenge

log = logging.getLogger(__name__)

TTL = 300
MAX_ATTEMPTS = 5
HEADER = "X-Step-Up-Code"
PURPOSE = "step_up"  # what the SMS names, so a tester reads it off the outbox: DevOutbox.last_code(phone, "step_up")
# Per 10 minutes: a borrower applying, then changing their mind, asks a few; a script asking dozens is refused.
SEND_PER_ADDRESS = "10/10 minutes"
SEND_PER_PHONE = "10/10 minutes"
VERIFY_PER_ADDRESS = "20/10 minutes"


@dataclass(frozen=True)
class Action:
    params: tuple[str, ...]   # the parameters the code is bound to, exactly these
    says: str                 # what the SMS tells the borrower the code authorises


# Every action a step-up code can authorise.
ACTIONS = {
    "apply": Action(("product_id", "principal", "installments"), "apply for {principal} in {installments} "
                                                                  "installments (product {product_id})"),
    "phone_change": Action(("phone",), "change your phone number to {phone}"),
    "card_change": Action(("bank_card",), "change your bank card"),
    "debit_mandate": Action(("loan_id",), "set up automatic debit for loan {loan_id}"),
    "reschedule_request": Action(("loan_id", "installments"), "ask to reschedule loan {loan_id}"),
    "reschedule_accept": Action(("loan_id",), "accept the reschedule of loan {loan_id}"),
}


def canonical(action: str, params: dict) -> dict[str, str]:
    """The parameters as bound: exactly the action's names, each value a string (1000 and "1000" are the same
    request), phone numbers in E.164, card numbers as ASCII digits. 422 `unknown_step_up_action` / `invalid_step_up_params` otherwise."""
    if action not in ACTIONS:
        raise ApiError(422, "unknown_step_up_action", f"no step-up action {action!r}; one of {', '.join(ACTIONS)}")
    names = ACTIONS[action].params
    if set(params) != set(names):
        raise ApiError(422, "invalid_step_up_params", f"{action} is bound to exactly: {', '.join(names)}")
    values = {name: str(params[name]).strip() for name in names}
    for name, normalize in (("phone", normalize_phone), ("bank_card", normalize_bank_card)):
        if name in values:
            try:
                values[name] = normalize(values[name])
            except InvalidIdentity as exc:
                raise ApiError(422, "invalid_step_up_params", f"{name}: {exc}") from exc
    return values


def binding(action: str, params: dict) -> str:
    """sha256 of the action and its canonical parameters."""
    text = json.dumps({"action": action, "params": canonical(action, params)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def protected_actions(setting: str) -> frozenset[str]:
    """The actions the `step_up_actions` setting names (unknown names refused: a typo must not unprotect one)."""
    names = frozenset(name.strip() for name in setting.split(",") if name.strip())
    unknown = names - set(ACTIONS)
    if unknown:
        raise ValueError(f"step_up_actions names unknown actions: {', '.join(sorted(unknown))}")
    return names


class StepUpService:
    def __init__(self, sessions, sms: SmsSender, limiter: RateLimiter, secret: bytes, protected: frozenset[str],
                 clock=time.time):
        self.sessions, self.sms, self.limiter, self.secret, self.clock = sessions, sms, limiter, secret, clock
        self.protected = protected
        for action in sorted(set(ACTIONS) - protected):
            log.warning("step-up codes are OFF for %s (setting step_up_actions): it runs without a second factor",
                        action)

    def _hash(self, address: str, code: str) -> str:
        return hmac.new(self.secret, f"step-up\0{address.lower()}\0{code}".encode(), hashlib.sha256).hexdigest()

    def send(self, address: str, phone: str, action: str, params: dict) -> int:
        """Texts a fresh code for `action` with `params` to `phone`; returns when it expires."""
        bound, shown = binding(action, params), canonical(action, params)
        self.limiter.hit("step_up_send_address", address.lower(), parse(SEND_PER_ADDRESS), what="step-up codes")
        self.limiter.hit("step_up_send_phone", hashlib.sha256(phone.encode()).hexdigest(), parse(SEND_PER_PHONE),
                         what="step-up codes")
        code = f"{secrets.randbelow(10**6):06d}"
        now = int(self.clock())
        with self.sessions.begin() as session:
            session.execute(update(StepUpChallenge).where(StepUpChallenge.address == address.lower(),
                                                          StepUpChallenge.used_at.is_(None)).values(used_at=-1))
            session.add(StepUpChallenge(address=address.lower(), action=action, binding=bound,
                                        code_hash=self._hash(address, code), created_at=now, expires_at=now + TTL,
                                        attempts=0, used_at=None, used_for=None))
        says = ACTIONS[action].says.format(**shown)
        sent = self.sms.send(phone, f"LoanLedger code {code} ({PURPOSE}): authorises you to {says}. "
                                    f"Valid 5 minutes. Never share it.")
        if not sent.accepted:
            log.warning("step-up code to the SMS provider failed: %s", sent.reason)
            raise ApiError(503, "sms_unavailable", "the code could not be sent; ask for a new one shortly")
        return now + TTL

    def redeem(self, address: str, action: str, params: dict, code: str | None,
                idempotency_key: str | None = None) -> None:
        """Spends `code` for exactly `action` with `params`, or raises (428 or 422) naming why not. A protected route calls
        it with what it is about to execute, before it acts (before its idempotency claim: a refusal is not stored
        as the key's answer, so the same key may be sent again with a code)."""
        if action not in self.protected:
            return
        if not code:
            raise ApiError(428, "step_up_required", f"{action} needs a step-up code: POST /v1/step-up "
                                                    f"{{action, params}}, then send it as the {HEADER} header")
        bound = binding(action, params)
        self.limiter.hit("step_up_verify", address.lower(), parse(VERIFY_PER_ADDRESS), what="step-up code tries")
        now, address = int(self.clock()), address.lower()
        refusal = None
        with self.sessions.begin() as session:
            rows = session.scalars(select(StepUpChallenge).where(StepUpChallenge.address == address)
                                   .order_by(StepUpChallenge.id.desc()).limit(20).with_for_update()).all()
            digest = self._hash(address, code)
            match = next((r for r in rows if hmac.compare_digest(r.code_hash, digest)), None)
            if match is None:
                pending = next((r for r in rows if r.used_at is None), None)
                if pending is not None:  # a guess against the live code: counted, and five retire it
                    pending.attempts += 1
                    if pending.attempts >= MAX_ATTEMPTS:
                        pending.used_at = -1
                refusal = ApiError(422, "step_up_wrong", "wrong step-up code")
            elif match.used_at is not None:
                replay = match.used_at > 0 and idempotency_key is not None and match.used_for == idempotency_key \
                    and match.binding == bound
                if not replay:
                    refusal = ApiError(422, "step_up_used", "this step-up code was already used or replaced by a "
                                                            "newer one: ask for a new one")
            elif match.binding != bound:
                refusal = ApiError(422, "step_up_other_action", f"this step-up code was sent for {match.action} "
                                                                f"with other parameters, not for this {action}"
                                   if match.action == action else
                                   f"this step-up code was sent for {match.action}, not for {action}")
            elif match.expires_at < now:
                refusal = ApiError(422, "step_up_expired", "the step-up code expired: ask for a new one")
            else:
                match.used_at, match.used_for = now, idempotency_key
        if refusal is not None:  # raised after the commit, so a wrong guess is counted
            raise refusal


# What a protected route adds to its documented responses.
STEP_UP_ERRORS = {428: {"model": ErrorResponse, "description": (
    "step_up_required: send a step-up code for this action and these parameters (POST /v1/step-up) in the "
    "X-Step-Up-Code header. A code that does not fit is 422 step_up_wrong, step_up_expired, step_up_used or "
    "step_up_other_action. Nothing was done")}}


def get_step_up(request: Request) -> StepUpService:
    return request.app.state.step_up


StepUpDep = Annotated[StepUpService, Depends(get_step_up)]
# The code rides in a header, not in the body: the body stays the signed request it was (and the idempotency
# key's body hash the same for a retry with a new code).
StepUpCode = Annotated[str | None, Header(alias=HEADER, description="the step-up code for this action and these "
                                                                    "parameters (POST /v1/step-up)")]

"""The API's client of the payment rail's card verification (the stand-in: oracle.payments.card_verifications).

The bank, not LoanLedger, texts the card-binding code to the card's reserved phone; LoanLedger starts the
verification when a KYC application is submitted and relays the borrower's code at verify.

A start is sent with an idempotency key derived from the sealed pending application (stored before calling out),
so it is the same for every retry of that application: a timeout is not "it did not happen", and the same key
again answers the verification the rail made (no second one, no second text). The verification's id is therefore
never lost: asking again with the key answers it. A new submission seals a new application: a new key, a new code.

Refusals are ApiErrors by name: 422 `card_not_verified` (the bank refused the card; the message names the bank's
reason: `card_unknown`, `card_holder_mismatch`, `card_phone_mismatch`); a wrong, locked or expired card code is
refused with the one-time codes' names (422 `otp_wrong`, `otp_locked`, `otp_expired`, the message naming the card);
the rail away or failing answers 503 `rail_unavailable` with Retry-After, and nothing is changed.

A registered borrower changes their card the same way (`start_change`, `confirm_change`; the routes are
`POST /v1/kyc/card` and `POST /v1/kyc/card/verify`): the new card is held sealed in `card_changes` while the bank
checks that it is the same person's (name and ID number as verified) with the same reserved phone as the borrower's
verified one, and texts its code there; the code confirmed, the vault's record has the new card (the identity
commitment covers the name and ID number only: the chain needs no update). Refused by name, changing nothing: 409
`not_verified`, `card_unchanged`, `card_change_mandate_active` (an automatic-debit mandate in force names the old
card: the borrower revokes it first, see `refuse_while_mandated`), `no_pending_card_change`; the bank's refusals
and code names as above.

Tests give a context its own client (`context.card_rail = CardRail(http=...)`, e.g. on the stand-in's ASGI app);
otherwise one is made on first use for `settings.rail_url`.
"""

from __future__ import annotations

import hashlib
import time

import httpx
from sqlalchemy import select

from api.errors import ApiError
from ledger.identity import InvalidIdentity, KycRecord, normalize_bank_card
from ledger.store.models.card_changes import CardChange
from ledger.store.models.mandates import DebitMandate
from ledger.vault import RecordNotFound

RETRY_AFTER = "5"
CHANGE_TTL = 1800  # seconds a started card change waits for the bank's code (the bank's own code lives 10 minutes)
START_ATTEMPTS = 3  # a start cut off (timeout, connection reset) is sent again with the same key this often


def _unavailable(detail: str) -> ApiError:
    return ApiError(503, "rail_unavailable", f"the bank could not be reached to verify the card ({detail}); "
                                             "nothing changed: try again shortly", headers={"Retry-After": RETRY_AFTER})


def idempotency_key(address: str, sealed: bytes) -> str:
    """The start's key: one per pending application (its sealed bytes are stored before the rail is called)."""
    return "kyc-card-" + hashlib.sha256(address.lower().encode() + b"|" + sealed).hexdigest()[:40]


class CardRail:
    def __init__(self, url: str | None = None, *, http: httpx.Client | None = None, timeout: float = 5.0):
        self.url = url
        self.http = http or httpx.Client(timeout=timeout)  # a client given (tests: the ASGI app) has its own

    def _post(self, base: str, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
        return self.http.post(f"{(self.url or base).rstrip('/')}{path}", json=body, headers=headers or {})

    def start(self, base: str, key: str, record: KycRecord) -> str:
        """The verification id; the bank texts its code to the card's reserved phone (once per key)."""
        body = {"card_number": record.bank_card, "holder_name": record.name, "id_number": record.id_number,
                "phone": record.phone}
        last = ""
        for _ in range(START_ATTEMPTS):
            try:
                response = self._post(base, "/v1/card-verifications", body, {"idempotency-key": key})
            except httpx.HTTPError as exc:  # maybe taken, maybe not: the same key again finds out
                last = type(exc).__name__
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code in (200, 201):
                return response.json()["id"]
            detail = _detail(response)
            raise ApiError(422, "card_not_verified", f"the bank refused the card: {detail.get('message', '')} "
                                                     f"({detail.get('code', response.status_code)})")
        raise _unavailable(last)

    def confirm(self, base: str, verification_id: str, code: str) -> None:
        """Returns when the bank confirms the code; raises the refusal by name otherwise."""
        try:
            response = self._post(base, f"/v1/card-verifications/{verification_id}/confirm", {"code": code})
        except httpx.HTTPError as exc:
            raise _unavailable(type(exc).__name__) from None
        if response.status_code == 200 and response.json().get("status") == "verified":
            return
        if response.status_code >= 500:
            raise _unavailable(f"HTTP {response.status_code}")
        detail = _detail(response)
        code_name = detail.get("code")
        if code_name == "wrong_code":
            left = detail.get("attempts_left")
            raise ApiError(422, "otp_wrong", f"wrong card code (the bank's); {left} tries left")
        if code_name == "too_many_attempts":
            raise ApiError(422, "otp_locked", "too many wrong card codes: submit the application again for a new "
                                              "code from the bank")
        if code_name == "code_expired":
            raise ApiError(422, "otp_expired", "the bank's card code expired: submit the application again")
        raise ApiError(422, "card_not_verified",
                       f"the bank refused the card code ({code_name or response.status_code})")


def _detail(response: httpx.Response) -> dict:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return {}
    return detail if isinstance(detail, dict) else {"message": str(detail)}


def card_rail(context) -> CardRail:
    """The context's client of the rail's card verification (made on first use)."""
    found = getattr(context, "card_rail", None)
    if found is None:
        found = context.card_rail = CardRail()
    return found


# ---------------------------------------------------------------------------------------------- card change


def new_card(bank_card: str) -> str:
    """The card number as stored and as a step-up code is bound to it (ASCII digits, Luhn-checked); 422 otherwise."""
    try:
        return normalize_bank_card(bank_card)
    except InvalidIdentity as exc:
        raise ApiError(422, "invalid_bank_card", str(exc)) from None


def refuse_while_mandated(context, address: str) -> None:
    """409 `card_change_mandate_active` while an automatic-debit mandate is in force.

    A mandate is the borrower's signature over the card it names (its last four digits): the API cannot sign a new
    one for them, and revoking theirs behind their back would stop debits they count on for their due dates. So
    the change is refused, naming the loans, until the borrower revokes the mandate (and signs a new one for the
    new card afterwards): no debit ever goes to a card the borrower no longer uses, and none stops unannounced."""
    now = context.chain_time()
    with context.sessions() as session:
        loans = sorted({row.loan_id for row in session.scalars(
            select(DebitMandate).where(DebitMandate.borrower == address.lower(), DebitMandate.revoked_at.is_(None),
                                       DebitMandate.valid_until >= now))})
    if loans:
        raise ApiError(409, "card_change_mandate_active",
                       f"automatic debit is set up on the card bound now for loan(s) {', '.join(map(str, loans))}: "
                       "revoke the mandate first (DELETE /v1/loans/{loan_id}/debit-mandate), then change the card "
                       "and set up automatic debit again on the new one")


def changed_record(context, address: str, bank_card: str) -> KycRecord:
    """The borrower's record with the new card, or the refusal (before any step-up code is spent on it)."""
    try:
        current = context.vault.get(address)
    except RecordNotFound:
        raise ApiError(409, "not_verified", "verify your identity first: POST /v1/kyc") from None
    card = new_card(bank_card)
    if card == current.bank_card:
        raise ApiError(409, "card_unchanged", "this card is the one bound now")
    refuse_while_mandated(context, address)
    return KycRecord(current.name, current.id_number, current.phone, card)


def start_change(context, address: str, changed: KycRecord) -> None:
    """Holds `changed` (changed_record's) sealed and has the bank text its code to the card's reserved phone. A
    refusal leaves any earlier pending change as it was; the rail away keeps this one, and confirming it asks the
    rail again with the same key."""
    previous = _pending_change(context, address)
    at, sealed = int(time.time()), context.vault.seal_pending(address, changed)
    with context.sessions.begin() as session:
        session.merge(CardChange(address=address, sealed=sealed, created_at=at, expires_at=at + CHANGE_TTL))
    try:  # the bank checks the card is this person's and texts its own code to the card's reserved phone
        card_rail(context).start(context.settings.rail_url, idempotency_key(address, sealed), changed)
    except ApiError as exc:
        if exc.status != 503:
            _put_back(context, address, previous)
        raise


def confirm_change(context, address: str, code: str) -> KycRecord:
    """The bank confirms its code: the vault's record has the new card. Returns it."""
    pending = _pending_change(context, address)
    if pending is None or pending["expires_at"] < int(time.time()):
        raise ApiError(409, "no_pending_card_change", "no card change waits for a code: POST /v1/kyc/card first")
    changed = context.vault.open_pending(address, pending["sealed"])
    refuse_while_mandated(context, address)  # one signed since the change started
    rail, base = card_rail(context), context.settings.rail_url
    # The same key as at the start: the rail answers the verification it made then (no second text).
    rail.confirm(base, rail.start(base, idempotency_key(address, pending["sealed"]), changed), code)
    # The same person (the same ID number, the bank checked the holder): the vault keeps the salt and the
    # commitment; only the sealed card changes.
    context.vault.renew(address, changed)
    _put_back(context, address, None)
    return changed


def _pending_change(context, address: str) -> dict | None:
    with context.sessions() as session:
        row = session.get(CardChange, address)
        return None if row is None else {c.key: getattr(row, c.key) for c in CardChange.__table__.columns}


def _put_back(context, address: str, previous: dict | None) -> None:
    with context.sessions.begin() as session:
        row = session.get(CardChange, address)
        if row is not None:
            session.delete(row)
        if previous is not None:
            session.flush()
            session.add(CardChange(**previous))

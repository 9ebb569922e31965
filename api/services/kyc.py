"""Real-name verification as a state machine (the statuses and their ways out: ledger.kyc_status): submit a
record, confirm the phone with a one-time code and the card binding with the code the bank texted to the card's
reserved phone (the payment rail's card verification: api.services.card_binding), get registered on-chain by the
oracle; renew before or after the KYC expires; confirm a changed phone number with a code to the new number.

The API sends no registration itself (it holds no key with a role): the verified record and its registration
intent are stored in one transaction, and the oracle's registration worker registers the borrower (or, for a
renewal, updates it: updateBorrower with the new expiry) with the oracle's key. Until the indexer has seen it the
status says `registering`; a node outage only delays it (the intent stays, the worker retries).

Every step answers what `GET /v1/kyc` then shows (`standing`), and every step can be repeated: a verify that
already went through answers the status again, one cut off before the record was stored completes it.

Nothing personal leaves in clear: the pending application is sealed by the vault, the verified record
goes into the vault, and only the identity commitment goes on-chain. Callers show the record masked.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete

from api.errors import ApiError
from api.otp import OtpService
from api.services import recovery as recovery_service
from api.services.borrowers import (
    KYC_VALIDITY,
    ledger_borrower,
    now,
    registration,
    registration_intent,
)
from api.services.card_binding import card_rail, idempotency_key
from ledger.book import DAY
from ledger.encoding import to_0x_hex
from ledger.identity import KycRecord, normalize_phone
from ledger.kyc_status import (
    APPLICATION_STATUSES,
    KycStatus,
    NextStep,
    next_steps,
)
from ledger.store.models.api import KycApplication
from ledger.store.models.registrations import (
    DONE,
    HELD,
    PENDING,
    REGISTER,
    SET_ASIDE,
    UPDATE,
)
from ledger.vault import DuplicateIdentity, RecordNotFound

APPLICATION_TTL = 1800
INITIAL, RENEWAL, PHONE_CHANGE = "initial", "renewal", "phone_change"  # KycApplication.purpose
RECOVERY = "recovery"  # a new wallet proving a verified identity again (api.services.recovery)
WITH_CODES = (INITIAL, RENEWAL, RECOVERY)  # the purposes whose two codes `confirm` checks


@dataclass(frozen=True)
class Standing:
    """Where a wallet's verification stands (a ledger.kyc_status.KycStatus) and what its owner can do next."""

    status: KycStatus
    record: KycRecord | None = None
    commitment: str | None = None  # verified: 0x + the commitment the record opens to
    codes_expire_at: int | None = None  # codes awaited (an application, a phone change)
    kyc_expires_at: int | None = None  # registered: the registry's kycExpiresAt (unix seconds)
    renewal: bool = False  # the application is a renewal of a verified record
    renewal_opens_at: int | None = None  # registered: from when a renewal is taken
    next: tuple[NextStep, ...] = ()
    tx_hash: str | None = None  # the registration, when this call registered (the API no longer does: None)


@dataclass(frozen=True)
class _Verified:
    status: KycStatus
    kyc_expires_at: int | None
    renewal_opens_at: int | None
    renewal_open: bool
    operator_registers: bool


def standing(context, address: str, *, on_registry: bool = False) -> Standing:
    """The status `GET /v1/kyc` answers. `on_registry`: the registry holds `address` (read from the chain, which may
    be ahead of the indexer) although the indexer has not shown it yet."""
    with context.sessions() as session:
        pending = session.get(KycApplication, address)
    if pending is not None and pending.expires_at < time.time():
        pending = None  # its codes lapsed: as if never submitted
    try:
        opening = context.vault.opening(address)
    except RecordNotFound:
        opening = None
    if pending is not None and pending.purpose in WITH_CODES:
        status = APPLICATION_STATUSES[int(pending.phone_verified) + int(pending.card_verified)]
        on_chain = ledger_borrower(context, address)
        return Standing(status, context.vault.open_pending(address, pending.sealed),
                        codes_expire_at=pending.expires_at, renewal=pending.purpose == RENEWAL,
                        kyc_expires_at=None if on_chain is None else on_chain.kyc_expires_at,
                        next=next_steps(status))
    if opening is None:
        return Standing(KycStatus.NONE, next=next_steps(KycStatus.NONE))
    changing = pending is not None and pending.purpose == PHONE_CHANGE
    verified = _verified(context, address, to_0x_hex(opening.commitment), phone_change_pending=changing,
                         on_registry=on_registry)
    shown = context.vault.open_pending(address, pending.sealed) if changing else opening.record
    return Standing(verified.status, shown, to_0x_hex(opening.commitment),
                    codes_expire_at=pending.expires_at if changing else None,
                    kyc_expires_at=verified.kyc_expires_at, renewal_opens_at=verified.renewal_opens_at,
                    next=next_steps(verified.status, renewal_open=verified.renewal_open,
                                    phone_change_pending=changing, operator_registers=verified.operator_registers))


def _verified(context, address: str, commitment: str, *, phone_change_pending: bool, on_registry: bool) -> _Verified:
    """The status of a wallet whose record is in the vault, from the indexer's view of the registry, the oracle's
    intent and the chain's clock. In order: revoked; registering while a registration or renewal is on its way;
    re-verification needed while a new phone awaits its code, when the registry refused the renewal, or when it
    holds another commitment than the vault's; then expired, expiring or registered by kycExpiresAt."""
    on_chain, intent = ledger_borrower(context, address), registration(context, address)
    settings = context.settings
    if intent is not None and intent.status == HELD:  # a wallet recovery an operator has still to confirm
        return _Verified(KycStatus.RECOVERY_PENDING, None, None, False, False)
    if on_chain is None:
        if on_registry:  # registered, and the indexer is about to show it
            expiry = None if intent is None else intent.kyc_expires_at
            return _Verified(KycStatus.REGISTERED, expiry, None, False, False)
        if intent is not None and intent.status == SET_ASIDE:
            return _Verified(KycStatus.REVERIFICATION_NEEDED, None, None, True, False)
        return _Verified(KycStatus.REGISTERING, None, None, False, intent is None)
    expiry = on_chain.kyc_expires_at
    opens = expiry - settings.kyc_renewal_days * DAY
    at = now(context)

    def shown(status: KycStatus, renewal_open: bool = False) -> _Verified:
        return _Verified(status, expiry, opens, renewal_open, False)
    if on_chain.revoked:
        return shown(KycStatus.REVOKED)
    if intent is not None and (intent.status == PENDING or (
            intent.status == DONE and intent.kind == UPDATE and intent.kyc_expires_at > expiry)):
        return shown(KycStatus.REGISTERING)  # sent or to be sent; the indexer shows it next
    if phone_change_pending:
        return shown(KycStatus.REVERIFICATION_NEEDED, at >= opens)
    if (intent is not None and intent.status == SET_ASIDE) or (on_chain.identity_commitment or "").lower() != \
            commitment.lower():
        return shown(KycStatus.REVERIFICATION_NEEDED, True)
    if at >= expiry:
        return shown(KycStatus.EXPIRED, True)
    if expiry - at <= settings.kyc_expiring_days * DAY:
        return shown(KycStatus.EXPIRING, at >= opens)
    return shown(KycStatus.REGISTERED, at >= opens)


def submit(context, otp: OtpService, address: str, record: KycRecord, request_id: str, *,
           recovery: bool = False) -> Standing:
    """Seals the application, asks the rail to verify the card (the bank texts its code to the card's reserved
    phone: api.services.card_binding) and texts the phone code. The bank's refusal (422 `card_not_verified`) leaves
    the pending application as it was; the rail away (503 `rail_unavailable`, after retries with the same key)
    leaves this one pending and no code sent: submitting again goes on.

    A verified wallet may submit again to renew: once the renewal window opens (`kyc_renewal_days` before
    kycExpiresAt), after it expired, or when re-verification is needed; its record must be the same person's (the
    same ID number). 409 naming why otherwise. `recovery`: a new wallet claims a verified identity whose wallet was
    lost (api.services.recovery says whether it may)."""
    purpose = INITIAL
    if recovery:
        recovery_service.refuse_unless_recoverable(context, address, record)
        purpose = RECOVERY
    elif context.vault.has_record(address):
        current = standing(context, address)
        _refuse_renewal(context, address, record, current)
        purpose = RENEWAL
        _refuse_taken(context, address, record, fields=("phone",))
    else:
        _refuse_taken(context, address, record)
    # The bank's text counts against the phone's budget of codes as LoanLedger's own do (no texting a phone in bulk).
    otp.limiter.hit("otp_send_phone", hashlib.sha256(record.phone.encode()).hexdigest())
    previous = _pending_row(context, address)
    sealed = _seal(context, address, record, purpose, card_verified=False)
    try:  # the bank checks the card and texts its own code to the card's reserved phone
        card_rail(context).start(context.settings.rail_url, idempotency_key(address, sealed), record)
    except ApiError as exc:
        if exc.status != 503:  # refused: the application is as it was (the rail away: it stays, to resume)
            _restore(context, address, previous)
        raise
    otp.send(address, "phone", record.phone)
    context.action_log.append(address, {RENEWAL: "kyc.renew", RECOVERY: "kyc.recovery"}.get(purpose, "kyc.submit"),
                              request_id, {})
    return standing(context, address)


def _refuse_renewal(context, address: str, record: KycRecord, current: Standing) -> None:
    if current.status is KycStatus.REVOKED:
        raise ApiError(409, "borrower_revoked", "this borrower was revoked by an operator: contact support")
    if current.status is KycStatus.REGISTERING:
        raise ApiError(409, "already_verified", "this wallet is verified and its registration is on its way: "
                                                "see GET /v1/kyc")
    renewable = current.renewal or any(step.action == "renew" for step in current.next)
    if not renewable:
        opens = current.renewal_opens_at
        when = "" if opens is None else f" on {_iso(opens)}"
        raise ApiError(409, "renewal_not_open", f"this wallet is verified until {_iso(current.kyc_expires_at)}; "
                                                f"renewal opens{when}; to change the phone use POST /v1/kyc/phone")
    if _owner_differs(context, address, record):
        raise ApiError(409, "renewal_other_person", "this ID number is not the one this wallet was verified with: "
                                                    "a renewal is the same person's")


def _owner_differs(context, address: str, record: KycRecord) -> bool:
    owner = context.vault.find_by_id_number(record.id_number)
    return owner is None or owner.lower() != address.lower()


def confirm(context, otp: OtpService, address: str, phone_code: str, card_code: str, request_id: str) -> Standing:
    """Checks the phone code, has the rail confirm the bank's card code (a refusal by name, or the rail away, marks
    nothing), moves the record into the vault with its registration (or renewal) intent. Repeatable: with nothing
    left to confirm it answers the status; cut off after the codes, it completes without them."""
    with context.sessions() as session:
        pending = session.get(KycApplication, address)
    if pending is None or pending.purpose not in WITH_CODES:
        if context.vault.has_record(address):
            return standing(context, address)  # already went through (a repeated or retried request)
        raise ApiError(409, "no_pending_kyc", "nothing to verify: submit POST /v1/kyc first")
    if pending.expires_at < time.time():
        raise ApiError(422, "kyc_expired", "the application expired: submit it again")
    if not pending.phone_verified:
        otp.verify(address, "phone", phone_code)
        _mark(context, address, phone_verified=True)
    record = context.vault.open_pending(address, pending.sealed)
    if not pending.card_verified:
        # The same key as at submission: the rail answers the verification it made then (or makes it now, if the
        # rail was away then); the bank confirms the code it texted to the card's reserved phone.
        rail, base = card_rail(context), context.settings.rail_url
        rail.confirm(base, rail.start(base, idempotency_key(address, pending.sealed), record), card_code)
        _mark(context, address, card_verified=True)
    if pending.purpose == RECOVERY:
        recovery_service.store(context, address, record, request_id)
    elif pending.purpose == RENEWAL:
        _store_renewal(context, address, record, request_id)
    else:
        _store_initial(context, address, record, request_id)
    _forget_application(context, address)
    commitment = to_0x_hex(context.vault.commitment(address))
    context.action_log.append(address, "kyc.renewed" if pending.purpose == RENEWAL else "kyc.verify", request_id,
                              {"commitment": commitment,
                               "registration": "oracle" if context.settings.auto_register else None})
    return standing(context, address)


def _store_initial(context, address: str, record: KycRecord, request_id: str) -> None:
    # With automatic registration the intent is stored with the record, in its transaction: both or neither.
    intent = registration_intent(context, address, request_id) if context.settings.auto_register else None
    try:
        context.vault.put(address, record, also=intent)
    except DuplicateIdentity as exc:
        if exc.field == "borrower":
            return  # stored by this application before (a retry after a cut-off): only its cleanup was left
        raise ApiError(409, f"duplicate_{exc.field}", str(exc)) from None


def _store_renewal(context, address: str, record: KycRecord, request_id: str) -> None:
    """The renewed record replaces the vault's (the same person: same ID number; the salt kept) with an intent for
    the oracle: updateBorrower with a new expiry (and the commitment, if the name changed) for a registered
    borrower, registerBorrower for one the registry never took."""
    kind = REGISTER if ledger_borrower(context, address) is None else UPDATE
    intent = (registration_intent(context, address, request_id, now(context) + KYC_VALIDITY, kind=kind)
              if context.settings.auto_register else None)
    try:
        context.vault.renew(address, record, also=intent)
    except DuplicateIdentity as exc:
        code = "renewal_other_person" if exc.field == "id_number" else f"duplicate_{exc.field}"
        raise ApiError(409, code, str(exc)) from None


def request_phone_change(context, otp: OtpService, address: str, phone: str, request_id: str) -> Standing:
    """Seals the record with the new phone number and texts a code to it: `reverification_needed` until confirmed."""
    phone = normalize_phone(phone)
    try:
        current = context.vault.get(address)
    except RecordNotFound:
        raise ApiError(409, "not_verified", "verify your identity first: POST /v1/kyc") from None
    changed = current.with_phone(phone)
    _refuse_taken(context, address, changed, fields=("phone",))
    _seal(context, address, changed, PHONE_CHANGE, card_verified=True)
    otp.send(address, "phone_change", phone)
    context.action_log.append(address, "kyc.phone_change_requested", request_id, {})
    return standing(context, address)


def confirm_phone_change(context, otp: OtpService, address: str, code: str, request_id: str) -> Standing:
    """The new number confirmed goes into the vault. The identity commitment covers the name and ID number only
    (ledger.identity), so the chain needs no update: the status is what it was before the change."""
    with context.sessions() as session:
        pending = session.get(KycApplication, address)
    if pending is None or pending.purpose != PHONE_CHANGE:
        raise ApiError(409, "no_pending_change", "nothing to verify: POST /v1/kyc/phone first")
    otp.verify(address, "phone_change", code)
    changed = context.vault.open_pending(address, pending.sealed)
    try:
        context.vault.update_phone(address, changed.phone)
    except DuplicateIdentity as exc:
        raise ApiError(409, f"duplicate_{exc.field}", str(exc)) from None
    _forget_application(context, address)
    context.action_log.append(address, "kyc.phone_changed", request_id, {})
    return standing(context, address)


def _iso(timestamp: int | None) -> str:
    return "an unknown date" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).date().isoformat()


def _refuse_taken(context, address: str, record: KycRecord, fields=("id_number", "phone")) -> None:
    finders = {"id_number": context.vault.find_by_id_number, "phone": context.vault.find_by_phone}
    for field in fields:
        owner = finders[field](getattr(record, field))
        if owner is not None and owner.lower() != address.lower():
            raise ApiError(409, f"duplicate_{field}", f"this {field.replace('_', ' ')} is verified for another wallet")


def _seal(context, address: str, record: KycRecord, purpose: str, *, card_verified: bool) -> bytes:
    at, sealed = int(time.time()), context.vault.seal_pending(address, record)
    with context.sessions.begin() as session:
        session.merge(KycApplication(address=address, purpose=purpose, sealed=sealed, phone_verified=False,
                                     card_verified=card_verified, created_at=at, expires_at=at + APPLICATION_TTL))
    return sealed


def _pending_row(context, address: str) -> dict | None:
    with context.sessions() as session:
        row = session.get(KycApplication, address)
        return None if row is None else {c.key: getattr(row, c.key) for c in KycApplication.__table__.columns}


def _restore(context, address: str, previous: dict | None) -> None:
    """Puts back the pending application a refused submission replaced (or removes the one it added)."""
    if previous is None:
        _forget_application(context, address)
        return
    with context.sessions.begin() as session:
        session.merge(KycApplication(**previous))


def _mark(context, address: str, **flags) -> None:
    with context.sessions.begin() as session:
        row = session.get(KycApplication, address)
        for name, value in flags.items():
            setattr(row, name, value)


def _forget_application(context, address: str) -> None:
    with context.sessions.begin() as session:
        session.execute(delete(KycApplication).where(KycApplication.address == address))

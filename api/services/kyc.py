"""Real-name verification: submit a record, confirm the phone and the card binding with one-time codes, and
(when automatic registration is on) get registered on-chain by the oracle; a changed phone number is confirmed
with a code to the new number.

The API sends no registration itself (it holds no key with a role): the verified record and its registration
intent are stored in one transaction, and the oracle's registration worker registers the borrower with the
oracle's key. Until the indexer has seen BorrowerRegistered the status says `registering`.

Nothing personal leaves in clear: the pending application is sealed by the vault, the verified record
goes into the vault, and only the identity commitment goes on-chain. Callers show the record masked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete

from api.errors import ApiError
from api.otp import OtpService
from api.services.borrowers import (
    ledger_state,
    registration_intent,
    registration_state,
)
from ledger.encoding import to_0x_hex
from ledger.identity import KycRecord, normalize_phone
from ledger.store.models.api import KycApplication
from ledger.vault import DuplicateIdentity, RecordNotFound

APPLICATION_TTL = 1800


@dataclass(frozen=True)
class Standing:
    """Where a wallet's verification stands: none, pending (codes sent), verified (in the vault), registering (the
    oracle has yet to register it, or the indexer to see it), registered (the indexer saw BorrowerRegistered)."""

    status: str
    record: KycRecord | None = None
    commitment: str | None = None  # verified: 0x + the commitment the record opens to
    codes_expire_at: int | None = None  # pending
    tx_hash: str | None = None  # the registration, when this call registered (the API no longer does: None)


def standing(context, address: str) -> Standing:
    try:
        opening = context.vault.opening(address)
    except RecordNotFound:
        opening = None
    if opening is not None:
        return Standing(_registration_status(context, address), opening.record, to_0x_hex(opening.commitment))
    with context.sessions() as session:
        pending = session.get(KycApplication, address)
    if pending is not None and pending.purpose == "initial" and pending.expires_at >= time.time():
        return Standing("pending", context.vault.open_pending(address, pending.sealed),
                        codes_expire_at=pending.expires_at)
    return Standing("none")


def submit(context, otp: OtpService, address: str, record: KycRecord, request_id: str) -> Standing:
    """Seals the application and texts the two codes; 409 if the wallet, ID number or phone is verified."""
    if context.vault.has_record(address):
        raise ApiError(409, "already_verified", "this wallet is verified; to change the phone use POST /v1/kyc/phone")
    _refuse_taken(context, address, record)
    _seal(context, address, record, "initial", card_verified=False)
    expires = otp.send(address, "phone", record.phone)
    otp.send(address, "card", record.phone)  # the bank texts the card-binding code to the same phone
    context.action_log.append(address, "kyc.submit", request_id, {})
    return Standing("pending", record, codes_expire_at=expires)


def confirm(context, otp: OtpService, address: str, phone_code: str, card_code: str, request_id: str) -> Standing:
    """Checks both codes, moves the record into the vault and, if automatic registration is on, registers."""
    with context.sessions() as session:
        pending = session.get(KycApplication, address)
    if pending is None or pending.purpose != "initial":
        raise ApiError(409, "no_pending_kyc", "nothing to verify: submit POST /v1/kyc first")
    if pending.expires_at < time.time():
        raise ApiError(422, "kyc_expired", "the application expired: submit it again")
    if not pending.phone_verified:
        otp.verify(address, "phone", phone_code)
        _mark(context, address, phone_verified=True)
    if not pending.card_verified:
        otp.verify(address, "card", card_code)
        _mark(context, address, card_verified=True)
    record = context.vault.open_pending(address, pending.sealed)
    # With automatic registration the intent is stored with the record, in its transaction: both or neither.
    intent = registration_intent(context, address, request_id) if context.settings.auto_register else None
    try:
        context.vault.put(address, record, also=intent)
    except DuplicateIdentity as exc:
        raise ApiError(409, f"duplicate_{exc.field}", str(exc)) from None
    _forget_application(context, address)
    commitment = to_0x_hex(context.vault.commitment(address))
    context.action_log.append(address, "kyc.verify", request_id, {"commitment": commitment,
                                                                   "registration": "oracle" if intent else None})
    return Standing(_registration_status(context, address), record, commitment)


def request_phone_change(context, otp: OtpService, address: str, phone: str, request_id: str) -> Standing:
    """Seals the record with the new phone number and texts a code to it."""
    phone = normalize_phone(phone)
    try:
        current = context.vault.get(address)
    except RecordNotFound:
        raise ApiError(409, "not_verified", "verify your identity first: POST /v1/kyc") from None
    changed = current.with_phone(phone)
    _refuse_taken(context, address, changed, fields=("phone",))
    _seal(context, address, changed, "phone_change", card_verified=True)
    expires = otp.send(address, "phone_change", phone)
    context.action_log.append(address, "kyc.phone_change_requested", request_id, {})
    return Standing("pending", changed, codes_expire_at=expires)


def confirm_phone_change(context, otp: OtpService, address: str, code: str, request_id: str) -> Standing:
    with context.sessions() as session:
        pending = session.get(KycApplication, address)
    if pending is None or pending.purpose != "phone_change":
        raise ApiError(409, "no_pending_change", "nothing to verify: POST /v1/kyc/phone first")
    otp.verify(address, "phone_change", code)
    changed = context.vault.open_pending(address, pending.sealed)
    try:
        context.vault.update_phone(address, changed.phone)
    except DuplicateIdentity as exc:
        raise ApiError(409, f"duplicate_{exc.field}", str(exc)) from None
    _forget_application(context, address)
    context.action_log.append(address, "kyc.phone_changed", request_id, {})
    return Standing(_registration_status(context, address), context.vault.get(address),
                    to_0x_hex(context.vault.commitment(address)))


def _registration_status(context, address: str) -> str:
    """registered once the indexer saw it (verified again if revoked since); registering while the oracle's intent
    is pending (or done and not yet indexed); verified otherwise (no automatic registration, or the registry refused
    it: an operator's)."""
    on_ledger = ledger_state(context, address)
    if on_ledger is not None:
        return "registered" if on_ledger == "registered" else "verified"
    return "registering" if registration_state(context, address) in ("pending", "done") else "verified"


def _refuse_taken(context, address: str, record: KycRecord, fields=("id_number", "phone")) -> None:
    finders = {"id_number": context.vault.find_by_id_number, "phone": context.vault.find_by_phone}
    for field in fields:
        owner = finders[field](getattr(record, field))
        if owner is not None and owner.lower() != address.lower():
            raise ApiError(409, f"duplicate_{field}", f"this {field.replace('_', ' ')} is verified for another wallet")


def _seal(context, address: str, record: KycRecord, purpose: str, *, card_verified: bool) -> None:
    now = int(time.time())
    with context.sessions.begin() as session:
        session.merge(KycApplication(address=address, purpose=purpose,
                                     sealed=context.vault.seal_pending(address, record), phone_verified=False,
                                     card_verified=card_verified, created_at=now, expires_at=now + APPLICATION_TTL))


def _mark(context, address: str, **flags) -> None:
    with context.sessions.begin() as session:
        row = session.get(KycApplication, address)
        for name, value in flags.items():
            setattr(row, name, value)


def _forget_application(context, address: str) -> None:
    with context.sessions.begin() as session:
        session.execute(delete(KycApplication).where(KycApplication.address == address))

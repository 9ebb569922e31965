"""Real-name verification: submit, confirm the phone and the card binding with one-time codes, get registered.

Nothing personal leaves this module in clear except the masked view to its owner: the pending
application is sealed by the vault, the verified record goes into the vault, and only the identity
commitment goes on-chain. A changed phone number (a new SIM) is re-verified with a code to the new number.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import delete

from api.deps import BorrowerOrApplicant, ContextDep, OtpDep, RolesDep
from api.errors import ApiError, error_responses
from api.observability import current_request_id
from api.services.borrowers import register_borrower
from ledger.identity import KycRecord, normalize_phone
from ledger.store.models.api import KycApplication
from ledger.vault import DuplicateIdentity, RecordNotFound

router = APIRouter(prefix="/v1/kyc", tags=["kyc"])
ERRORS = error_responses(401, 403, 409, 422, 429, 503)
APPLICATION_TTL = 1800


class KycIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    id_number: str = Field(min_length=1, max_length=32, description="18-digit resident identity number")
    phone: str = Field(min_length=1, max_length=32, description="mainland mobile number")
    bank_card: str = Field(min_length=1, max_length=32, description="debit card number (Luhn-checked)")

    model_config = {"json_schema_extra": {"examples": [{
        "name": "张三", "id_number": "11010519491231002X", "phone": "13800138000", "bank_card": "6222020200112233446"}]}}


class CodesIn(BaseModel):
    phone_code: str = Field(pattern=r"^\d{6}$", description="the code texted to confirm the phone number")
    card_code: str = Field(pattern=r"^\d{6}$", description="the bank's code confirming the card binding")

    model_config = {"json_schema_extra": {"examples": [{"phone_code": "482913", "card_code": "175046"}]}}


class CodeIn(BaseModel):
    code: str = Field(pattern=r"^\d{6}$", description="the code texted to the new number")

    model_config = {"json_schema_extra": {"examples": [{"code": "630281"}]}}


class PhoneIn(BaseModel):
    phone: str = Field(min_length=1, max_length=32, description="the new mainland mobile number")

    model_config = {"json_schema_extra": {"examples": [{"phone": "13912345678"}]}}


class MaskedOut(BaseModel):
    name: str
    id_number: str
    phone: str
    bank_card: str

    model_config = {"json_schema_extra": {"examples": [{
        "name": "张*", "id_number": "110***********002X", "phone": "138****8000", "bank_card": "****3446"}]}}


class KycStatus(BaseModel):
    status: str = Field(description="none | pending | verified | registered")
    record: MaskedOut | None = Field(None, description="the record as its owner may see it: masked")
    commitment: str | None = Field(None, description="the salted hash of the record registered on-chain")
    codes_expire_at: int | None = Field(None, description="pending: unix seconds the codes are valid until")
    tx_hash: str | None = Field(None, description="the registration transaction, when this call registered")

    model_config = {"json_schema_extra": {"examples": [
        {"status": "pending", "record": MaskedOut.model_config["json_schema_extra"]["examples"][0],
         "codes_expire_at": 1767227400},
        {"status": "registered", "record": MaskedOut.model_config["json_schema_extra"]["examples"][0],
         "commitment": "0x38f78745b82e6b53762316d8a03d9d7dce0e3dcbb2ee692f46bbb5364734dce2",
         "tx_hash": "0xd96bf58be99e09ed5b140f5428df074c19c2d4d25ae3c28ae9767e8994b2f848"}]}}


def _masked(record: KycRecord) -> MaskedOut:
    m = record.masked()
    return MaskedOut(name=m.name, id_number=m.id_number, phone=m.phone, bank_card=m.bank_card)


def _refuse_taken(context, address: str, record: KycRecord, fields=("id_number", "phone")) -> None:
    finders = {"id_number": context.vault.find_by_id_number, "phone": context.vault.find_by_phone}
    for field in fields:
        owner = finders[field](getattr(record, field))
        if owner is not None and owner.lower() != address.lower():
            raise ApiError(409, f"duplicate_{field}", f"this {field.replace('_', ' ')} is verified for another wallet")


@router.get("", response_model=KycStatus, responses=ERRORS, summary="My verification status and masked record")
def status(context: ContextDep, who: BorrowerOrApplicant) -> KycStatus:
    try:
        opening = context.vault.opening(who.address)
    except RecordNotFound:
        opening = None
    if opening is not None:
        # "borrower" is the role the registry gives a registered address (api.auth).
        return KycStatus(status="registered" if who.has("borrower") else "verified", record=_masked(opening.record),
                         commitment="0x" + opening.commitment.hex())
    with context.sessions() as session:
        pending = session.get(KycApplication, who.address)
    if pending is not None and pending.purpose == "initial" and pending.expires_at >= time.time():
        return KycStatus(status="pending", record=_masked(context.vault.open_pending(who.address, pending.sealed)),
                         codes_expire_at=pending.expires_at)
    return KycStatus(status="none")


@router.post("", response_model=KycStatus, status_code=202, responses=ERRORS,
             summary="Submit name, ID number, phone and bank card; codes go to the phone")
def submit(body: KycIn, context: ContextDep, otp: OtpDep, who: BorrowerOrApplicant) -> KycStatus:
    record = KycRecord.from_input(body.name, body.id_number, body.phone, body.bank_card)  # 422 per field
    if context.vault.has_record(who.address):
        raise ApiError(409, "already_verified", "this wallet is verified; to change the phone use POST /v1/kyc/phone")
    _refuse_taken(context, who.address, record)
    now = int(time.time())
    with context.sessions.begin() as session:
        session.merge(KycApplication(address=who.address, purpose="initial",
                                     sealed=context.vault.seal_pending(who.address, record), phone_verified=False,
                                     card_verified=False, created_at=now, expires_at=now + APPLICATION_TTL))
    expires = otp.send(who.address, "phone", record.phone)
    otp.send(who.address, "card", record.phone)  # the bank texts the card-binding code to the same phone
    context.action_log.append(who.address, "kyc.submit", current_request_id(), {})
    return KycStatus(status="pending", record=_masked(record), codes_expire_at=expires)


@router.post("/verify", response_model=KycStatus, responses=ERRORS,
             summary="Confirm both codes: the record is sealed in the vault and the borrower registered on-chain")
def verify(body: CodesIn, context: ContextDep, otp: OtpDep, roles: RolesDep, who: BorrowerOrApplicant) -> KycStatus:
    with context.sessions() as session:
        pending = session.get(KycApplication, who.address)
    if pending is None or pending.purpose != "initial":
        raise ApiError(409, "no_pending_kyc", "nothing to verify: submit POST /v1/kyc first")
    if pending.expires_at < time.time():
        raise ApiError(422, "kyc_expired", "the application expired: submit it again")
    if not pending.phone_verified:
        otp.verify(who.address, "phone", body.phone_code)
        _mark(context, who.address, phone_verified=True)
    if not pending.card_verified:
        otp.verify(who.address, "card", body.card_code)
        _mark(context, who.address, card_verified=True)
    record = context.vault.open_pending(who.address, pending.sealed)
    try:
        context.vault.put(who.address, record)
    except DuplicateIdentity as exc:
        raise ApiError(409, f"duplicate_{exc.field}", str(exc)) from None
    with context.sessions.begin() as session:
        session.execute(delete(KycApplication).where(KycApplication.address == who.address))
    commitment = context.vault.commitment(who.address)
    context.action_log.append(who.address, "kyc.verify", current_request_id(), {"commitment": "0x" + commitment.hex()})
    tx_hash = None
    if context.settings.auto_register:
        tx_hash = register_borrower(context, who.address, "kyc", current_request_id())
        roles.forget(who.address)
    return KycStatus(status="registered" if tx_hash else "verified", record=_masked(record),
                     commitment="0x" + commitment.hex(), tx_hash=tx_hash)


def _mark(context, address: str, **flags) -> None:
    with context.sessions.begin() as session:
        row = session.get(KycApplication, address)
        for name, value in flags.items():
            setattr(row, name, value)


@router.post("/phone", response_model=KycStatus, status_code=202, responses=ERRORS,
             summary="Change the phone number (new SIM): a code goes to the new number")
def change_phone(body: PhoneIn, context: ContextDep, otp: OtpDep, who: BorrowerOrApplicant):
    phone = normalize_phone(body.phone)
    try:
        current = context.vault.get(who.address)
    except RecordNotFound:
        raise ApiError(409, "not_verified", "verify your identity first: POST /v1/kyc") from None
    changed = current.with_phone(phone)
    _refuse_taken(context, who.address, changed, fields=("phone",))
    now = int(time.time())
    with context.sessions.begin() as session:
        session.merge(KycApplication(address=who.address, purpose="phone_change",
                                     sealed=context.vault.seal_pending(who.address, changed), phone_verified=False,
                                     card_verified=True, created_at=now, expires_at=now + APPLICATION_TTL))
    expires = otp.send(who.address, "phone_change", phone)
    context.action_log.append(who.address, "kyc.phone_change_requested", current_request_id(), {})
    return KycStatus(status="pending", record=_masked(changed), codes_expire_at=expires)


@router.post("/phone/verify", response_model=KycStatus, responses=ERRORS, summary="Confirm the new phone number")
def verify_phone(body: CodeIn, context: ContextDep, otp: OtpDep, who: BorrowerOrApplicant):
    with context.sessions() as session:
        pending = session.get(KycApplication, who.address)
    if pending is None or pending.purpose != "phone_change":
        raise ApiError(409, "no_pending_change", "nothing to verify: POST /v1/kyc/phone first")
    otp.verify(who.address, "phone_change", body.code)
    changed = context.vault.open_pending(who.address, pending.sealed)
    try:
        context.vault.update_phone(who.address, changed.phone)
    except DuplicateIdentity as exc:
        raise ApiError(409, f"duplicate_{exc.field}", str(exc)) from None
    with context.sessions.begin() as session:
        session.execute(delete(KycApplication).where(KycApplication.address == who.address))
    context.action_log.append(who.address, "kyc.phone_changed", current_request_id(), {})
    return KycStatus(status="verified", record=_masked(context.vault.get(who.address)),
                     commitment="0x" + context.vault.commitment(who.address).hex())

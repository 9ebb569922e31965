"""Real-name verification: submit, confirm the phone and the card binding with one-time codes, get registered;
renew before or after expiry; re-verify a changed phone number (a new SIM) with a code to the new number.

The steps are api.services.kyc; each answers the status after it, as GET /v1/kyc shows it (ledger.kyc_status
names the statuses), with the record masked, never in clear.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from api.deps import BorrowerOrApplicant, ContextDep, OtpDep, RolesDep
from api.errors import error_responses
from api.observability import current_request_id
from api.schemas.kyc import (
    CodeIn,
    CodesIn,
    KycIn,
    KycStatus,
    MaskedOut,
    NextStepOut,
    PhoneIn,
)
from api.services import kyc
from api.stepup import STEP_UP_ERRORS, StepUpCode, StepUpDep
from ledger.identity import KycRecord
from ledger.kyc_status import ON_CHAIN, description

router = APIRouter(prefix="/v1/kyc", tags=["kyc"])
ERRORS = error_responses(401, 403, 409, 422, 429, 503)


def _shown(standing: kyc.Standing) -> KycStatus:
    """What the owner sees: the record masked (KycRecord.masked), never in clear; the expiry in both forms."""
    masked = None if standing.record is None else MaskedOut.model_validate(standing.record.masked())
    expires = standing.kyc_expires_at
    return KycStatus(status=standing.status.value, record=masked, commitment=standing.commitment,
                     codes_expire_at=standing.codes_expire_at, kyc_expires_at=expires,
                     kyc_expires_at_iso=None if expires is None else
                     datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z"),
                     renewal=standing.renewal, renewal_opens_at=standing.renewal_opens_at,
                     next=[NextStepOut(action=step.action, route=step.route, description=step.description)
                           for step in standing.next],
                     tx_hash=standing.tx_hash)


@router.get("", response_model=KycStatus, responses=ERRORS,
            summary="My verification status (" + description() + "), its expiry and what I can do next")
def status(context: ContextDep, roles: RolesDep, who: BorrowerOrApplicant) -> KycStatus:
    # The role the registry gives a registered address (read from the chain: it may be ahead of the indexer, which
    # has the last word once it has seen the borrower).
    standing = kyc.standing(context, who.address, on_registry=who.has("borrower"))
    if standing.status in ON_CHAIN and not who.has("borrower"):
        # The oracle registered it since this address's roles were cached: its next request is a borrower's.
        roles.forget(who.address)
    return _shown(standing)


@router.post("", response_model=KycStatus, status_code=202, responses=ERRORS,
             summary="Submit name, ID number, phone and bank card (again, to renew); codes go to the phone",
             description="A verified wallet submits again to renew: from `renewal_opens_at` (`kyc_renewal_days` "
                         "before `kyc_expires_at`) or after expiry, or when `reverification_needed`; the ID number "
                         "must be the one it was verified with. 409 `renewal_not_open` (naming the date it opens), "
                         "`renewal_other_person`, `already_verified` (its registration is on its way), "
                         "`borrower_revoked`, `duplicate_id_number` / `duplicate_phone`.")
def submit(body: KycIn, context: ContextDep, otp: OtpDep, who: BorrowerOrApplicant) -> KycStatus:
    record = KycRecord.from_input(body.name, body.id_number, body.phone, body.bank_card)  # 422 per field
    return _shown(kyc.submit(context, otp, who.address, record, current_request_id()))


@router.post("/verify", response_model=KycStatus, responses=ERRORS,
             summary="Confirm both codes: the record is sealed in the vault; the oracle registers the borrower "
                     "on-chain (status `registering` until the ledger shows it)")
def verify(body: CodesIn, context: ContextDep, otp: OtpDep, roles: RolesDep, who: BorrowerOrApplicant) -> KycStatus:
    standing = kyc.confirm(context, otp, who.address, body.phone_code, body.card_code, current_request_id())
    if standing.status in ON_CHAIN:  # already on the ledger (registered before, or a renewal): forget cached roles
        roles.forget(who.address)
    return _shown(standing)


@router.post("/phone", response_model=KycStatus, status_code=202, responses={**ERRORS, **STEP_UP_ERRORS},
             summary="Change the phone number (new SIM): a code goes to the new number")
def change_phone(body: PhoneIn, context: ContextDep, otp: OtpDep, step_up: StepUpDep, who: BorrowerOrApplicant,
                 code: StepUpCode = None):
    if context.vault.has_record(who.address):  # a verified phone to text the code to (else: not_verified below)
        step_up.require(who.address, "phone_change", {"phone": body.phone}, code)
    return _shown(kyc.request_phone_change(context, otp, who.address, body.phone, current_request_id()))


@router.post("/phone/verify", response_model=KycStatus, responses=ERRORS, summary="Confirm the new phone number")
def verify_phone(body: CodeIn, context: ContextDep, otp: OtpDep, who: BorrowerOrApplicant):
    return _shown(kyc.confirm_phone_change(context, otp, who.address, body.code, current_request_id()))

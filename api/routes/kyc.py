"""Real-name verification: submit, confirm the phone (LoanLedger's code) and the card binding (the bank's code, texted
to the card's reserved phone: api.services.card_binding), get registered;
renew before or after expiry; re-verify a changed phone number (a new SIM) with a code to the new number; change the
bank card (the bank's code to the new card's reserved phone: api.services.card_binding); recover
a lost wallet's identity onto a new wallet (operators confirm the risky ones).

The steps are api.services.kyc; each answers the status after it, as GET /v1/kyc shows it (ledger.kyc_status
names the statuses), with the record masked, never in clear.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import BorrowerOrApplicant, ContextDep, Operator, OtpDep, RolesDep
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
    one_time_code,
)
from api.services import card_binding, kyc, recovery
from api.stepup import STEP_UP_ERRORS, StepUpCode, StepUpDep
from api.views import checksum_address
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
             summary="Submit name, ID number, phone and bank card (again, to renew); a code goes to the phone, the "
                     "bank texts its card code to the card's reserved phone",
             description="A verified wallet submits again to renew: from `renewal_opens_at` (`kyc_renewal_days` "
                         "before `kyc_expires_at`) or after expiry, or when `reverification_needed`; the ID number "
                         "must be the one it was verified with. 409 `renewal_not_open` (naming the date it opens), "
                         "`renewal_other_person`, `already_verified` (its registration is on its way), "
                         "`borrower_revoked`, `duplicate_id_number` / `duplicate_phone`. The bank (the payment "
                         "rail's card verification) refusing the card: 422 `card_not_verified` naming its reason "
                         "(`card_unknown`, `card_holder_mismatch`, `card_phone_mismatch`); the rail away: 503 "
                         "`rail_unavailable` with Retry-After.")
def submit(body: KycIn, context: ContextDep, otp: OtpDep, who: BorrowerOrApplicant) -> KycStatus:
    record = KycRecord.from_input(body.name, body.id_number, body.phone, body.bank_card)  # 422 per field
    return _shown(kyc.submit(context, otp, who.address, record, current_request_id()))


@router.post("/verify", response_model=KycStatus, responses=ERRORS,
             summary="Confirm both codes: the record is sealed in the vault; the oracle registers the borrower "
                     "on-chain (status `registering` until the ledger shows it)",
             description="The card code is confirmed by the bank (the payment rail): wrong 422 `otp_wrong`, locked "
                         "after 3 tries `otp_locked`, expired `otp_expired`; the rail away 503 `rail_unavailable` "
                         "with Retry-After (verify again with the same codes).")
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
        step_up.redeem(who.address, "phone_change", {"phone": body.phone}, code)
    return _shown(kyc.request_phone_change(context, otp, who.address, body.phone, current_request_id()))


@router.post("/phone/verify", response_model=KycStatus, responses=ERRORS, summary="Confirm the new phone number")
def verify_phone(body: CodeIn, context: ContextDep, otp: OtpDep, who: BorrowerOrApplicant):
    return _shown(kyc.confirm_phone_change(context, otp, who.address, body.code, current_request_id()))


# ------------------------------------------------------------------ card change (api.services.card_binding)

class CardIn(BaseModel):
    bank_card: str = Field(min_length=1, max_length=64, description="the new bank card's number (as for KycIn)")

    model_config = {"json_schema_extra": {"examples": [{"bank_card": "6222080000000111"}]}}


class CardCodeIn(BaseModel):
    code: one_time_code("the bank's code, texted to the new card's reserved phone")  # type: ignore[valid-type]

    model_config = {"json_schema_extra": {"examples": [{"code": "630281"}]}}


@router.post("/card", response_model=KycStatus, status_code=202, responses={**ERRORS, **STEP_UP_ERRORS},
             summary="Change the bank card: the bank texts its code to the new card's reserved phone",
             description="A registered borrower, with a step-up code for `card_change` bound to the new card's "
                         "number (`X-Step-Up-Code`). The bank checks the card is theirs (name and ID number as "
                         "verified) and reserved with their verified phone. The status stays what it was, with the "
                         "old card bound, until `POST /v1/kyc/card/verify`. 409 `not_verified`, `card_unchanged`, "
                         "`card_change_mandate_active` (revoke the automatic-debit mandate first); 422 "
                         "`invalid_bank_card`, `card_not_verified` naming the bank's reason (`card_unknown`, "
                         "`card_holder_mismatch`, `card_phone_mismatch`); 503 `rail_unavailable`.")
def change_card(body: CardIn, context: ContextDep, step_up: StepUpDep, who: BorrowerOrApplicant,
                code: StepUpCode = None) -> KycStatus:
    # What is refused anyway is refused before the step-up code is spent; the bank is asked only with one.
    changed = card_binding.changed_record(context, who.address, body.bank_card)
    step_up.redeem(who.address, "card_change", {"bank_card": changed.bank_card}, code)
    card_binding.start_change(context, who.address, changed)
    context.action_log.append(who.address, "kyc.card_change_requested", current_request_id(), {})
    return _shown(kyc.standing(context, who.address))


@router.post("/card/verify", response_model=KycStatus, responses=ERRORS,
             summary="Confirm the card change with the bank's code: the new card is bound",
             description="Wrong 422 `otp_wrong`, locked after 3 tries `otp_locked` (start again), expired "
                         "`otp_expired`; 409 `no_pending_card_change`, `card_change_mandate_active`; 503 "
                         "`rail_unavailable` (verify again with the same code).")
def verify_card(body: CardCodeIn, context: ContextDep, who: BorrowerOrApplicant) -> KycStatus:
    card_binding.confirm_change(context, who.address, body.code)
    context.action_log.append(who.address, "kyc.card_changed", current_request_id(), {})
    return _shown(kyc.standing(context, who.address))


# ------------------------------------------------------------------ wallet recovery (api.services.recovery)

class RecoveryOut(BaseModel):
    """A wallet recovery: the new wallet, the lost one, its intent's status (held: waiting for an operator)."""

    borrower: str
    recovered_from: str
    status: str
    outstanding_principal: int
    created_at: int

    model_config = {"json_schema_extra": {"examples": [{
        "borrower": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        "recovered_from": "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc", "status": "held",
        "outstanding_principal": 120000, "created_at": 1796083200}]}}


@router.post("/recovery", response_model=KycStatus, status_code=202, responses=ERRORS,
             summary="Lost your wallet? On a new one, submit the same record again: codes go to the phone",
             description="Then `POST /v1/kyc/verify` with the codes: the record moves to this wallet and the oracle "
                         "sends `recoverBorrower` (the old wallet is revoked, its loans stay payable and keep "
                         "counting against your limit). `recovery_pending` while an operator must confirm (the old "
                         "wallet owes more than `recovery_review_principal`). 409 `recovery_unknown_identity`, "
                         "`recovery_other_person` (name or bank card not the ones verified with the ID number), "
                         "`already_verified`, `wallet_already_used`, `recovery_in_progress`, `duplicate_phone`.")
def recover(body: KycIn, context: ContextDep, otp: OtpDep, who: BorrowerOrApplicant) -> KycStatus:
    record = KycRecord.from_input(body.name, body.id_number, body.phone, body.bank_card)  # 422 per field
    return _shown(kyc.submit(context, otp, who.address, record, current_request_id(), recovery=True))


@router.get("/recoveries", response_model=list[RecoveryOut], responses=ERRORS,
            summary="Wallet recoveries waiting for an operator's confirmation (operators)")
def held_recoveries(context: ContextDep, _who: Operator) -> list[RecoveryOut]:
    return [RecoveryOut(**vars(item)) for item in recovery.held(context)]


@router.post("/recoveries/{address}/confirm", response_model=RecoveryOut, responses=ERRORS,
             summary="Confirm a held wallet recovery (operators): the oracle then sends recoverBorrower")
def confirm_recovery(address: str, context: ContextDep, who: Operator) -> RecoveryOut:
    confirmed = recovery.confirm(context, checksum_address(address), who.address, current_request_id())
    return RecoveryOut(**vars(confirmed))

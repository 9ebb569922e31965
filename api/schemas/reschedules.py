"""Hardship reschedules (issue 17): what a borrower asks, what an operator offers, what the borrower signs to accept,
and a loan's reschedules as the chain recorded them (the replaced and the new schedule of each)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import HEX_SIGNATURE
from api.schemas.signed import SignedRequestIn, signed_example


class RescheduleRequestIn(BaseModel):
    installments: int = Field(0, ge=0, le=720, description="the number of installments hoped for (0: no preference)")
    reason: str = Field("", max_length=200, description="in the borrower's words (kept in the action log)")

    model_config = {"json_schema_extra": {"examples": [{"installments": 6, "reason": "lost my job"}]}}


class RescheduleRequestOut(BaseModel):
    loan_id: int
    installments: int
    recorded: bool = Field(description="kept in the hash-chained action log for the operators to decide")


class RescheduleOfferIn(BaseModel):
    installments: int = Field(ge=1, le=720, description="the new schedule's installments, from the next due date")
    expires_at: int = Field(gt=0, lt=2**40, description="unix seconds (chain time) after which it cannot be accepted")

    model_config = {"json_schema_extra": {"examples": [{"installments": 6, "expires_at": 1_767_830_400}]}}


class SignedRescheduleOfferIn(RescheduleOfferIn, SignedRequestIn):
    """The offer's terms and the operator's signed `offerReschedule(loanId, installments, expiresAt)`."""

    model_config = signed_example(RescheduleOfferIn)


class RescheduleAcceptIn(BaseModel):
    deadline: int = Field(gt=0, lt=2**64, description="unix seconds the signature is valid until (as signed)")
    signature: str = Field(pattern=HEX_SIGNATURE, description="EIP-712 RescheduleAcceptance signature by the borrower")


class ScheduleSummaryOut(BaseModel):
    installments: int = Field(description="installments left")
    installment_amount: int = Field(description="the next installment's scheduled principal and interest")
    next_due_at: int


class RescheduleOut(BaseModel):
    """One accepted reschedule: the schedule it replaced and the one it set, as RescheduleAccepted carries them."""

    offer_id: int
    previous: ScheduleSummaryOut
    current: ScheduleSummaryOut
    rebased_at: int = Field(description="installments before the new schedule (the overdue ones folded into it)")
    principal: int = Field(description="the outstanding principal re-based (nothing capitalised)")
    carried_interest: int = Field(description="interest overdue at acceptance, added to the first new installment")
    tx_hash: str
    block_number: int


class OfferOut(BaseModel):
    offer_id: int
    installments: int
    expires_at: int
    open: bool


class RescheduleStatusOut(BaseModel):
    """A loan's hardship reschedule: its latest offer, what the borrower signs to accept it, and its history."""

    loan_id: int
    offer: OfferOut | None = Field(description="the latest offer (null: none made)")
    to_sign: dict | None = Field(description="while an offer is open: the RescheduleAcceptance typed data to sign")
    reschedules: list[RescheduleOut]

"""Hardship reschedules (issue 17): what a borrower asks, what an operator offers, what the borrower signs to accept,
and a loan's reschedules as the chain recorded them (the replaced and the new schedule of each)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.schemas import EXAMPLE_SCHEDULE, EXAMPLE_TX, HEX_SIGNATURE, InstallmentOut
from api.schemas.signed import SignedRequestIn, signed_example

_PREVIOUS = {"installments": 3, "installment_amount": 41_588, "next_due_at": 1_769_817_600}
_CURRENT = {"installments": 6, "installment_amount": 21_422, "next_due_at": 1_769_817_600}
_OFFER = {"offer_id": 1, "installments": 6, "expires_at": 1_769_212_800, "open": False}
_RESCHEDULE = {"offer_id": 1, "previous": _PREVIOUS, "current": _CURRENT, "rebased_at": 0, "principal": 120_000,
               "carried_interest": 0, "tx_hash": EXAMPLE_TX, "block_number": 131,
               "previous_schedule": EXAMPLE_SCHEDULE, "current_schedule": EXAMPLE_SCHEDULE[:1]}


class RescheduleRequestIn(BaseModel):
    installments: int = Field(0, ge=0, le=720, description="the number of installments hoped for (0: no preference)")
    # A code, never free text: the request is kept in the action log, which holds no personal data.
    reason: Literal["income_loss", "illness", "family", "disaster", "other"] = Field(
        "other", description="why, as a code (free text could carry personal data into the action log)")

    model_config = {"json_schema_extra": {"examples": [{"installments": 6, "reason": "income_loss"}]}}


class RescheduleRequestOut(BaseModel):
    loan_id: int
    installments: int
    recorded: bool = Field(description="kept in the hash-chained action log for the operators to decide")

    model_config = {"json_schema_extra": {"examples": [{"loan_id": 7, "installments": 6, "recorded": True}]}}


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

    model_config = {"json_schema_extra": {"examples": [{"deadline": 1_767_228_600, "signature": "0x" + "5d" * 64 + "1b"}]}}


class ScheduleSummaryOut(BaseModel):
    installments: int = Field(description="installments left")
    installment_amount: int = Field(description="the next installment's scheduled principal and interest")
    next_due_at: int

    model_config = {"json_schema_extra": {"examples": [_PREVIOUS]}}


_ASKED = {"loan_id": 7, "borrower": "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc", "installments": 6,
          "reason": "income_loss", "at": 1_767_225_600_000}


class RescheduleAskedOut(BaseModel):
    loan_id: int
    borrower: str
    installments: int = Field(description="hoped for (0: no preference)")
    reason: str
    at: int = Field(description="unix milliseconds, as the action log recorded it")

    model_config = {"json_schema_extra": {"examples": [_ASKED]}}


class RescheduleAskedList(BaseModel):
    requests: list[RescheduleAskedOut]

    model_config = {"json_schema_extra": {"examples": [{"requests": [_ASKED]}]}}


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
    previous_schedule: list[InstallmentOut] = Field(description="the plan the loan was on before it, in full")
    current_schedule: list[InstallmentOut] = Field(description="the plan it set, in full")

    model_config = {"json_schema_extra": {"examples": [_RESCHEDULE]}}


class OfferOut(BaseModel):
    offer_id: int
    installments: int
    expires_at: int
    open: bool

    model_config = {"json_schema_extra": {"examples": [_OFFER]}}


class RescheduleStatusOut(BaseModel):
    """A loan's hardship reschedule: its latest offer, what the borrower signs to accept it, and its history."""

    loan_id: int
    offer: OfferOut | None = Field(description="the latest offer (null: none made)")
    to_sign: dict | None = Field(description="while an offer is open: the RescheduleAcceptance typed data to sign")
    requests: list[RescheduleAskedOut] = Field(description="the borrower's requests, oldest first")
    reschedules: list[RescheduleOut]

    model_config = {"json_schema_extra": {"examples": [
        {"loan_id": 7, "offer": _OFFER, "to_sign": None,
         "requests": [_ASKED],
         "reschedules": [_RESCHEDULE]}]}}

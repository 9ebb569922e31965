"""Request and response bodies shared by the routes (amounts are integers of minor units, times unix seconds)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, Field

from ledger.typed_data import Amortization, LoanTerms

DAY = 86_400
HEX_SIGNATURE = r"^0x[0-9a-fA-F]{130}$"
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
UINT96 = 2**96 - 1
# A loan id in a path: the loan book counts from 1, and the store keeps ids as BIGINT (a larger or
# negative one would fail in the ABI encoder or the database driver: a 500, not the client's 422).
LoanIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="the loan book's loan id")]


class AmortizationName(str, Enum):
    annuity = "annuity"
    equal_principal = "equal_principal"
    bullet = "bullet"

    def as_contract(self) -> Amortization:
        return {"annuity": Amortization.ANNUITY, "equal_principal": Amortization.EQUAL_PRINCIPAL,
                "bullet": Amortization.BULLET}[self.value]


class TermsIn(BaseModel):
    principal: int = Field(gt=0, le=UINT96, description="minor units")
    currency: str = Field("CNY", pattern=r"^[A-Z]{3}$")
    annual_rate_bps: int = Field(ge=0, le=65_535)
    amortization: AmortizationName = AmortizationName.annuity
    installments: int = Field(ge=1, le=360)
    interval_days: int = Field(ge=1, le=366)
    grace_days: int = Field(3, ge=0, le=60)
    late_fee_bps: int = Field(500, ge=0, le=10_000)
    penalty_rate_bps: int = Field(1_800, ge=0, le=65_535)
    default_after_days: int = Field(90, ge=1, le=3_650)

    model_config = {"json_schema_extra": {"examples": [{
        "principal": 120_000, "currency": "CNY", "annual_rate_bps": 2400, "amortization": "annuity",
        "installments": 3, "interval_days": 30, "grace_days": 3, "late_fee_bps": 500, "penalty_rate_bps": 1800,
        "default_after_days": 90}]}}

    def to_terms(self) -> LoanTerms:
        return LoanTerms(self.principal, self.currency.encode(), self.annual_rate_bps,
                         int(self.amortization.as_contract()), self.installments, self.interval_days * DAY,
                         self.grace_days * DAY, self.late_fee_bps, self.penalty_rate_bps, self.default_after_days * DAY)


class InstallmentOut(BaseModel):
    number: int
    due_at: int = Field(description="unix seconds; seconds after disbursement in a quote")
    principal: int
    interest: int


class QuoteOut(BaseModel):
    installments: list[InstallmentOut]
    total_principal: int
    total_interest: int


class RequestParams(BaseModel):
    chain_id: int
    loan_book: str
    nonce: int = Field(description="the borrower's next EIP-712 nonce on the loan book")
    deadline: int = Field(description="a suggested signature deadline (chain time + 1 hour)")


class ApplyIn(BaseModel):
    terms: TermsIn
    deadline: int = Field(gt=0, lt=2**64)
    signature: str = Field(pattern=HEX_SIGNATURE, description="EIP-712 LoanRequest signature by the borrower")


class CancelIn(BaseModel):
    deadline: int = Field(gt=0, lt=2**64)
    signature: str = Field(pattern=HEX_SIGNATURE, description="EIP-712 CancelLoan signature by the borrower")


class TxOut(BaseModel):
    tx_hash: str
    block_number: int


class ApplyOut(BaseModel):
    loan_id: int
    status: str
    tx_hash: str
    decision: str | None = Field(None, description="what the automatic policy did: approved, rejected:<reason>")


class AmountDueOut(BaseModel):
    loan_id: int
    as_of: int = Field(description="chain time the amounts are computed at")
    principal: int
    interest: int
    late_fee: int
    penalty: int
    total: int
    oldest_due_at: int | None
    payoff: int = Field(description="everything owed if paid now (prepayment: interest accrued to date only)")
    currency: str


class LoanOut(BaseModel):
    id: int
    borrower: str
    status: str
    principal: int
    currency: str
    annual_rate_bps: int
    amortization: str
    installments: int
    interval: int
    grace_period: int
    late_fee_bps: int
    penalty_rate_bps: int
    default_after: int
    requested_at: int
    disbursed_at: int
    closed_at: int | None
    paid_installments: int
    principal_repaid: int
    interest_paid: int
    late_fee_paid: int
    penalty_paid: int
    principal_written_off: int
    next_due_at: int | None
    days_past_due: int
    schedule: list[InstallmentOut] = []


class LoanList(BaseModel):
    loans: list[LoanOut]
    next_cursor: str | None = None


class RepaymentInstructions(BaseModel):
    loan_id: int
    rail_url: str
    method: str
    body: dict
    amount_due_now: int
    payoff_now: int
    currency: str
    note: str


class CreditOut(BaseModel):
    address: str
    score: int | None = Field(description="None until the oracle has scored this borrower")
    credit_limit: int
    model_version: int | None
    updated_at: int | None
    fresh: bool = Field(description="whether the loan book may approve on this score now")
    outstanding_principal: int
    available: int = Field(description="credit limit minus outstanding principal (never negative)")

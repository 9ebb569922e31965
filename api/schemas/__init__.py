"""Request and response bodies shared by the routes (amounts are integers of minor units, times unix seconds)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.products import EARLY_REPAYMENT
from ledger.book import LoanStatus

DAY = 86_400
HEX_SIGNATURE = r"^0x[0-9a-fA-F]{130}$"
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
UINT96 = 2**96 - 1
# A loan id in a path: the loan book counts from 1, and the store keeps ids as BIGINT (a larger or
# negative one would fail in the ABI encoder or the database driver: a 500, not the client's 422).
LoanIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="the loan book's loan id")]

# The examples in /docs tell one story: loan 1 of 120,000 fen (CNY minor units) from product 1 version 1 (24% a
# year, three annuity installments 30 days apart, no service fee), requested on the local anvil chain (31337) and
# disbursed 2026-01-01 00:00 UTC; the schedule is the loan book's own `quote` of those terms. Addresses are anvil's
# well-known accounts.
EXAMPLE_BORROWER = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
EXAMPLE_LOAN_BOOK = "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"  # deployed after the registry, oracle, catalogue
EXAMPLE_TX = "0x7cb07dcdbae4a95514d1f3ae85fc422608f777dce1df2aeb428d8d4b87ce7958"
EXAMPLE_DISBURSED_AT = 1_767_225_600
EXAMPLE_SCHEDULE = [
    {"number": 1, "due_at": 1_769_817_600, "principal": 39_221, "interest": 2_367},
    {"number": 2, "due_at": 1_772_409_600, "principal": 39_995, "interest": 1_593},
    {"number": 3, "due_at": 1_775_001_600, "principal": 40_784, "interest": 805},
]
EXAMPLE_LOAN = {
    "id": 1, "borrower": EXAMPLE_BORROWER, "status": "Active", "principal": 120_000, "currency": "CNY",
    "annual_rate_bps": 2400, "amortization": "Annuity", "installments": 3, "interval": 30 * DAY,
    "grace_period": 3 * DAY, "late_fee_bps": 500, "penalty_rate_bps": 1200, "default_after": 90 * DAY,
    "service_fee": 0, "frequency": "FixedInterval", "day_count": "Actual365Fixed",
    "early_repayment": "ReduceInstallments", "product_id": 1, "product_version": 1, "auto_approvable": True,
    "requested_at": 1_767_225_000, "disbursed_at": EXAMPLE_DISBURSED_AT, "closed_at": None, "paid_installments": 1,
    "principal_repaid": 39_221, "interest_paid": 2_367, "late_fee_paid": 0, "penalty_paid": 0,
    "principal_written_off": 0, "credit_balance": 0, "recovered": 0, "next_due_at": 1_772_409_600, "days_past_due": 0, "schedule": EXAMPLE_SCHEDULE,
}


class InstallmentOut(BaseModel):
    number: int = Field(description="1 for the first installment")
    due_at: int = Field(description="unix seconds; seconds after disbursement in a quote")
    principal: int = Field(description="minor units")
    interest: int = Field(description="minor units")

    # from_attributes: read from a read-model row (ledger.store.models.chain.ScheduleRow) by field name.
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [EXAMPLE_SCHEDULE[0]]})


class RequestParams(BaseModel):
    chain_id: int
    loan_book: str
    nonce: int = Field(description="the borrower's next EIP-712 nonce on the loan book")
    deadline: int = Field(description="a suggested signature deadline (chain time + 1 hour)")

    model_config = {"json_schema_extra": {"examples": [{
        "chain_id": 31337, "loan_book": EXAMPLE_LOAN_BOOK, "nonce": 0, "deadline": 1_767_228_600}]}}


class ApplyIn(BaseModel):
    """An application for a version of a product: the borrower signs (EIP-712 `LoanApplication`) the product id and
    version, the principal and the number of installments, with their nonce and this deadline; the loan book copies
    every other term from that version."""

    product_id: int = Field(ge=1, le=2**32 - 1, description="the product applied for (GET /v1/products)")
    product_version: int = Field(ge=1, le=2**32 - 1, description="the version the borrower consents to: the latest "
                                                                  "(an application for an older one is refused)")
    principal: int = Field(gt=0, le=UINT96, description="minor units, within the product's range")
    installments: int = Field(ge=1, le=2**16 - 1, description="within the product's allowed numbers")
    deadline: int = Field(gt=0, lt=2**64, description="unix seconds the signature is valid until (as signed)")
    signature: str = Field(pattern=HEX_SIGNATURE, description="EIP-712 LoanApplication signature by the borrower")

    # Signed by anvil's account 5 for product 1 version 1, nonce 0 and this deadline on chain 31337.
    model_config = {"json_schema_extra": {"examples": [{
        "product_id": 1, "product_version": 1, "principal": 120_000, "installments": 3, "deadline": 1_767_228_600,
        "signature": ("0xc8fdc4ad6c9d8cb62114cf60065cc50ada23daf90140ea55f6f3a83e05777024"
                      "658b0522b4d055d596ce60ba75dad4a8bc61ff23defaece284ff56fcb7e8a8a11c")}]}}


class CancelIn(BaseModel):
    deadline: int = Field(gt=0, lt=2**64, description="unix seconds the signature is valid until (as signed)")
    signature: str = Field(pattern=HEX_SIGNATURE, description="EIP-712 CancelLoan signature by the borrower")

    # Signed by anvil's account 5 for loan 1, nonce 1 and this deadline on chain 31337.
    model_config = {"json_schema_extra": {"examples": [{
        "deadline": 1_767_228_600,
        "signature": ("0xcb094176491fc94bfd827b4819c80d11f7f484a32d0b39ebbd12005f098546a8"
                      "6ddbf107528791939828e5d8a5b0536aa4053084f34cbb7aa2769c32436fa3361b")}]}}


class TxOut(BaseModel):
    tx_hash: str = Field(description="0x + 64 hex digits")
    block_number: int
    signed_by: str | None = Field(None, description="who signed the decision with their own wallet (relayed by the "
                                                    "API); null for what a service account sent")

    model_config = {"from_attributes": True,
                    "json_schema_extra": {"examples": [{"tx_hash": EXAMPLE_TX, "block_number": 118}]}}


class ApplyOut(BaseModel):
    """The relayed application. The API decides nothing: the automatic policy (its own process and key) approves,
    or rejects with the loan book's reason, shortly after a loan its product lets it decide, an operator any
    other; `GET /v1/loans/{loan_id}` (the SDK's `wait_for_decision`) shows the decision."""

    loan_id: int
    status: str = Field(description="Requested (a retried request answers what the loan became since: Approved, "
                                    "Rejected)")
    tx_hash: str = Field(description="the relayed LoanRequested transaction")
    decision: str | None = Field(None, description="null: not decided yet (the automatic policy decides shortly "
                                                   "after, or an operator); a retried request's: approved, rejected")

    model_config = {"json_schema_extra": {"examples": [
        {"loan_id": 2, "status": "Requested", "tx_hash": EXAMPLE_TX, "decision": None}]}}


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
    next_due_at: int | None = Field(description="the next due date after now (none once nothing is scheduled)")
    owed_at_next_due: int = Field(description=(
        "what will be owed on next_due_at if nothing more is paid: what is owed now, and the next installment as "
        "the loan book will ask it (after a payment ahead of schedule it can differ from the schedule's row: "
        "interest of the time the principal was still owed is carried into it)"))
    currency: str

    # On the first due date, nothing paid yet: installment 1 is due; paying off now costs 120,000 + 2,367; if
    # nothing is paid, on the second due date installments 1 and 2 are owed, with the first's late fee (2,079) and
    # penalty (369).
    model_config = {"json_schema_extra": {"examples": [{
        "loan_id": 1, "as_of": 1_769_817_600, "principal": 39_221, "interest": 2_367, "late_fee": 0, "penalty": 0,
        "total": 41_588, "oldest_due_at": 1_769_817_600, "payoff": 122_367, "next_due_at": 1_772_409_600,
        "owed_at_next_due": 85_624, "currency": "CNY"}]}}


class LoanOut(BaseModel):
    id: int
    borrower: str
    status: str = Field(description=", ".join(s.solidity_name for s in LoanStatus if s is not LoanStatus.NONE))
    principal: int
    currency: str
    annual_rate_bps: int
    amortization: str = Field(description="Annuity, EqualPrincipal or Bullet")
    installments: int
    interval: int = Field(description="seconds between installments (0: monthly, on the calendar)")
    grace_period: int = Field(description="seconds after a due date before a late fee is charged")
    late_fee_bps: int
    penalty_rate_bps: int
    default_after: int = Field(description="seconds past due after which the loan may be declared in default")
    service_fee: int = Field(description="charged up front: the payout is the principal less this")
    frequency: str = Field(description="FixedInterval (every `interval` seconds) or Monthly (the payout's day of the "
                                       "month, the month's last day when it is shorter)")
    day_count: str = Field(description="a period's share of the annual rate: Actual365Fixed or Thirty360")
    early_repayment: str = Field(description=EARLY_REPAYMENT)
    product_id: int = Field(description="the product the terms were copied from (0: a loan made before products)")
    product_version: int = Field(description="the version of it the borrower signed for")
    auto_approvable: bool = Field(description="whether the product let the automatic policy approve this loan")
    requested_at: int
    disbursed_at: int = Field(description="unix seconds; 0 until disbursed")
    closed_at: int | None
    paid_installments: int
    principal_repaid: int
    interest_paid: int
    late_fee_paid: int
    penalty_paid: int
    principal_written_off: int
    credit_balance: int = Field(description="Overpaid: paid beyond the payoff, held for the borrower until refunded")
    recovered: int = Field(description="WrittenOff: recovered since the write-off")
    next_due_at: int | None
    days_past_due: int
    schedule: list[InstallmentOut] = []

    # `LoanOut.model_validate(row)` reads a read-model Loan (its schedule already ordered by number).
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [EXAMPLE_LOAN]})

    @field_validator("disbursed_at", mode="before")
    @classmethod
    def _zero_until_disbursed(cls, value: int | None) -> int:
        return value or 0


class LoanList(BaseModel):
    loans: list[LoanOut]
    next_cursor: str | None = Field(None, description="audit list: pass as ?cursor= for the next page; null on the last")

    model_config = {"json_schema_extra": {"examples": [{"loans": [EXAMPLE_LOAN], "next_cursor": None}]}}


class RepaymentInstructions(BaseModel):
    loan_id: int
    rail_url: str
    method: str
    body: dict
    amount_due_now: int
    payoff_now: int
    currency: str
    note: str

    model_config = {"json_schema_extra": {"examples": [{
        "loan_id": 1, "rail_url": "http://127.0.0.1:8700", "method": "POST http://127.0.0.1:8700/v1/collections",
        "body": {"loan_id": 1, "amount": 41_588, "currency": "CNY"}, "amount_due_now": 41_588, "payoff_now": 122_367,
        "currency": "CNY",
        "note": "Pay any amount up to the payoff; it is credited on-chain once the rail confirms it. "
                "Fees and penalty are paid first, then interest, then principal, oldest installment first."}]}}


class CreditOut(BaseModel):
    address: str
    score: int | None = Field(description="None until the oracle has scored this borrower")
    credit_limit: int
    model_version: int | None
    updated_at: int | None
    score_age: int | None = Field(None, description="seconds since the score was pushed, on the chain's clock")
    fresh: bool = Field(description="whether the loan book may approve on this score now")
    outstanding_principal: int
    available: int = Field(description="credit limit minus outstanding principal (never negative); zero while "
                                       "the score is not fresh, since the loan book then approves nothing")

    model_config = {"json_schema_extra": {"examples": [{
        "address": EXAMPLE_BORROWER, "score": 700, "credit_limit": 1_000_000, "model_version": 1,
        "updated_at": 1_767_139_200, "score_age": 86_400, "fresh": True, "outstanding_principal": 80_779,
        "available": 919_221}]}}

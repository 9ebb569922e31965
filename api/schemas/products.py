"""Loan products as the API shows them (one version of a product, every term, read from the ProductCatalog) and as
an operator publishes them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field, field_validator

DAY = 86_400
MAX_ID = 2**63 - 1
# The product's early-repayment method (one wording for products and loans).
EARLY_REPAYMENT = ("what an amount paid beyond what is due is to do: ReduceInstallments (keep the installment "
                   "amount, shorten the schedule) or ReduceInstallmentAmount (keep the count, smaller installments). "
                   "A payment ahead of schedule first pays the current installment (interest accrued to date, then "
                   "its principal); the loan book applies the method to what is left: it prepays principal, and the "
                   "installments after it are recomputed (event ScheduleRebased), interest running only on the "
                   "principal owed")

ProductIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="the product's id (ids run from 1)")]
VersionQuery = Annotated[int | None, Query(ge=1, le=2**32 - 1, description="an older version; default: the latest")]

EXAMPLE_PRODUCT = {
    "id": 1, "version": 2, "latest_version": 2, "retired": False, "name": "3-month", "currency": "CNY",
    "min_principal": 1_000_000, "max_principal": 50_000_000, "min_installments": 3, "max_installments": 3,
    "frequency": "FixedInterval", "day_count": "Actual365Fixed",
    "interval": 30 * DAY, "annual_rate_bps": 1800, "amortization": "Annuity",
    "grace_period": 3 * DAY, "late_fee_bps": 500, "penalty_rate_bps": 1200, "default_after": 90 * DAY,
    "service_fee_bps": 100, "early_repayment": "ReduceInstallments", "auto_approve": True,
    "auto_approve_max_principal": 5_000_000,
}


class ProductOut(BaseModel):
    """One version of a product (amounts in minor units of `currency`, durations in seconds)."""

    id: int
    version: int = Field(description="this version; a loan records the version it came from")
    latest_version: int = Field(description="the version open for applications (unless retired)")
    retired: bool = Field(description="no version of a retired product can be applied for")
    name: str
    currency: str = Field(description="ISO 4217 code")
    min_principal: int
    max_principal: int
    min_installments: int
    max_installments: int
    frequency: str = Field(description="FixedInterval (every `interval` seconds) or Monthly (the payout's day of the "
                                       "month, the month's last day when it is shorter)")
    day_count: str = Field(description="a period's share of the annual rate: Actual365Fixed (fixed intervals: actual "
                                       "seconds / 365 days) or Thirty360")
    interval: int = Field(description="seconds between installments (FixedInterval); Monthly: 0")
    annual_rate_bps: int = Field(description="nominal annual rate, basis points")
    amortization: str = Field(description="Annuity, EqualPrincipal or Bullet")
    grace_period: int = Field(description="seconds after a due date before an installment is late")
    late_fee_bps: int = Field(description="one-off late fee, bps of the unpaid installment")
    penalty_rate_bps: int = Field(description="penalty interest on overdue amounts, annual bps")
    default_after: int = Field(description="seconds past due before the loan may be declared in default")
    service_fee_bps: int = Field(description="up-front fee, bps of principal, deducted from the payout")
    early_repayment: str = Field(description=EARLY_REPAYMENT)
    auto_approve: bool = Field(description="whether the automatic policy may approve applications for it")
    auto_approve_max_principal: int = Field(description="the highest principal the automatic policy approves")

    model_config = {"json_schema_extra": {"examples": [EXAMPLE_PRODUCT]}}


class ProductList(BaseModel):
    products: list[ProductOut] = Field(description="the live products (latest version, not retired), by id")

    model_config = {"json_schema_extra": {"examples": [{"products": [EXAMPLE_PRODUCT]}]}}


EXAMPLE_PRODUCT_IN = {k: v for k, v in EXAMPLE_PRODUCT.items() if k not in ("id", "version", "latest_version", "retired")}


class ProductIn(BaseModel):
    """A product to publish, or a product's new version: every term (amounts in minor units, durations in seconds).

    The catalogue checks it (bounds, the all-in cost cap at every allowed principal and count, late-charge
    ceilings) and refuses it naming what is wrong.
    """

    name: str = Field(min_length=1, max_length=32, description="display name, at most 32 bytes of UTF-8")
    currency: str = Field(pattern="^[A-Z]{3}$", description="ISO 4217 code")
    min_principal: int = Field(ge=1, le=2**96 - 1)
    max_principal: int = Field(ge=1, le=2**96 - 1)
    min_installments: int = Field(ge=1, le=2**16 - 1)
    max_installments: int = Field(ge=1, le=2**16 - 1)
    frequency: Literal["FixedInterval", "Monthly"] = "FixedInterval"
    day_count: Literal["Actual365Fixed", "Thirty360"] = "Actual365Fixed"
    interval: int = Field(ge=0, le=2**32 - 1, description="seconds between installments (FixedInterval); Monthly: 0")
    annual_rate_bps: int = Field(ge=0, le=2**16 - 1)
    amortization: Literal["Annuity", "EqualPrincipal", "Bullet"]
    grace_period: int = Field(ge=0, le=2**32 - 1)
    late_fee_bps: int = Field(ge=0, le=2**16 - 1)
    penalty_rate_bps: int = Field(ge=0, le=2**16 - 1)
    default_after: int = Field(ge=0, le=2**32 - 1)
    service_fee_bps: int = Field(0, ge=0, le=2**16 - 1)
    early_repayment: Literal["ReduceInstallments", "ReduceInstallmentAmount"] = "ReduceInstallments"
    auto_approve: bool = False
    auto_approve_max_principal: int = Field(0, ge=0, le=2**96 - 1)

    model_config = {"json_schema_extra": {"examples": [EXAMPLE_PRODUCT_IN]}}

    @field_validator("name")
    @classmethod
    def _fits_bytes32(cls, name: str) -> str:
        if len(name.encode("utf-8")) > 32:
            raise ValueError("at most 32 bytes of UTF-8")
        return name


class ProductTxOut(BaseModel):
    """A product published, changed or retired: which version it is at now, and the transaction."""

    action: str = Field(description="product.create, product.change or product.retire")
    product_id: int
    version: int = Field(description="the version created (create, change) or the latest one (retire)")
    tx_hash: str
    block_number: int
    signed_by: str = Field(description="the operator who signed the change with their own wallet")

    model_config = {"json_schema_extra": {"examples": [{
        "action": "product.create", "product_id": 1, "version": 1, "block_number": 42,
        "tx_hash": "0x" + "ab" * 32, "signed_by": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}]}}


PrincipalQuery = Annotated[int, Query(gt=0, le=2**96 - 1, description="minor units, within the product's range")]
InstallmentsQuery = Annotated[int, Query(ge=1, le=2**16 - 1, description="within the product's allowed numbers")]
QuoteVersionQuery = Annotated[int | None, Query(ge=1, le=2**32 - 1, description=(
    "the version to quote, as the borrower will sign it (default: the latest; an older one is refused, as its "
    "application would be)"))]

# Product 1 (EXAMPLE_PRODUCT, 18% a year, a 1% fee) quoted for 10,000,000 fen in three installments 30 days apart:
# the schedule is the loan book's own `quote` of those terms.
EXAMPLE_QUOTE = {
    "product_id": 1, "product_version": 2, "currency": "CNY", "principal": 10_000_000, "installments": 3,
    "interval": 30 * DAY, "frequency": "FixedInterval", "annual_rate_bps": 1800, "amortization": "Annuity",
    "service_fee": 100_000, "net_paid_out": 9_900_000, "auto_approvable": False,
    "schedule": [{"number": 1, "due_at": 30 * DAY, "principal": 3_284_501, "interest": 147_945},
                 {"number": 2, "due_at": 60 * DAY, "principal": 3_333_094, "interest": 99_353},
                 {"number": 3, "due_at": 90 * DAY, "principal": 3_382_405, "interest": 50_041}],
    "total_interest": 297_339, "total_repaid": 10_297_339, "total_cost": 397_339,
    "cost_cap_bps": 2400, "within_cost_cap": True,
}


class QuoteInstallment(BaseModel):
    number: int = Field(description="1 for the first installment")
    due_at: int = Field(description="seconds after disbursement, for a payout at the quote's time (a monthly "
                                    "schedule's dates follow the calendar from it: 28 to 31 days apart)")
    principal: int = Field(description="minor units")
    interest: int = Field(description="minor units")

    model_config = {"json_schema_extra": {"examples": [EXAMPLE_QUOTE["schedule"][0]]}}


class ProductQuoteOut(BaseModel):
    """What an application for this product version, principal and number of installments would be: the terms the
    catalogue derives, and the schedule the loan book computes for them (nothing here is computed by the API)."""

    product_id: int
    product_version: int = Field(description="the version quoted: sign for this one to apply")
    currency: str
    principal: int
    installments: int
    interval: int = Field(description="seconds between installments (FixedInterval; 0 for Monthly)")
    frequency: str
    annual_rate_bps: int = Field(description="nominal annual rate, basis points")
    amortization: str
    service_fee: int = Field(description="charged up front, deducted from the payout")
    net_paid_out: int = Field(description="what the borrower receives: principal less the service fee")
    auto_approvable: bool = Field(description="whether the automatic policy may approve it (else an operator decides)")
    schedule: list[QuoteInstallment] = Field(description="the loan book's own schedule for these terms")
    total_interest: int
    total_repaid: int = Field(description="principal plus interest: every installment")
    total_cost: int = Field(description="interest plus the service fee: what borrowing costs")
    cost_cap_bps: int = Field(description="the all-in annualised cost the contracts allow (interest and fees)")
    within_cost_cap: bool = Field(description="the catalogue's check: the installments discounted at the cap's rate "
                                              "are worth at most the net amount paid out")

    model_config = {"json_schema_extra": {"examples": [EXAMPLE_QUOTE]}}

"""Loan products as the API shows them (one version of a product, every term, read from the ProductCatalog) and as
an operator publishes them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field, field_validator

DAY = 86_400
MAX_ID = 2**63 - 1

ProductIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="the product's id (ids run from 1)")]
VersionQuery = Annotated[int | None, Query(ge=1, le=2**32 - 1, description="an older version; default: the latest")]

EXAMPLE_PRODUCT = {
    "id": 1, "version": 2, "latest_version": 2, "retired": False, "name": "3-month", "currency": "CNY",
    "min_principal": 1_000_000, "max_principal": 50_000_000, "min_installments": 3, "max_installments": 3,
    "frequency": "FixedInterval", "interval": 30 * DAY, "annual_rate_bps": 1800, "amortization": "Annuity",
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
    frequency: str = Field(description="FixedInterval (every `interval` seconds) or Monthly")
    interval: int = Field(description="seconds between installments (FixedInterval)")
    annual_rate_bps: int = Field(description="nominal annual rate, basis points")
    amortization: str = Field(description="Annuity, EqualPrincipal or Bullet")
    grace_period: int = Field(description="seconds after a due date before an installment is late")
    late_fee_bps: int = Field(description="one-off late fee, bps of the unpaid installment")
    penalty_rate_bps: int = Field(description="penalty interest on overdue amounts, annual bps")
    default_after: int = Field(description="seconds past due before the loan may be declared in default")
    service_fee_bps: int = Field(description="up-front fee, bps of principal, deducted from the payout")
    early_repayment: str = Field(description="what an amount beyond what is due does: ReduceInstallments or "
                                             "ReduceInstallmentAmount (either way it pays principal)")
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
    interval: int = Field(ge=0, le=2**32 - 1, description="seconds between installments (FixedInterval)")
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

    model_config = {"json_schema_extra": {"examples": [{
        "action": "product.create", "product_id": 1, "version": 1, "block_number": 42,
        "tx_hash": "0x" + "ab" * 32}]}}

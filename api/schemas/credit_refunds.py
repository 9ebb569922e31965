"""Credit refunds: an Overpaid loan's credit paid back to its borrower (api.services.credit_refunds)."""

from __future__ import annotations

from pydantic import BaseModel, Field

_EXAMPLE = {
    "id": 1, "loan_id": 3, "payment_ref": "0x8f2c1d7a0b3e45f69a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6",
    "provider": "mockpay", "payment_reference": "COL-00000007-a41b9e",
    "idempotency_key": "credit-refund:mockpay:COL-00000007-a41b9e", "amount": 5_000, "currency": "CNY",
    "state": "settled", "refund_reference": "REF-00000009-0c7d21", "attempts": 1, "last_error": None,
    "ordered_by": "0x90F79bf6EB2c4f870365E785982E1f101E93b906", "ordered_at": 1_767_225_700,
    "sent_at": 1_767_225_700, "settled_at": 1_767_225_712, "failed_at": None}


class CreditRefundOut(BaseModel):
    """A refund of a loan's credit balance: recorded before the provider was asked, executed by it once."""

    id: int
    loan_id: int
    payment_ref: str = Field(description="the overpaying repayment on-chain (keccak(provider:reference))")
    provider: str = Field(description="the provider that delivered the overpayment: the refund goes back that way")
    payment_reference: str = Field(description="the rail's reference of the overpaying payment")
    idempotency_key: str = Field(description="the key the provider executes once (it names the overpayment)")
    amount: int = Field(description="the credit refunded, minor units of currency")
    currency: str
    state: str = Field(description="ordered | sent | settled | failed; sent without refund_reference: outcome "
                                   "not yet known; sent with it: taken by the provider, not yet on-chain")
    refund_reference: str | None = Field(None, description="the provider's reference of the refund, once known")
    attempts: int
    last_error: str | None = None
    ordered_by: str
    ordered_at: int = Field(description="unix seconds")
    sent_at: int | None = None
    settled_at: int | None = Field(None, description="when the refund was seen on-chain (the credit closed)")
    failed_at: int | None = None

    model_config = {"from_attributes": True, "json_schema_extra": {"examples": [_EXAMPLE]}}


class CreditRefundList(BaseModel):
    orders: list[CreditRefundOut] = Field(description="newest first")

    model_config = {"json_schema_extra": {"examples": [{"orders": [_EXAMPLE]}]}}

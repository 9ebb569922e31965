"""The operator's and admin's request and response bodies, with the examples /docs shows."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import ADDRESS, TxOut
from api.schemas.four_eyes import ProposalOut
from api.schemas.signed import SignedRequestIn, SignedRequestsIn, signed_example
from api.services.roles import ALL_CONTRACTS
from ledger.store.models.suspense import SuspenseState

# Anvil's well-known accounts, as in the other examples.
_BOB = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"
_SIGNER = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
_NEW_SIGNER = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"
_AUDITOR = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=32, description="at most 32 bytes; stored on-chain")

    model_config = {"json_schema_extra": {"examples": [{"reason": "income_unverified"}]}}


class SignedReasonIn(ReasonIn, SignedRequestIn):
    """A reason, and the decision with that reason signed by the signed-in operator."""

    model_config = signed_example(ReasonIn)


class Decision(BaseModel):
    loan_id: int
    decision: str = Field(description="approved, or rejected:<reason> (stale_score, over_limit, not_eligible)")
    block_number: int
    signed_by: str | None = Field(None, description="the operator who signed it (null: the automatic policy)")

    model_config = {"json_schema_extra": {"examples": [
        {"loan_id": 1, "decision": "approved", "block_number": 117,
         "signed_by": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"},
        {"loan_id": 2, "decision": "rejected:over_limit", "block_number": 121,
         "signed_by": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}]}}


class PolicyIn(BaseModel):
    auto_approve: bool = Field(description="approve each application as it arrives, if the loan book allows")

    model_config = {"json_schema_extra": {"examples": [{"auto_approve": True}]}}


class PolicyOut(BaseModel):
    auto_approve: bool

    model_config = {"json_schema_extra": {"examples": [{"auto_approve": True}]}}


class RoleIn(BaseModel):
    role: str = Field(pattern="^(operator|oracle|pauser|admin|score_signer)$")
    account: str = Field(pattern=ADDRESS)
    contracts: list[str] | None = Field(None, description=(
        f"where to grant or revoke, among {', '.join(ALL_CONTRACTS)}; a contract without that role is skipped. "
        "Default: a grant goes only where a contract checks the role (as the deploy grants it), a revocation "
        "everywhere"))

    model_config = {"json_schema_extra": {"examples": [{
        "role": "operator", "account": _BOB, "contracts": ["LoanBook", "ProductCatalog"]}]}}


class SignedRoleIn(RoleIn, SignedRequestsIn):
    """A role change and its calls (one per contract changed) signed by the signed-in admin."""

    model_config = signed_example(RoleIn, several=True)


class RoleChange(BaseModel):
    role: str
    account: str
    transactions: list[TxOut] = Field(description="one per contract changed (none if it already was so)")
    proposals: list[ProposalOut] = Field(default_factory=list, description=(
        "one per contract where the admin does not decide alone (FourEyes; a contract whose admin role the admin "
        "renounced): proposed, awaiting a second admin's confirmation"))

    model_config = {"json_schema_extra": {"examples": [{
        "role": "operator", "account": _BOB,
        "transactions": [{"tx_hash": "0x47bb006c91539ecb9ba52283ff2cf92af350004d720305f9f6a019b073a950b7",
                          "block_number": 130},
                         {"tx_hash": "0xe65d30637b95eb7d242982822f73fa9a9fb557f9f89feb65f9c9c4e04bf31725",
                          "block_number": 131}]}]}}


class SignerRotationIn(BaseModel):
    old: str = Field(pattern=ADDRESS, description="the score signer to retire")
    new: str = Field(pattern=ADDRESS, description="the score signer to admit")

    model_config = {"json_schema_extra": {"examples": [{"old": _SIGNER, "new": _NEW_SIGNER}]}}


class SignedRotationIn(SignerRotationIn, SignedRequestsIn):
    """A rotation and its calls (the grant, then the revocation) signed by the signed-in admin."""

    model_config = signed_example(SignerRotationIn, several=True)


class AuditorIn(BaseModel):
    address: str = Field(pattern=ADDRESS)

    model_config = {"json_schema_extra": {"examples": [{"address": _AUDITOR}]}}


class AuditorList(BaseModel):
    auditors: list[str]

    model_config = {"json_schema_extra": {"examples": [{"auditors": [_AUDITOR]}]}}


_PAYOUT_KEY = "payout:31337:0x5FbDB2315678afecb367f032d93F642f64180aa3:1"
PAYOUT_STATES = "ordered | sent | settled | failed | cancelled"


class PayoutOut(BaseModel):
    """The loan's payout order as `/disburse` answers it: asking again answers the same order."""

    loan_id: int
    ordered: bool = Field(description="the order stands (not failed or cancelled)")
    state: str = Field(description=PAYOUT_STATES)
    rail_reference: str | None = Field(None, description="the payment rail's reference for the payout, once known")

    model_config = {"json_schema_extra": {"examples": [{
        "loan_id": 1, "ordered": True, "state": "sent", "rail_reference": "PAY-00000001-3f9a2c"}]}}


class PayoutOrderOut(BaseModel):
    """A payout order: one per loan, recorded before the provider was asked."""

    loan_id: int
    provider: str = Field(description="the payment provider it was ordered from")
    idempotency_key: str = Field(description="the key the provider executes once (it names the loan)")
    amount: int = Field(description="minor units of currency: the principal less the product's service fee")
    currency: str
    state: str = Field(description=PAYOUT_STATES + "; sent without rail_reference: outcome not yet known")
    rail_reference: str | None = Field(None, description="the provider's reference for the payment, once known")
    attempts: int = Field(description="times it was handed to the provider (same key each time)")
    last_error: str | None = None
    ordered_at: int = Field(description="unix seconds")
    sent_at: int | None = None
    settled_at: int | None = Field(None, description="when the disbursement was seen on-chain")
    failed_at: int | None = None
    cancelled_at: int | None = None
    updated_at: int

    model_config = {"from_attributes": True, "json_schema_extra": {"examples": [{
        "loan_id": 1, "provider": "mockpay", "idempotency_key": _PAYOUT_KEY, "amount": 120_000, "currency": "CNY",
        "state": "settled", "rail_reference": "PAY-00000001-3f9a2c", "attempts": 1, "last_error": None,
        "ordered_at": 1_767_225_600, "sent_at": 1_767_225_600, "settled_at": 1_767_225_604, "failed_at": None,
        "cancelled_at": None, "updated_at": 1_767_225_604}]}}


class PayoutOrderList(BaseModel):
    orders: list[PayoutOrderOut] = Field(description="newest first")

    model_config = {"json_schema_extra": {"examples": [{"orders": [PayoutOrderOut.model_config[
        "json_schema_extra"]["examples"][0]]}]}}


SUSPENSE_STATES = " | ".join(SuspenseState)
_REFUND_EXAMPLE = {
    "id": 1, "provider": "mockpay", "idempotency_key": "refund:mockpay:COL-00000007-a41b9e",
    "payment_reference": "COL-00000007-a41b9e", "amount": 24_394, "currency": "CNY", "state": "refunded",
    "refund_reference": "REF-00000009-0c7d21", "attempts": 1, "last_error": None,
    "ordered_by": "0x90F79bf6EB2c4f870365E785982E1f101E93b906", "ordered_at": 1_767_225_700,
    "sent_at": 1_767_225_700, "refunded_at": 1_767_225_701, "failed_at": None}


class RefundOrderOut(BaseModel):
    """A refund of a suspense item: recorded before the provider was asked, executed by it once."""

    id: int
    provider: str
    idempotency_key: str = Field(description="the key the provider executes once (it names the received payment)")
    payment_reference: str = Field(description="the rail's reference of the payment refunded")
    amount: int = Field(description="minor units of currency")
    currency: str
    state: str = Field(description="ordered | sent | refunded | failed; sent: outcome not yet known")
    refund_reference: str | None = Field(None, description="the rail's reference of the refund, once known")
    attempts: int
    last_error: str | None = None
    ordered_by: str
    ordered_at: int = Field(description="unix seconds")
    sent_at: int | None = None
    refunded_at: int | None = None
    failed_at: int | None = None

    model_config = {"from_attributes": True, "json_schema_extra": {"examples": [_REFUND_EXAMPLE]}}


class SuspenseItemOut(BaseModel):
    """Money the rail delivered that the loan book refused, held until an operator resolves it."""

    id: int
    provider: str
    reference: str = Field(description="the rail's own reference of the payment received")
    payment_ref: str = Field(description="keccak(provider:reference), the reference sent on-chain")
    loan_id: int = Field(description="the loan id as the rail named it (it may name no loan)")
    amount: int = Field(description="minor units of currency")
    currency: str
    reason: str = Field(description="why it could not be applied: the loan book's refusal (LoanBookOverpayment, "
                                    "CurrencyMismatch, LoanBookUnknownLoan, LoanBookInvalidStatus...), the outbox's "
                                    "(ItemUnusable: it could never be sent) or the webhook intake's "
                                    "(LoanIdOutOfRange, UnknownCurrency, AmountOutOfRange...)")
    detail: str | None = Field(None, description="the refusal in words, with the values the rail sent")
    paid_at: int | None = Field(None, description="unix seconds the rail says it was paid, when the book can "
                                                  "hold that time")
    outbox_item_id: int | None = Field(None, description="its confirmation in the oracle's outbox; null for a "
                                                         "webhook the intake refused, until it is applied")
    received_at: int = Field(description="unix seconds the oracle received it")
    state: str = Field(description=SUSPENSE_STATES)
    resolved_by: str | None = None
    resolved_at: int | None = None
    refund: RefundOrderOut | None = None

    model_config = {"from_attributes": True, "json_schema_extra": {"examples": [{
        "id": 1, "provider": "mockpay", "reference": "COL-00000007-a41b9e",
        "payment_ref": "0x8f2c1d7a0b3e45f69a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6", "loan_id": 1,
        "amount": 24_394, "currency": "CNY", "reason": "LoanBookOverpayment", "received_at": 1_767_225_600,
        "state": "refunded", "resolved_by": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        "resolved_at": 1_767_225_701, "refund": _REFUND_EXAMPLE}]}}


class SuspenseList(BaseModel):
    items: list[SuspenseItemOut] = Field(description="newest first")

    model_config = {"json_schema_extra": {"examples": [{"items": [SuspenseItemOut.model_config[
        "json_schema_extra"]["examples"][0]]}]}}


class ApplyToLoanIn(BaseModel):
    loan_id: int = Field(ge=1, le=2**63 - 1, description="the loan the payment was meant for")

    model_config = {"json_schema_extra": {"examples": [{"loan_id": 12}]}}

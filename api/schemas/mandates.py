"""Automatic debit (issue 17): a loan's debit mandate, what the borrower signs for one, and the revocation."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import HEX_SIGNATURE

_SIGNATURE = "0x" + "5d" * 64 + "1b"
_BOOK = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
_MANDATE = {"id": 1, "loan_id": 7, "borrower": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "card": "**** 1234",
            "max_amount": 50_000, "valid_until": 1_798_761_600, "nonce": 1, "created_at": 1_767_225_600,
            "revoked_at": None}
_COLLECTION = {"key": "debit-1-1769817600-1", "due_at": 1_769_817_600, "attempt": 1, "amount": 41_588,
               "status": "failed", "reason": "insufficient_funds", "retry_at": 1_769_904_000,
               "reference": "DEC-00000007-a1b2c3"}
_PARAMS = {"chain_id": 31337, "loan_book": _BOOK, "card": "**** 1234", "nonce": 2}


class MandateSignParams(BaseModel):
    """What goes into the DebitMandate message besides the borrower's own terms (ledger.typed_data.debit_mandate)."""

    chain_id: int
    loan_book: str = Field(description="the domain's verifyingContract")
    card: str = Field(description="the card bound now, masked as the message names it")
    nonce: int = Field(description="the nonce the next mandate must be signed with")

    model_config = {"json_schema_extra": {"examples": [_PARAMS]}}


class MandateOut(BaseModel):
    id: int
    loan_id: int
    borrower: str
    card: str = Field(description="masked: the last four digits only")
    max_amount: int = Field(description="the most one debit takes, in minor units")
    valid_until: int
    nonce: int
    created_at: int
    revoked_at: int | None = None

    model_config = {"from_attributes": True, "json_schema_extra": {"examples": [_MANDATE]}}


class CollectionOut(BaseModel):
    """One debit the collection run asked of the rail (oracle/collections.py): its attempt and outcome."""

    key: str = Field(description="the rail order's Idempotency-Key: debit-{mandate}-{due_at}-{attempt}")
    due_at: int
    attempt: int
    amount: int = Field(description="the loan book's amount due at the run, capped by the mandate")
    status: str = Field(description="pending, sent, collected, declined, failed (retry_at: the next attempt) or "
                                    "set_aside")
    reason: str | None = None
    retry_at: int | None = None
    reference: str | None = Field(None, description="the rail's reference")

    model_config = {"from_attributes": True, "json_schema_extra": {"examples": [_COLLECTION]}}


class MandateStatusOut(BaseModel):
    loan_id: int
    mandate: MandateOut | None = Field(description="the mandate in force (none: no automatic debit)")
    sign_params: MandateSignParams | None = Field(
        None, description="for the loan's borrower: what a new DebitMandate is signed over besides the terms")
    revocation_to_sign: dict | None = Field(
        None, description="for the loan's borrower with a mandate in force: the RevokeDebitMandate message to sign")
    collections: list[CollectionOut] = Field(default_factory=list,
                                             description="the loan's automatic debits, newest first (at most 50)")

    model_config = {"json_schema_extra": {"examples": [
        {"loan_id": 7, "mandate": _MANDATE, "sign_params": _PARAMS, "revocation_to_sign": None,
         "collections": [_COLLECTION]}]}}


class MandateIn(BaseModel):
    card: str = Field(min_length=6, max_length=32, description="the masked card, as signed (sign_params.card)")
    max_amount: int = Field(ge=1, lt=2**96, description="the most one debit may take, in minor units")
    valid_until: int = Field(gt=0, lt=2**40, description="unix seconds (chain time) the mandate holds until")
    nonce: int = Field(ge=1, lt=2**63, description="sign_params.nonce")
    signature: str = Field(pattern=HEX_SIGNATURE, description="EIP-712 DebitMandate signature by the borrower")

    model_config = {"json_schema_extra": {"examples": [{"card": "**** 1234", "max_amount": 50_000,
                                                        "valid_until": 1_798_761_600, "nonce": 1,
                                                        "signature": _SIGNATURE}]}}


class MandateRevokeIn(BaseModel):
    signature: str = Field(pattern=HEX_SIGNATURE, description="EIP-712 RevokeDebitMandate signature by the borrower")

    model_config = {"json_schema_extra": {"examples": [{"signature": _SIGNATURE}]}}


class MandateToSignOut(BaseModel):
    """A DebitMandate ready to sign: the typed data (ledger.typed_data, for eth_signTypedData_v4) and its terms, in
    figures and in words, as POST /v1/loans/{loan_id}/debit-mandate checks them."""

    loan_id: int
    card: str = Field(description="the card bound now, masked")
    max_amount: int = Field(description="the most one debit may take, in minor units")
    currency: str
    valid_until: int = Field(description="unix seconds (chain time) the mandate holds until")
    nonce: int
    summary: dict[str, str] = Field(description="what it authorises in plain words, by language (zh-CN, en)")
    typed_data: dict = Field(description="{domain, types (with EIP712Domain), primaryType, message}")

    model_config = {"json_schema_extra": {"examples": [{
        "loan_id": 7, "card": "**** 1234", "max_amount": 50_000, "currency": "CNY", "valid_until": 1_798_761_600,
        "nonce": 1, "summary": {"en": "Let the rail debit card **** 1234 on each due date of loan 7 for the amount "
                                      "due, at most CNY 500.00 a time, until 1 Jan 2027. You can revoke it at any "
                                      "time."},
        "typed_data": {"primaryType": "DebitMandate"}}]}}

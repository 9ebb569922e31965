"""Real-name verification's request and response bodies, with the examples /docs shows (records masked).

Identity fields are taken as typed and normalised by ledger.identity (the one normaliser: 422 naming the field);
one-time codes are read as ASCII digits here, so a code typed with a phone's full-width keyboard is the same code.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from ledger.identity import InvalidIdentity, ascii_digits
from ledger.kyc_status import KycStatus as KycState
from ledger.kyc_status import description

# The statuses as an inline enum of the OpenAPI schema (a Literal: the model below already has the name KycStatus).
KycStatusName = Literal[tuple(status.value for status in KycState)]


def _code_digits(value: object) -> object:
    """A code as ASCII digits ("４８２９１３" is "482913"); what is not digits is left for the pattern to refuse."""
    if not isinstance(value, str):
        return value
    try:
        return ascii_digits(value, "code")
    except InvalidIdentity:
        return value


def one_time_code(description: str):
    """A six-digit one-time code field: any script's digits (and spaces) read as ASCII, then exactly six of them."""
    return Annotated[str, BeforeValidator(_code_digits),
                     Field(pattern=r"^[0-9]{6}$", description=f"{description}: six digits (full-width or other "
                                                              "scripts' digits are read as the same digits)")]


PhoneCode = one_time_code("the code texted to confirm the phone number")
CardCode = one_time_code("the code the bank texted to the card's reserved phone, confirming the card binding")
NewPhoneCode = one_time_code("the code texted to the new number")


class KycIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    # Room for the separators people type (ledger.identity drops them); the values themselves are checked there.
    id_number: str = Field(min_length=1, max_length=64, description="18-digit resident identity number (spaces, "
                                                                    "full-width or other scripts' digits are read "
                                                                    "as the same number)")
    phone: str = Field(min_length=1, max_length=64, description="mainland mobile number: 11 digits, +86 / 0086 "
                                                                "optional; kept as E.164 (+86...)")
    bank_card: str = Field(min_length=1, max_length=64, description="debit card number (Luhn-checked)")

    model_config = {"json_schema_extra": {"examples": [{
        "name": "张三", "id_number": "11010519491231002X", "phone": "13800138000", "bank_card": "6222020200112233446"}]}}


class CodesIn(BaseModel):
    phone_code: PhoneCode
    card_code: CardCode

    model_config = {"json_schema_extra": {"examples": [{"phone_code": "482913", "card_code": "175046"}]}}


class CodeIn(BaseModel):
    code: NewPhoneCode

    model_config = {"json_schema_extra": {"examples": [{"code": "630281"}]}}


class PhoneIn(BaseModel):
    phone: str = Field(min_length=1, max_length=64, description="the new mainland mobile number (as for KycIn)")

    model_config = {"json_schema_extra": {"examples": [{"phone": "13912345678"}]}}


class MaskedOut(BaseModel):
    name: str
    id_number: str
    phone: str
    bank_card: str

    model_config = {"from_attributes": True, "json_schema_extra": {"examples": [{
        "name": "张*", "id_number": "110***********002X", "phone": "138****8000", "bank_card": "****3446"}]}}


class NextStepOut(BaseModel):
    action: str = Field(description="submit | verify | renew | change_phone | verify_phone | wait | apply | "
                                    "contact_support")
    route: str = Field(description="the route that does it (empty: a person's, e.g. support)")
    description: str

    model_config = {"json_schema_extra": {"examples": [{
        "action": "verify", "route": "POST /v1/kyc/verify", "description": "confirm the codes sent to the phone"}]}}


_EXAMPLE_RECORD = MaskedOut.model_config["json_schema_extra"]["examples"][0]


class KycStatus(BaseModel):
    """What every KYC route answers: the status after the step (what GET /v1/kyc shows), with the expiry and the
    ways out (docs/borrower.md has the table of statuses and transitions)."""

    status: KycStatusName = Field(description="one of ledger.kyc_status.KycStatus: " + description())
    record: MaskedOut | None = Field(None, description="the record as its owner may see it: masked (during a phone "
                                                       "change, with the new number)")
    commitment: str | None = Field(None, description="the salted hash of the record registered on-chain")
    codes_expire_at: int | None = Field(None, description="codes awaited: unix seconds the codes are valid until")
    kyc_expires_at: int | None = Field(None, description="the registry's kycExpiresAt: unix seconds")
    kyc_expires_at_iso: str | None = Field(None, description="the same, ISO 8601 (UTC)")
    renewal: bool = Field(False, description="the application awaiting its codes renews a verified record")
    renewal_opens_at: int | None = Field(None, description="registered: unix seconds from which a renewal is taken")
    next: list[NextStepOut] = Field(default_factory=list, description="what the borrower can do next")
    tx_hash: str | None = Field(None, description="the registration transaction, when this call registered (KYC "
                                "registrations are sent by the oracle: see GET /v1/kyc for when it landed)")

    model_config = {"json_schema_extra": {"examples": [
        {"status": "submitted", "record": _EXAMPLE_RECORD, "codes_expire_at": 1767227400,
         "next": [{"action": "verify", "route": "POST /v1/kyc/verify",
                   "description": "confirm the codes sent to the phone"}]},
        {"status": "registering", "record": _EXAMPLE_RECORD,
         "commitment": "0x38f78745b82e6b53762316d8a03d9d7dce0e3dcbb2ee692f46bbb5364734dce2",
         "next": [{"action": "wait", "route": "GET /v1/kyc", "description": "nothing to do: the oracle registers "
                   "it on-chain (retried if the node is away)"}]},
        {"status": "expiring", "record": _EXAMPLE_RECORD,
         "commitment": "0x38f78745b82e6b53762316d8a03d9d7dce0e3dcbb2ee692f46bbb5364734dce2",
         "kyc_expires_at": 1798761600, "kyc_expires_at_iso": "2027-01-01T00:00:00Z", "renewal_opens_at": 1796169600,
         "next": [{"action": "renew", "route": "POST /v1/kyc", "description": "renew: submit your record again "
                   "(same ID number); new codes go to the phone"}]}]}}

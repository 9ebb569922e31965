"""The bodies the client sends and the answers it reads, mirrored from the API's OpenAPI document.

Each model has the name of the schema it mirrors (`ApplyIn` is `#/components/schemas/ApplyIn`), and
tests/api/test_client.py checks them against `create_app().openapi()`: a request body must have the
server's fields, types and defaults (the client signs the application the server will check),
an answer's fields must exist on the server with the same types. Defined here rather than imported so a
borrower's client does not carry the server (FastAPI, SQLAlchemy, the store) along.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ApplyIn(BaseModel):
    product_id: int
    product_version: int
    principal: int
    installments: int
    deadline: int
    signature: str


class CancelIn(BaseModel):
    deadline: int
    signature: str


class NonceIn(BaseModel):
    address: str | None = None  # the signer: the answer then carries the message to sign


class LoginIn(BaseModel):
    message: str
    signature: str


class KycIn(BaseModel):
    name: str
    id_number: str
    phone: str
    bank_card: str


class CodesIn(BaseModel):
    phone_code: str
    card_code: str


class CodeIn(BaseModel):
    code: str


class PhoneIn(BaseModel):
    phone: str


# Decisions signed by the staff member who makes them (POST /v1/operator/requests prepares what to sign).

ACTIONS = ("loan.approve", "loan.reject", "loan.write_off", "loan.declare_default", "loan.reschedule_offer",
           "product.create", "product.change", "product.retire", "system.pause", "system.unpause", "role.grant", "role.revoke",
           "oracle_signer.rotate", "borrower.register", "borrower.revoke", "proposal.confirm", "proposal.cancel")


class PrepareIn(BaseModel):
    action: Literal[ACTIONS]  # type: ignore[valid-type]
    params: dict[str, Any] = Field(default_factory=dict)


class ForwardRequestMessage(BaseModel):
    from_: str = Field(alias="from")
    to: str
    value: int
    gas: int
    nonce: int
    deadline: int
    data: str

    model_config = {"populate_by_name": True}


class SignedRequestIn(BaseModel):
    request: ForwardRequestMessage
    signature: str


class SignedRequestsIn(BaseModel):
    requests: list[SignedRequestIn]


class SignedReasonIn(SignedRequestIn):
    reason: str


class PreparedRequest(BaseModel):
    typed_data: dict[str, Any]
    summary: str


class PreparedOut(BaseModel):
    action: str
    signer: str
    summary: str
    requests: list[PreparedRequest]


class PolicyIn(BaseModel):
    auto_approve: bool


class AuditorIn(BaseModel):
    address: str


# Answers the client reads fields of (the others it hands back as parsed JSON).


class NonceOut(BaseModel):
    nonce: str
    domain: str
    uri: str
    chain_id: int
    expires_at: int
    message: str | None = None  # the EIP-4361 message to sign, when the request named the address


class TokenOut(BaseModel):
    token: str
    expires_at: int
    address: str
    roles: list[str]


class RequestParams(BaseModel):
    chain_id: int
    loan_book: str
    nonce: int
    deadline: int


REQUESTS: tuple[type[BaseModel], ...] = (ApplyIn, CancelIn, NonceIn, LoginIn, KycIn, CodesIn, CodeIn, PhoneIn,
                                         PolicyIn, AuditorIn, PrepareIn, ForwardRequestMessage, SignedRequestIn,
                                         SignedRequestsIn, SignedReasonIn)
RESPONSES: tuple[type[BaseModel], ...] = (NonceOut, TokenOut, RequestParams, PreparedOut, PreparedRequest)

"""Decisions signed by the person who makes them: the request to prepare one, the typed data to sign, and the
signed request a decision route takes back (api.services.signed_requests checks and relays it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas import ADDRESS
from api.schemas.products import EXAMPLE_PRODUCT_IN, ProductIn
from api.services.signed_requests import Signed
from ledger import forwarding

_OPERATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
_BOOK = "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"
_SIGNATURE = "0x" + "5d" * 64 + "1b"

ACTIONS = ("loan.approve", "loan.reject", "loan.write_off", "loan.declare_default", "loan.reschedule_offer",
           "product.create", "product.change", "product.retire", "system.pause", "system.unpause", "role.grant", "role.revoke",
           "oracle_signer.rotate", "borrower.register", "borrower.revoke", "proposal.confirm", "proposal.cancel")
SIGNED_FIELDS = {"request", "signature", "requests"}  # authorisation, not the operation: left out of idempotency


class ForwardRequestMessage(BaseModel):
    """The EIP-712 `ForwardRequest` message, as prepared and signed (the forwarder's domain is the deployment's)."""

    from_: str = Field(alias="from", pattern=ADDRESS, description="the signer: the signed-in staff member")
    to: str = Field(pattern=ADDRESS, description="the LoanLedger contract called")
    value: int = Field(ge=0, le=2**256 - 1, description="always 0")
    gas: int = Field(ge=0, le=2**256 - 1)
    nonce: int = Field(ge=0, le=2**256 - 1, description="the signer's forwarder nonce: each request is used once")
    deadline: int = Field(ge=0, le=2**48 - 1, description="unix seconds of chain time after which it is refused")
    data: str = Field(pattern=r"^0x([0-9a-fA-F]{2})*$", description="the call's ABI-encoded data")

    model_config = {"populate_by_name": True, "json_schema_extra": {"examples": [{
        "from": _OPERATOR, "to": _BOOK, "value": 0, "gas": 120_000, "nonce": 3, "deadline": 1_767_225_900,
        "data": "0xb759f954" + "00" * 31 + "07"}]}}


class SignedRequestIn(BaseModel):
    """A decision signed by the signed-in staff member (the typed data `POST /v1/operator/requests` prepared)."""

    request: ForwardRequestMessage
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="EIP-712 signature of the request")

    def signed(self) -> Signed:
        return Signed(self.request.model_dump(by_alias=True), self.signature)

    model_config = {"json_schema_extra": {"examples": [{
        "request": ForwardRequestMessage.model_config["json_schema_extra"]["examples"][0],
        "signature": _SIGNATURE}]}}


EXAMPLE_SIGNED = SignedRequestIn.model_config["json_schema_extra"]["examples"][0]


class SignedRequestsIn(BaseModel):
    """A decision of several calls (one per contract changed), each signed, in the order prepared."""

    requests: list[SignedRequestIn] = Field(max_length=16)

    def signed(self) -> list[Signed]:
        return [r.signed() for r in self.requests]

    model_config = {"json_schema_extra": {"examples": [{"requests": [EXAMPLE_SIGNED]}]}}


def signed_example(model: type[BaseModel], *, several: bool = False) -> dict:
    """The JSON schema extra of a route body that is `model`'s body with the decision signed: its first example,
    with one signed request (or a list of them)."""
    body = model.model_config["json_schema_extra"]["examples"][0]
    return {"json_schema_extra": {"examples": [{**body, **({"requests": [EXAMPLE_SIGNED]} if several
                                                           else EXAMPLE_SIGNED)}]}}


class PrepareIn(BaseModel):
    action: Literal[ACTIONS] = Field(description="the decision to sign")  # type: ignore[valid-type]
    params: dict[str, Any] = Field(default_factory=dict, description=(
        "what the decision's route takes: its path's parameters (loan_id, product_id, address) and its body "
        "(reason; a product's terms; role, account, contracts; old, new)"))

    model_config = {"json_schema_extra": {"examples": [
        {"action": "loan.approve", "params": {"loan_id": 7}},
        {"action": "loan.reject", "params": {"loan_id": 8, "reason": "documents"}},
        {"action": "role.grant", "params": {"role": "operator", "account": _OPERATOR}}]}}


_EXAMPLE_MESSAGE = ForwardRequestMessage.model_config["json_schema_extra"]["examples"][0]
_EXAMPLE_PREPARED = {
    "typed_data": forwarding.typed_request({"name": "LoanLedgerForwarder", "version": "1", "chainId": 31337,
                                            "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3"},
                                           _EXAMPLE_MESSAGE),
    "summary": "Approve loan 7: pay out ¥1,200.00 to 0x9965…A4dc"}


class PreparedRequest(BaseModel):
    typed_data: dict[str, Any] = Field(description="EIP-712 typed data (eth_signTypedData_v4's argument)")
    summary: str = Field(description="what this call does, in words")

    model_config = {"json_schema_extra": {"examples": [_EXAMPLE_PREPARED]}}


class PreparedOut(BaseModel):
    """What to sign, in order, and what it does: show `summary` to the signer before they sign."""

    action: str
    signer: str = Field(description="who must sign: the signed-in staff member")
    summary: str
    requests: list[PreparedRequest] = Field(description="sign each; send them back in this order (none: nothing "
                                                        "to change)")

    model_config = {"json_schema_extra": {"examples": [{
        "action": "loan.approve", "signer": _OPERATOR, "summary": _EXAMPLE_PREPARED["summary"],
        "requests": [_EXAMPLE_PREPARED]}]}}


class SignedProductIn(ProductIn, SignedRequestIn):
    """A product's terms and their publication signed by the signed-in operator."""

    model_config = {"json_schema_extra": {"examples": [{**EXAMPLE_PRODUCT_IN, **EXAMPLE_SIGNED}]}}

    def product(self) -> ProductIn:
        return ProductIn.model_validate(self.model_dump(exclude=SIGNED_FIELDS))

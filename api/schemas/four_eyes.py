"""Maker-checker (FourEyes): a decision one person proposes and a second, different person confirms before it
expires (api.services.four_eyes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

_ID = "0x" + "3c" * 32
_OPERATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
_OPERATOR2 = "0x2546BcD3c84621e976D8185a91A922aE77ECEc30"
_TX = "0x" + "ab" * 32

ProposalState = Literal["awaiting confirmation", "executed", "cancelled", "expired"]


class ProposalOut(BaseModel):
    """A proposal: what it asks, who proposed it, until when a second person may confirm it, and where it is."""

    proposal_id: str = Field(description="0x + 64 hex digits: FourEyes' id of the proposal (a hash of its content)")
    state: ProposalState = Field(description="awaiting confirmation (pending, not expired), executed (confirmed: "
                                             "the call was made), cancelled, or expired")
    proposer: str = Field(description="who proposed it, with their own wallet")
    confirmer: str | None = Field(None, description="who confirmed it (executed proposals, when known)")
    expires_at: int = Field(description="unix seconds of chain time: a confirmation after it is refused")
    contract: str = Field(description="the LoanLedger contract FourEyes calls once confirmed")
    function: str = Field(description="the function it calls")
    args: dict[str, Any] = Field(description="the call's arguments by name")
    summary: str = Field(description="what it does, in words")
    role: Literal["operator", "admin"] = Field(description="who may confirm it: another holder of this role")
    proposed_in_block: int
    tx_hash: str | None = Field(None, description="the transaction of this answer's step (propose, confirm, cancel)")
    block_number: int | None = None
    result: dict[str, dict[str, Any]] = Field(default_factory=dict, description=(
        "executed by this confirmation: the events the called contract emitted, by name (e.g. ProductCreated "
        "with its productId)"))

    model_config = {"json_schema_extra": {"examples": [{
        "proposal_id": _ID, "state": "awaiting confirmation", "proposer": _OPERATOR, "confirmer": None,
        "expires_at": 1_767_484_800, "contract": "LoanBook", "function": "writeOff", "args": {"loanId": 7},
        "summary": "Write off loan 7", "role": "operator", "proposed_in_block": 120, "tx_hash": _TX,
        "block_number": 120, "result": {}}]}}


class ProposalList(BaseModel):
    proposals: list[ProposalOut]

    model_config = {"json_schema_extra": {"examples": [{
        "proposals": ProposalOut.model_config["json_schema_extra"]["examples"]}]}}


class ProposalsOut(BaseModel):
    """A decision of several calls needing two people (a role on several contracts): one proposal each."""

    proposals: list[ProposalOut]

    model_config = ProposalList.model_config


EXAMPLE_CONFIRMED = {**ProposalOut.model_config["json_schema_extra"]["examples"][0], "state": "executed",
                     "confirmer": _OPERATOR2,
                     "result": {"LoanWrittenOff": {"loanId": 7, "principalWrittenOff": 120_000}}}

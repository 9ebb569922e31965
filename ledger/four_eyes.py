"""Maker-checker through the FourEyes contract: build the propose, confirm and cancel calls, read a proposal back,
and say in words what it would do.

The builders return web3 `ContractFunction`s, so any sender can make them: a `ChainClient`, a node-unlocked account
(tests, the demo), or a person's signed forward request relayed by the API (`ledger.forwarding`). A proposal's
content (target, data, expiry) is not stored on-chain, only hashed into its id: it is read back from its
`Proposed` event, which is also what the confirmer is shown before confirming. The indexer keeps those events'
projection (ledger.store.proposals): lists are read from there (`indexed`), one proposal may be asked of the node
(`proposal`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger.contracts import Bindings
from ledger.manifest import CONTRACT_NAMES
from ledger.store.models.four_eyes import FourEyesProposal

# How long a proposal waits for its confirmer unless the proposer says otherwise.
DEFAULT_VALIDITY = 3 * 86_400


class ProposalState(IntEnum):
    """IFourEyes.ProposalState. An expired proposal stays PENDING on-chain: `Proposal.expired` tells."""

    NONE = 0
    PENDING = 1
    EXECUTED = 2
    CANCELLED = 3


@dataclass(frozen=True)
class Call:
    """What a proposal asks FourEyes to do: call `target` with `data`, confirmed by `expires_at` (unix seconds)."""

    target: str
    data: bytes
    expires_at: int

    @classmethod
    def of(cls, function: ContractFunction, expires_at: int) -> Call:
        """The call `function` (bound to its contract, with its arguments) would make."""
        return cls(Web3.to_checksum_address(function.address), bytes(HexBytes(function._encode_transaction_data())),
                   expires_at)


@dataclass(frozen=True)
class Proposal:
    proposal_id: bytes
    proposer: str
    call: Call
    nonce: int
    state: ProposalState
    block: int  # where it was proposed

    def expired(self, now: int) -> bool:
        return now > self.call.expires_at

    def awaiting_confirmation(self, now: int) -> bool:
        return self.state == ProposalState.PENDING and not self.expired(now)


def propose(four_eyes: Contract, function: ContractFunction, expires_at: int) -> ContractFunction:
    """FourEyes.propose of `function` (e.g. `book.functions.writeOff(7)`), to be confirmed by `expires_at`."""
    call = Call.of(function, expires_at)
    return four_eyes.functions.propose(call.target, call.data, call.expires_at)


def confirm(four_eyes: Contract, proposal: Proposal | tuple[bytes, Call]) -> ContractFunction:
    """FourEyes.confirm of a proposal, with its content as proposed (a changed content is refused on-chain)."""
    proposal_id, call = (proposal.proposal_id, proposal.call) if isinstance(proposal, Proposal) else proposal
    return four_eyes.functions.confirm(proposal_id, call.target, call.data, call.expires_at)


def cancel(four_eyes: Contract, proposal_id: bytes) -> ContractFunction:
    """FourEyes.cancel: by the proposer or an admin."""
    return four_eyes.functions.cancel(proposal_id)


def proposed(four_eyes: Contract, receipt: TxReceipt) -> Proposal:
    """The proposal a `propose` transaction made, from its receipt."""
    (event,) = four_eyes.events.Proposed().process_receipt(receipt, errors=DISCARD)
    return _from_event(event, ProposalState.PENDING)


def proposal(four_eyes: Contract, proposal_id: bytes, from_block: int = 0) -> Proposal | None:
    """A proposal's content (from its Proposed event) and its state now; None when there is no such proposal."""
    stored = four_eyes.functions.proposalOf(proposal_id).call()
    if ProposalState(stored[2]) == ProposalState.NONE:
        return None
    logs = four_eyes.events.Proposed().get_logs(argument_filters={"proposalId": proposal_id}, from_block=from_block,
                                                to_block="latest")
    return _from_event(logs[-1], ProposalState(stored[2]))


def indexed(row: FourEyesProposal) -> Proposal:
    """A proposal as the index holds it (ledger.store.proposals)."""
    call = Call(Web3.to_checksum_address(row.target), bytes(HexBytes(row.data)), int(row.expires_at))
    return Proposal(bytes(HexBytes(row.proposal_id)), Web3.to_checksum_address(row.proposer), call, int(row.nonce),
                    ProposalState[row.state.upper()], int(row.proposed_block))


def awaiting_confirmation(four_eyes: Contract, now: int, from_block: int = 0) -> list[Proposal]:
    """Every proposal still open at `now` (pending, not expired), oldest first, read from the node's logs (one call
    per proposal): for tools without an index; the API lists them from the index (ledger.store.proposals)."""
    logs = four_eyes.events.Proposed().get_logs(from_block=from_block, to_block="latest")
    found = [_from_event(e, ProposalState(four_eyes.functions.proposalOf(e.args.proposalId).call()[2])) for e in logs]
    return [p for p in found if p.awaiting_confirmation(now)]


def _from_event(event: Any, state: ProposalState) -> Proposal:
    args = event.args
    call = Call(Web3.to_checksum_address(args.target), bytes(args.data), int(args.expiresAt))
    return Proposal(bytes(args.proposalId), Web3.to_checksum_address(args.proposer), call, int(args.nonce), state,
                    int(event.blockNumber))


def describe(bindings: Bindings, call: Call) -> tuple[str, str, dict[str, Any]]:
    """(contract name, function name, arguments by name) of a call to one of our contracts: what a confirmer is
    shown in words. Raises ValueError for a target that is none of ours."""
    for name in CONTRACT_NAMES:
        contract = bindings.by_name(name)
        if contract.address.lower() == call.target.lower():
            function, args = contract.decode_function_input(call.data)
            return name, function.fn_name, dict(args)
    raise ValueError(f"{call.target} is none of the deployed LoanLedger contracts")


def carry_out(w3: Web3, four_eyes: Contract, function: ContractFunction, proposer: str, confirmer: str,
              expires_at: int | None = None) -> TxReceipt:
    """Propose `function` as `proposer` and confirm it as `confirmer`, both accounts the node has unlocked (tests,
    the demo's set-up); the confirmation's receipt. Reverts surface as web3's exceptions."""
    if expires_at is None:
        expires_at = w3.eth.get_block("latest").timestamp + DEFAULT_VALIDITY
    made = _mined(w3, propose(four_eyes, function, expires_at).transact({"from": proposer}))
    return _mined(w3, confirm(four_eyes, proposed(four_eyes, made)).transact({"from": confirmer}))


def _mined(w3: Web3, tx_hash: HexBytes) -> TxReceipt:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt.status != 1:
        raise RuntimeError(f"transaction {receipt.transactionHash.hex()} failed")
    return receipt

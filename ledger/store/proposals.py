"""FourEyes' proposals as a function of the stored events (Proposed, Confirmed, Cancelled), as
ledger.store.projection is for loans and borrowers: the indexer calls `rebuild_proposal` for every proposal a block
range (or a reorg) touched, so the incremental path and the repair path are the same code.

The chain keeps a proposal's content only hashed into its id; its Proposed event carries it, so the index is where
the list of proposals is read from (`awaiting`), and `proposalOf` on the node is what it must agree with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.store.models.chain import ChainEvent
from ledger.store.models.four_eyes import FourEyesProposal
from ledger.store.projection import EventKeys, EventLike, without

CONTRACT = "FourEyes"
PROPOSAL_EVENTS = ("Proposed", "Confirmed", "Cancelled")  # Executed follows Confirmed in the same transaction
PENDING, EXECUTED, CANCELLED = "pending", "executed", "cancelled"  # IFourEyes.ProposalState, lower case


class ProposalEventError(ValueError):
    """A proposal's events do not replay (a confirmation of nothing proposed, a second closing)."""


def proposal_of(contract: str, name: str, args: dict[str, Any]) -> str | None:
    """The proposal id an event is about (0x-hex, as stored), or None for any other event."""
    return args.get("proposalId") if contract == CONTRACT and name in PROPOSAL_EVENTS else None


def proposal_events(session: Session, proposal_id: str) -> list[ChainEvent]:
    return list(session.scalars(
        select(ChainEvent).where(ChainEvent.contract == CONTRACT, ChainEvent.name.in_(PROPOSAL_EVENTS),
                                 ChainEvent.args["proposalId"].as_string() == proposal_id)
        .order_by(ChainEvent.block_number, ChainEvent.log_index)))


def fold_proposal(events: Iterable[EventLike]) -> dict[str, Any] | None:
    """A proposal's row (column -> value) from its events in chain order; None when there are none."""
    row: dict[str, Any] | None = None
    for ev in events:
        a = ev.args
        if ev.name == "Proposed":
            if row is not None:
                raise ProposalEventError(f"proposal {a['proposalId']} proposed twice")
            row = {"proposal_id": a["proposalId"], "proposer": a["proposer"], "target": a["target"],
                   "selector": a["selector"], "data": a["data"], "expires_at": a["expiresAt"], "nonce": a["nonce"],
                   "proposed_block": ev.block_number, "proposed_at": ev.block_time, "state": PENDING,
                   "closed_by": None, "closed_block": None}
            continue
        if row is None or row["state"] != PENDING:
            raise ProposalEventError(f"{ev.name} of proposal {a['proposalId']}, which is "
                                     f"{'not proposed' if row is None else row['state']}")
        row["state"], row["closed_block"] = (EXECUTED, ev.block_number) if ev.name == "Confirmed" else (
            CANCELLED, ev.block_number)
        row["closed_by"] = a["confirmer"] if ev.name == "Confirmed" else a["actor"]
    return row


def rebuild_proposal(session: Session, proposal_id: str, *, skip: EventKeys = ()) -> FourEyesProposal | None:
    """Make the proposal's row equal to what its stored events say, leaving out `skip` (deleted when none are left,
    as after a reorg that dropped its Proposed event)."""
    fields = fold_proposal(without(proposal_events(session, proposal_id), skip))
    row = session.get(FourEyesProposal, proposal_id)
    if fields is None:
        if row is not None:
            session.delete(row)
        return None
    if row is None:
        row = FourEyesProposal(proposal_id=proposal_id)
        session.add(row)
    for key, value in fields.items():
        setattr(row, key, value)
    return row


def awaiting(session: Session, now: int) -> Sequence[FourEyesProposal]:
    """The proposals still open at `now` (chain time): pending and not expired, oldest first."""
    return session.scalars(select(FourEyesProposal).where(FourEyesProposal.state == PENDING,
                                                          FourEyesProposal.expires_at >= now)
                           .order_by(FourEyesProposal.proposed_block, FourEyesProposal.nonce)).all()

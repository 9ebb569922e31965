"""FourEyes' proposals as the index knows them: a projection of the contract's Proposed, Confirmed and Cancelled
events (ledger.store.proposals), rebuilt from the stored events like the loans and borrowers are, so the list of
proposals is a query rather than a scan of the chain's logs."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base
from ledger.store.models.chain import Address, Hex32


class FourEyesProposal(Base):
    """One proposal: its content as proposed, and its on-chain state (IFourEyes.ProposalState's name in lower case:
    pending, executed, cancelled). An expired proposal stays `pending`, as on-chain: expiry is judged against the
    chain's time when it is read."""

    __tablename__ = "four_eyes_proposals"
    __table_args__ = (Index("ix_four_eyes_proposals_state", "state"),)

    proposal_id: Mapped[str] = mapped_column(Hex32, primary_key=True)
    proposer: Mapped[str] = mapped_column(Address)
    target: Mapped[str] = mapped_column(Address)
    selector: Mapped[str] = mapped_column(String(10))
    data: Mapped[str] = mapped_column(Text)  # 0x-hex calldata, as proposed
    expires_at: Mapped[int] = mapped_column(BigInteger)
    nonce: Mapped[int] = mapped_column(BigInteger)
    proposed_block: Mapped[int] = mapped_column(BigInteger)
    proposed_at: Mapped[int] = mapped_column(BigInteger)  # the block's time
    state: Mapped[str] = mapped_column(String(16))
    # Who closed it (the confirmer, or whoever cancelled it), and in which block; None while pending.
    closed_by: Mapped[str | None] = mapped_column(Address)
    closed_block: Mapped[int | None] = mapped_column(BigInteger)

"""The score quorum's mailbox: report proposals the oracle puts up, and what each score signer answered.

The oracle's score refresher writes a proposal (report id, model version, the entries it computed); every
score signer process reads the open ones, re-scores each borrower itself and answers once per proposal:
`signed` with its EIP-712 signature over the digest of the values IT computed, or `refused` with why.
The refresher submits once the contract's threshold of matching signatures is in, or sets the proposal
aside at its deadline. One row per (proposal, signer): a signer never answers the same proposal twice.

Proposal states: open -> submitted (on-chain, `tx_hash`) | set_aside (no quorum by the deadline, or the
contract refused it: `reason` says which).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base
from ledger.store.types import MinorUnits

_ID = BigInteger().with_variant(Integer, "sqlite")


class ScoreProposal(Base):
    __tablename__ = "score_proposals"
    __table_args__ = (Index("ix_score_proposals_state", "state"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(MinorUnits)
    model_version: Mapped[int] = mapped_column(BigInteger)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    oracle: Mapped[str] = mapped_column(String(42))  # the CreditOracle: with chain_id, the EIP-712 domain
    entries: Mapped[str] = mapped_column(Text)  # JSON [[borrower, score, credit limit], ...] in report order
    digest: Mapped[str] = mapped_column(String(66))  # the proposer's EIP-712 digest of the report (0x-hex)
    threshold: Mapped[int] = mapped_column(Integer)  # the contract's signerThreshold when proposed
    state: Mapped[str] = mapped_column(String(16), default="open")
    reason: Mapped[str | None] = mapped_column(Text)  # why it was set aside
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    created_at: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)  # unix seconds: signatures after it are not waited for
    decided_at: Mapped[int | None] = mapped_column(BigInteger)


class ScoreSignature(Base):
    __tablename__ = "score_signatures"
    __table_args__ = (UniqueConstraint("proposal_id", "signer", name="uq_score_signatures_proposal_id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(_ID, ForeignKey("score_proposals.id", ondelete="CASCADE"))
    signer: Mapped[str] = mapped_column(String(42))  # the signer's address (checksummed)
    name: Mapped[str] = mapped_column(String(64))  # its configured name, e.g. score_signer_2
    verdict: Mapped[str] = mapped_column(String(16))  # signed | refused
    signature: Mapped[str | None] = mapped_column(String(132))  # 0x-hex, 65 bytes
    reason: Mapped[str | None] = mapped_column(Text)  # why it refused
    disputed: Mapped[str | None] = mapped_column(Text)  # JSON list of the borrowers whose values it did not match
    created_at: Mapped[int] = mapped_column(BigInteger)

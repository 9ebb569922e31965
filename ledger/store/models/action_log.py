"""The action log: every state-changing action, hash-chained, its head anchored on-chain now and then.

Entry n's hash covers its own fields and entry n-1's hash, so editing, removing or reordering any entry
breaks every hash after it; the on-chain anchors pin the head so the whole log cannot be rewritten
quietly either. How hashes are made and checked is ledger.action_log's job; these are the columns.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base


class ActionLogEntry(Base):
    __tablename__ = "action_log"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=False)  # 1, 2, 3 ... assigned by the appender, never reused
    at: Mapped[int] = mapped_column(BigInteger)            # unix milliseconds
    actor: Mapped[str] = mapped_column(String(128))        # an address, an operator name or a service
    action: Mapped[str] = mapped_column(String(64))        # e.g. "loan.request", "kyc.verify", "oracle.push_scores"
    request_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text)              # canonical JSON (sorted keys), never PII
    prev_hash: Mapped[str] = mapped_column(String(66))
    hash: Mapped[str] = mapped_column(String(66), unique=True)


class ActionLogAnchorRecord(Base):
    """A head of the log written to the ActionLogAnchor contract: which entry, in which transaction."""

    __tablename__ = "action_log_anchors"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)  # the anchored entry (entries = seq)
    head: Mapped[str] = mapped_column(String(66))
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(BigInteger)
    anchored_at: Mapped[int] = mapped_column(BigInteger)

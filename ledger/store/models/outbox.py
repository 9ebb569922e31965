"""The oracle's outbox: payment confirmations stored before they are acknowledged, pushed on-chain later.

A row is written in the same transaction that decides the webhook's answer, so an acknowledged payment
is never lost; (provider, event_id) and payment_ref are unique, so a provider's retry or replay finds
the first row instead of making a second one.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base
from ledger.store.types import MinorUnits


class OutboxItem(Base):
    __tablename__ = "oracle_outbox"
    __table_args__ = (
        UniqueConstraint("provider", "event_id", name="uq_oracle_outbox_provider_event_id"),
        UniqueConstraint("payment_ref", name="uq_oracle_outbox_payment_ref"),
        Index("ix_oracle_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(64))
    # disbursement | repayment | credit_refund | suspense_refund | reversal | payout_reversal
    kind: Mapped[str] = mapped_column(String(16))
    loan_id: Mapped[int] = mapped_column(MinorUnits)
    reference: Mapped[str] = mapped_column(String(64))  # the rail's own reference
    payment_ref: Mapped[str] = mapped_column(String(66))  # 0x-hex bytes32 credited on-chain
    amount: Mapped[int] = mapped_column(MinorUnits)
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[int] = mapped_column(BigInteger)
    reverses: Mapped[str | None] = mapped_column(String(64))  # a refund's or reversal's earlier payment (rail ref)
    received_at: Mapped[int] = mapped_column(BigInteger)
    # pending -> sending -> done (credited on-chain, by this push or an earlier one) | rejected (the contract
    # refused it: the money is with the lender but not credited, an operator must act).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger, default=0)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str | None] = mapped_column(String(64))  # "credited", "already_credited", or the error name
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=0)

"""Suspense: money the rail delivered that the loan book refused, held until an operator resolves it.

A row is written in the same transaction in which the outbox settles a repayment `rejected` (unknown loan,
wrong currency, a repaid or written-off loan, an overpayment), one per outbox item, so a refused payment is
never without a record. An operator resolves it: `refunded` (a refund order over the rail, exactly once,
see `RefundOrder`) or `applied` to the right loan (the refused confirmation re-queued for it).

States: open -> refunding (a refund order is recorded; its outcome may not be known yet) -> refunded;
open -> applied (-> open again if the book refuses it for that loan too).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base
from ledger.store.types import MinorUnits

_ID = BigInteger().with_variant(Integer, "sqlite")


class SuspenseItem(Base):
    __tablename__ = "suspense_items"
    __table_args__ = (
        UniqueConstraint("outbox_item_id", name="uq_suspense_items_outbox_item_id"),
        Index("ix_suspense_items_state", "state"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    outbox_item_id: Mapped[int] = mapped_column(BigInteger)  # the refused confirmation (oracle_outbox.id)
    provider: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(64))  # the rail's own reference of the payment received
    payment_ref: Mapped[str] = mapped_column(String(66))  # keccak(provider:reference), as sent on-chain
    loan_id: Mapped[int] = mapped_column(MinorUnits)  # as the rail named it (maybe no loan at all)
    amount: Mapped[int] = mapped_column(MinorUnits)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(64))  # the outbox outcome: LoanBookOverpayment, CurrencyMismatch...
    received_at: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | refunding | refunded | applied
    resolved_by: Mapped[str | None] = mapped_column(String(42))
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)
    refund_order_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class RefundOrder(Base):
    """A refund of one suspense item, written before the provider is asked (the payout-order pattern).

    `idempotency_key` names the received payment (provider and rail reference), so the provider executes
    the refund once however often it is sent. States: ordered -> sent (handed over; without a
    `refund_reference` its outcome is unknown until the provider is asked) -> refunded | failed.
    """

    __tablename__ = "refund_orders"
    __table_args__ = (
        UniqueConstraint("suspense_item_id", name="uq_refund_orders_suspense_item_id"),
        UniqueConstraint("idempotency_key", name="uq_refund_orders_idempotency_key"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    suspense_item_id: Mapped[int] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    payment_reference: Mapped[str] = mapped_column(String(64))  # the payment refunded (the rail's reference)
    loan_id: Mapped[int] = mapped_column(MinorUnits)
    amount: Mapped[int] = mapped_column(MinorUnits)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16), default="ordered")
    refund_reference: Mapped[str | None] = mapped_column(String(64))  # the rail's reference of the refund
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    ordered_by: Mapped[str] = mapped_column(String(42))
    ordered_at: Mapped[int] = mapped_column(BigInteger)
    sent_at: Mapped[int | None] = mapped_column(BigInteger)
    refunded_at: Mapped[int | None] = mapped_column(BigInteger)
    failed_at: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)

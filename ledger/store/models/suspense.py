"""Suspense: money the rail delivered that the ledger could not apply, held until an operator resolves it.

A row is written, one per received payment (the provider's own reference is unique), in the same
transaction that decides the payment cannot be applied: the outbox settling a repayment `rejected` (unknown
loan, wrong currency, a repaid or written-off loan, an overpayment) or `set_aside` (it can never be sent,
e.g. a loan id past uint256), or the webhook intake refusing the content of an authentic payment webhook
(oracle/suspense.py; then there is no outbox row: `outbox_item_id` is null until an operator applies it).
So a payment the rail says it moved is never without a record. An operator resolves it: `refunded` (a refund order over the rail, exactly once,
see `RefundOrder`) or `applied` to the right loan (the refused confirmation re-queued for it).

States (`SuspenseState`): open -> refunding (a refund order is recorded; its outcome may not be known yet) ->
refunded; open -> applied (-> open again if the book refuses it for that loan too); open -> reversed (the rail
took the payment back itself: a chargeback of money the book never had).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base
from ledger.store.types import MinorUnits

_ID = BigInteger().with_variant(Integer, "sqlite")


class SuspenseState(StrEnum):
    OPEN = "open"  # received, not credited, not resolved: owed back or to the right loan
    REFUNDING = "refunding"  # a refund order is recorded; the provider's answer may not be known yet
    REFUNDED = "refunded"  # the provider executed the refund
    APPLIED = "applied"  # re-queued for the loan it was meant for
    REVERSED = "reversed"  # the rail took it back (a chargeback): gone back the way it came


class SuspenseItem(Base):
    __tablename__ = "suspense_items"
    __table_args__ = (
        UniqueConstraint("provider", "reference", name="uq_suspense_items_provider_reference"),
        Index("ix_suspense_items_state", "state"),
        Index("ix_suspense_items_outbox_item_id", "outbox_item_id"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    # The refused confirmation (oracle_outbox.id); null for a webhook the intake refused, until applied.
    outbox_item_id: Mapped[int | None] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(64))  # the rail's own reference of the payment received
    payment_ref: Mapped[str] = mapped_column(String(66))  # keccak(provider:reference), as sent on-chain
    loan_id: Mapped[int] = mapped_column(MinorUnits)  # as the rail named it (maybe no loan at all; 0: none we can store)
    amount: Mapped[int] = mapped_column(MinorUnits)
    currency: Mapped[str] = mapped_column(String(3))  # XXX (ISO 4217's "no currency") when the rail's is not one
    # The outbox outcome (LoanBookOverpayment, CurrencyMismatch, ItemUnusable...) or the intake's refusal
    # (LoanIdOutOfRange, UnknownCurrency...).
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)  # the refusal in words, with the values the rail sent
    event_id: Mapped[str | None] = mapped_column(String(64))  # the webhook's event id, when it had a usable one
    paid_at: Mapped[int | None] = mapped_column(BigInteger)  # the rail's payment time, when the book can hold it
    received_at: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default=SuspenseState.OPEN)
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

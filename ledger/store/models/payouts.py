"""Payout orders: one per loan, written before the payment provider is asked to pay it out.

The row is the lender's own memory of having ordered the money: a retried approval, a second operator
or a timed-out order finds it and answers it instead of paying again. `idempotency_key` is what the
provider dedupes on (it names the loan), so even an order sent twice moves money once.

States: ordered (recorded, not yet sent) -> sent (handed to the provider; with no `rail_reference` its
outcome is unknown until reconciled) -> settled (the disbursement is on-chain) | failed (the provider
refused it) | cancelled (the loan closed before it was paid out).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base
from ledger.store.types import MinorUnits


class PayoutOrder(Base):
    __tablename__ = "payout_orders"
    __table_args__ = (
        UniqueConstraint("loan_id", name="uq_payout_orders_loan_id"),
        UniqueConstraint("idempotency_key", name="uq_payout_orders_idempotency_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    loan_id: Mapped[int] = mapped_column(MinorUnits)
    provider: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(MinorUnits)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16), default="ordered")
    rail_reference: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times it was handed to the provider
    last_error: Mapped[str | None] = mapped_column(Text)
    ordered_at: Mapped[int] = mapped_column(BigInteger)
    sent_at: Mapped[int | None] = mapped_column(BigInteger)
    settled_at: Mapped[int | None] = mapped_column(BigInteger)
    failed_at: Mapped[int | None] = mapped_column(BigInteger)
    cancelled_at: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)

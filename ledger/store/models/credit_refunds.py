"""Credit refunds: an Overpaid loan's credit balance paid back to its borrower, ordered once.

The payout-order pattern (ledger/store/models/payouts.py) for money going back: the row is written before
the provider is asked, with an idempotency key naming the payment that overpaid, so the provider moves the
money once however often it is asked; the provider's `refund.succeeded` webhook (purpose `credit`) is
confirmed on-chain by the oracle (`confirmCreditRefund`), and the order is `settled` once the read model
shows that refund on the loan.

States: ordered -> sent (handed over; without a `refund_reference` its outcome is unknown until the
provider is asked) -> settled (the refund is on-chain) | failed (the provider refused it).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base
from ledger.store.types import MinorUnits


class CreditRefundOrder(Base):
    __tablename__ = "credit_refund_orders"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_credit_refund_orders_idempotency_key"),
        Index("ix_credit_refund_orders_loan_id", "loan_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    loan_id: Mapped[int] = mapped_column(MinorUnits)
    payment_ref: Mapped[str] = mapped_column(String(66))  # the overpaying repayment, on-chain (0x-hex)
    provider: Mapped[str] = mapped_column(String(32))  # the provider that delivered it: the money goes back that way
    payment_reference: Mapped[str] = mapped_column(String(64))  # its rail reference
    idempotency_key: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(MinorUnits)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16), default="ordered")
    refund_reference: Mapped[str | None] = mapped_column(String(64))  # the provider's reference of the refund
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    ordered_by: Mapped[str] = mapped_column(String(42))
    ordered_at: Mapped[int] = mapped_column(BigInteger)
    sent_at: Mapped[int | None] = mapped_column(BigInteger)
    settled_at: Mapped[int | None] = mapped_column(BigInteger)
    failed_at: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)

"""Notifications the risk monitor sent (reminders, overdue warnings, default notices), one row per send.

(loan_id, installment, kind) is unique, so a monitor that runs again, or twice at once, never nags a
borrower twice for the same thing.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base
from ledger.store.types import MinorUnits


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("loan_id", "installment", "kind", name="uq_notifications_loan_installment_kind"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    loan_id: Mapped[int] = mapped_column(MinorUnits)
    installment: Mapped[int] = mapped_column(Integer)       # 1-based; 0 when it concerns the whole loan
    borrower: Mapped[str] = mapped_column(String(42), index=True)
    kind: Mapped[str] = mapped_column(String(24))           # "reminder" | "overdue_warning" | "default_notice"
    channel: Mapped[str] = mapped_column(String(16))        # the sender that delivered it: "log", "webhook", ...
    status: Mapped[str] = mapped_column(String(16))         # "sent" | "failed"
    due_at: Mapped[int] = mapped_column(BigInteger)         # the due time the notice is about
    amount_due: Mapped[int] = mapped_column(MinorUnits)
    created_at: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[str | None] = mapped_column(Text)        # the sender's answer or error

"""Notices on their way to a borrower's phone, and the language each borrower reads them in.

The risk monitor (oracle) records a notice once in `notifications` (unique loan, installment, kind); for the SMS
channel it also writes a `NoticeDelivery` in the same transaction, holding the notice's facts (amounts the loan
book computed, the due date) and no personal data. The API's notice sender, which holds the PII vault, reads the
phone, renders the borrower's template and sends it through the SMS provider with the row's idempotency key.

Delivery states: pending -> sending (claimed by one sender) -> accepted (the provider took it: `provider_reference`)
| pending again with a later `next_attempt_at` (the provider failed: `last_error`) | set_aside (after the maximum
attempts, or a refusal no retry fixes: an operator must act). A `sending` row whose sender died is taken up again
after a while; the provider is asked to honour the idempotency key, so a message sent just before the crash is not
sent twice.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base

PENDING, SENDING, ACCEPTED, SET_ASIDE = "pending", "sending", "accepted", "set_aside"
DELIVERY_STATES = (PENDING, SENDING, ACCEPTED, SET_ASIDE)

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"
DEFAULT_TIME_ZONE = "Asia/Shanghai"


class NoticeDelivery(Base):
    __tablename__ = "notice_deliveries"
    __table_args__ = (Index("ix_notice_deliveries_status", "status"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(BigInteger, unique=True)  # notifications.id: the notice recorded once
    borrower: Mapped[str] = mapped_column(String(42), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)  # the provider dedups on it
    facts: Mapped[str] = mapped_column(Text)  # JSON: kind, amounts in minor units, due date; no personal data
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger, default=0)  # wall-clock seconds
    claimed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    provider: Mapped[str | None] = mapped_column(String(16), nullable=True)
    provider_reference: Mapped[str | None] = mapped_column(String(128), nullable=True)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class BorrowerLanguage(Base):
    """The language (and time zone) a borrower reads notices in; no row: zh-CN, Asia/Shanghai."""

    __tablename__ = "borrower_languages"

    borrower: Mapped[str] = mapped_column(String(42), primary_key=True)  # checksummed address
    language: Mapped[str] = mapped_column(String(8))
    time_zone: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[int] = mapped_column(BigInteger)

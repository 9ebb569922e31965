"""Automatic debit (issue 17): the borrower's signed debit mandates and the collection run's intents.

A mandate is an off-chain authorisation to the payment rail: the borrower's EIP-712 `DebitMandate` signature over one
loan, the bound card as its masked last four digits (never the full number), a ceiling per debit and an expiry. The
collection run (oracle.collections) records an intent per (mandate, installment, attempt) BEFORE it asks the rail,
so the key is never lost: a run that repeats, or is killed between recording and calling, sends the same key.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base
from ledger.store.types import MinorUnits


class DebitMandate(Base):
    """One signed mandate; `revoked_at` set once the borrower revokes it (a revoked one is kept, for the record)."""

    __tablename__ = "debit_mandates"
    __table_args__ = (UniqueConstraint("borrower", "nonce", name="uq_debit_mandates_borrower_nonce"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    loan_id: Mapped[int] = mapped_column(BigInteger, index=True)
    borrower: Mapped[str] = mapped_column(String(42), index=True)
    card: Mapped[str] = mapped_column(String(32))  # masked, as signed: "**** 1234"
    max_amount: Mapped[int] = mapped_column(MinorUnits)
    valid_until: Mapped[int] = mapped_column(BigInteger)
    nonce: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(String(132))
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    revocation_signature: Mapped[str | None] = mapped_column(String(132))


class CollectionIntent(Base):
    """One debit asked of the rail: recorded before the call, its key the rail's Idempotency-Key.

    status: pending (recorded, maybe sent) -> sent (the rail took the order) -> collected (its payment credited
    on-chain by the outbox); or declined (the rail's collection.failed webhook) -> failed (`retry_at`: the next
    attempt) or set_aside (declined too often)."""

    __tablename__ = "collection_intents"
    __table_args__ = (UniqueConstraint("key", name="uq_collection_intents_key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(128))
    mandate_id: Mapped[int] = mapped_column(BigInteger, index=True)
    loan_id: Mapped[int] = mapped_column(BigInteger, index=True)
    due_at: Mapped[int] = mapped_column(BigInteger)  # the installment's due date (index)
    attempt: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(MinorUnits)  # the contract's amountDue at the run, capped by the mandate
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reference: Mapped[str | None] = mapped_column(String(64))  # the rail's reference once it took the order
    reason: Mapped[str | None] = mapped_column(String(64))     # a failure's reason, e.g. insufficient_funds
    retry_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)

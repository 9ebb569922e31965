"""What the indexer keeps: the raw events, the blocks it saw, its cursor, and the read model built from them.

The events are the record; everything below `Loan` is a projection of them (ledger.store.projection)
and can be deleted and rebuilt from the events at any time, which is what a reorg does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ledger.store.base import Base
from ledger.store.types import MinorUnits

if TYPE_CHECKING:
    from ledger.store.models.outbox import OutboxItem

Hex32 = String(66)   # 0x + 32 bytes
Address = String(42)


class ChainEvent(Base):
    """One decoded contract log, exactly as the node returned it."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("tx_hash", "log_index", name="uq_events_tx_hash_log_index"),
        Index("ix_events_block_number", "block_number"),
        Index("ix_events_loan_id", "loan_id"),
        Index("ix_events_borrower", "borrower"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    contract: Mapped[str] = mapped_column(String(64))           # manifest name, e.g. "LoanBook"
    address: Mapped[str] = mapped_column(Address)
    name: Mapped[str] = mapped_column(String(64))               # event name, e.g. "RepaymentApplied"
    args: Mapped[dict[str, Any]] = mapped_column(JSON)          # ints as ints, bytes as 0x-hex
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(Hex32)
    block_time: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(Hex32)
    log_index: Mapped[int] = mapped_column(Integer)
    # Lifted out of `args` so a loan's or a borrower's history is one indexed query.
    loan_id: Mapped[int | None] = mapped_column(BigInteger)
    borrower: Mapped[str | None] = mapped_column(Address)


class SeenBlock(Base):
    """The hash of a block the indexer read, so a changed hash (a reorg) is noticed."""

    __tablename__ = "blocks"

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(Hex32)
    time: Mapped[int] = mapped_column(BigInteger)


class IndexerCursor(Base):
    """The last block whose events are all stored (with the read model), committed with them."""

    __tablename__ = "indexer_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(Hex32)
    block_time: Mapped[int] = mapped_column(BigInteger, default=0)
    # The indexer's heartbeat (unix seconds, its own clock): when it last finished a round. On a quiet chain the
    # block lag stays 0 even if the indexer died, so /readyz also judges the silence since this.
    polled_at: Mapped[int | None] = mapped_column(BigInteger)


class PoisonEvent(Base):
    """A stored event the read model could not take: its projection raised, so it was set aside and the rest
    of its range projected without it (an alert, never a stall).

    The event itself stays in `events`; this row says why the read model leaves it out. Keyed like the event
    (tx hash, log index): projecting its loan again, a later range or a reorg, never counts it twice.
    """

    __tablename__ = "indexer_poison_events"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_indexer_poison_events_tx_hash_log_index"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(Address)
    name: Mapped[str] = mapped_column(String(64))
    block_number: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(Hex32)
    log_index: Mapped[int] = mapped_column(Integer)
    loan_id: Mapped[int | None] = mapped_column(BigInteger)
    borrower: Mapped[str | None] = mapped_column(Address)
    error_type: Mapped[str] = mapped_column(String(128))
    error: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[int] = mapped_column(BigInteger)  # unix seconds, the indexer's clock


class Loan(Base):
    """A loan as its events leave it; amounts in minor units of `currency`."""

    __tablename__ = "loans"
    __table_args__ = (Index("ix_loans_borrower", "borrower"), Index("ix_loans_status", "status"),
                      Index("ix_loans_product", "product_id", "product_version"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    borrower: Mapped[str] = mapped_column(Address)
    status: Mapped[str] = mapped_column(String(16))  # ILoanBook.LoanStatus member name
    # Terms, fixed at application.
    principal: Mapped[int] = mapped_column(MinorUnits)
    currency: Mapped[str] = mapped_column(String(3))
    annual_rate_bps: Mapped[int] = mapped_column(Integer)
    amortization: Mapped[str] = mapped_column(String(16))  # ILoanBook.Amortization member name
    installments: Mapped[int] = mapped_column(Integer)
    interval: Mapped[int] = mapped_column(BigInteger)
    grace_period: Mapped[int] = mapped_column(BigInteger)
    late_fee_bps: Mapped[int] = mapped_column(Integer)
    penalty_rate_bps: Mapped[int] = mapped_column(Integer)
    default_after: Mapped[int] = mapped_column(BigInteger)
    service_fee: Mapped[int] = mapped_column(MinorUnits, default=0)  # deducted from the payout
    frequency: Mapped[str] = mapped_column(String(16), default="FixedInterval")  # ILoanBook.Frequency name
    day_count: Mapped[str] = mapped_column(String(16), default="Actual365Fixed")  # ILoanBook.DayCount name
    early_repayment: Mapped[str] = mapped_column(String(32), default="ReduceInstallments")
    # The product version the terms were copied from; 0 for loans made before products existed.
    product_id: Mapped[int] = mapped_column(BigInteger, default=0)
    product_version: Mapped[int] = mapped_column(BigInteger, default=0)
    auto_approvable: Mapped[bool] = mapped_column(Boolean, default=False)
    request_nonce: Mapped[int] = mapped_column(MinorUnits)
    requested_at: Mapped[int] = mapped_column(BigInteger)        # block time
    disbursed_at: Mapped[int] = mapped_column(BigInteger, default=0)
    accrued_at: Mapped[int] = mapped_column(BigInteger, default=0)
    closed_at: Mapped[int | None] = mapped_column(BigInteger)   # block time of repaid/rejected/cancelled/written off
    # Running totals, as ILoanBook.LoanProgress.
    paid_installments: Mapped[int] = mapped_column(Integer, default=0)
    principal_repaid: Mapped[int] = mapped_column(MinorUnits, default=0)
    interest_paid: Mapped[int] = mapped_column(MinorUnits, default=0)
    late_fee_paid: Mapped[int] = mapped_column(MinorUnits, default=0)
    penalty_paid: Mapped[int] = mapped_column(MinorUnits, default=0)
    late_fee_unpaid: Mapped[int] = mapped_column(MinorUnits, default=0)
    penalty_unpaid: Mapped[int] = mapped_column(MinorUnits, default=0)
    principal_written_off: Mapped[int] = mapped_column(MinorUnits, default=0)
    credit_balance: Mapped[int] = mapped_column(MinorUnits, default=0)  # Overpaid: held until refunded
    recovered: Mapped[int] = mapped_column(MinorUnits, default=0)  # WrittenOff: recoveries since
    # Delinquency as of `as_of` (the time of the last indexed block).
    next_due_at: Mapped[int | None] = mapped_column(BigInteger)
    days_past_due: Mapped[int] = mapped_column(Integer, default=0)
    as_of: Mapped[int] = mapped_column(BigInteger, default=0)
    last_event_block: Mapped[int] = mapped_column(BigInteger)

    schedule: Mapped[list[ScheduleRow]] = relationship(
        back_populates="loan", order_by="ScheduleRow.number", cascade="all, delete-orphan")
    payments: Mapped[list[Payment]] = relationship(
        back_populates="loan", order_by="Payment.block_number, Payment.log_index", cascade="all, delete-orphan")


class ScheduleRow(Base):
    """One installment of `ILoanBook.schedule(loanId)`; `due_at` is relative until disbursement."""

    __tablename__ = "loan_schedule"

    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # 1-based
    due_at: Mapped[int] = mapped_column(BigInteger)
    principal: Mapped[int] = mapped_column(MinorUnits)
    interest: Mapped[int] = mapped_column(MinorUnits)

    loan: Mapped[Loan] = relationship(back_populates="schedule")


class Payment(Base):
    """A money movement recorded on-chain, by the reference the book used once for it (`kind`):
    a `disbursement`; a `repayment` with its allocation (and `credit`: the part beyond the payoff); a
    `recovery` on a written-off loan; a `credit_refund`; a `reversal` of a repayment (its parts are the
    reversed payment's, `reverses` names it) or a `payout_reversal` (a bounced payout). Amounts are positive;
    the kind says which way the money went.

    The chain knows a payment by `payment_ref`, the bytes32 keccak256("<provider>:<rail reference>"); the
    rail's own reference, which its statement shows, is kept off-chain by the oracle's outbox beside that
    hash and joined here (`provider`, `rail_reference`: None for a payment confirmed by someone else).
    """

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_loan_id", "loan_id"),)

    payment_ref: Mapped[str] = mapped_column(Hex32, primary_key=True)  # on-chain, credited once ever (0x-hex)
    kind: Mapped[str] = mapped_column(String(16))
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"))
    amount: Mapped[int] = mapped_column(MinorUnits)
    principal: Mapped[int] = mapped_column(MinorUnits, default=0)
    interest: Mapped[int] = mapped_column(MinorUnits, default=0)
    late_fee: Mapped[int] = mapped_column(MinorUnits, default=0)
    penalty: Mapped[int] = mapped_column(MinorUnits, default=0)
    credit: Mapped[int] = mapped_column(MinorUnits, default=0)
    recovery: Mapped[int] = mapped_column(MinorUnits, default=0)
    reverses: Mapped[str | None] = mapped_column(Hex32)  # reversals: the payment they undo
    paid_at: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(Hex32)
    block_number: Mapped[int] = mapped_column(BigInteger)
    log_index: Mapped[int] = mapped_column(Integer)

    loan: Mapped[Loan] = relationship(back_populates="payments")
    # Read-only, loaded in the same query: the outbox row that confirmed this hash, if the oracle did.
    confirmation: Mapped[OutboxItem | None] = relationship(
        primaryjoin="foreign(Payment.payment_ref) == remote(OutboxItem.payment_ref)", viewonly=True,
        lazy="joined", uselist=False)

    @property
    def provider(self) -> str | None:
        return self.confirmation.provider if self.confirmation is not None else None

    @property
    def rail_reference(self) -> str | None:
        return self.confirmation.reference if self.confirmation is not None else None


class Borrower(Base):
    """A registry entry and its latest score; PII never lives here (see the vault)."""

    __tablename__ = "borrowers"

    address: Mapped[str] = mapped_column(Address, primary_key=True)
    registered: Mapped[bool] = mapped_column(Boolean, default=False)  # False: only scored so far
    identity_commitment: Mapped[str | None] = mapped_column(Hex32)
    kyc_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    registered_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_reason: Mapped[str | None] = mapped_column(Hex32)
    score: Mapped[int | None] = mapped_column(Integer)
    credit_limit: Mapped[int | None] = mapped_column(MinorUnits)
    model_version: Mapped[int | None] = mapped_column(BigInteger)
    score_updated_at: Mapped[int | None] = mapped_column(BigInteger)

    scores: Mapped[list[ScoreRecord]] = relationship(
        primaryjoin="Borrower.address == foreign(ScoreRecord.borrower)",
        order_by="ScoreRecord.block_number, ScoreRecord.log_index", viewonly=True)


class ScoreRecord(Base):
    """One `ScoreUpdated` event: the score history of a borrower."""

    __tablename__ = "score_history"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_score_history_tx_hash_log_index"),
                      Index("ix_score_history_borrower", "borrower"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    borrower: Mapped[str] = mapped_column(Address)
    score: Mapped[int] = mapped_column(Integer)
    credit_limit: Mapped[int] = mapped_column(MinorUnits)
    model_version: Mapped[int] = mapped_column(BigInteger)
    report_id: Mapped[int] = mapped_column(MinorUnits)
    block_time: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(Hex32)
    log_index: Mapped[int] = mapped_column(Integer)

"""The read-model queries behind the auditor's routes: filters, the stable orders they page in, and the
bodies that need more than one row (a borrower's score history and loans, a loan's events).

Borrowers are shown as the chain knows them (address, commitment, KYC expiry, scores): nothing here
reads the PII vault.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from api.errors import ApiError
from api.paging import Keyset
from api.schemas.audit import AuditLoanOut, BorrowerOut, PaymentKind
from api.services.reports import STATUSES
from api.views import checksum_address
from ledger.store.models.chain import Borrower, ChainEvent, IndexerCursor, Loan, Payment, ScoreRecord

LOAN_ORDER = Keyset((Loan.id,), (int,))
EVENT_ORDER = Keyset((ChainEvent.block_number, ChainEvent.log_index), (int, int))
PAYMENT_ORDER = Keyset((Payment.block_number, Payment.log_index), (int, int))
BORROWER_ORDER = Keyset((Borrower.address,), (str,))


class Overlay:
    """A row seen with some attributes added or replaced, for a body read with `from_attributes`."""

    def __init__(self, row: Any, **attributes: Any):
        self._row, self._attributes = row, attributes

    def __getattr__(self, name: str) -> Any:
        if name in self._attributes:
            return self._attributes[name]
        return getattr(self._row, name)


def _reason_text(raw: str | None) -> str | None:
    if raw is None:
        return None
    return bytes.fromhex(raw.removeprefix("0x")).rstrip(b"\0").decode("utf-8", errors="replace")


def borrower_bodies(session: Session, rows: list[Borrower]) -> list[BorrowerOut]:
    """Borrower bodies with their score histories and loan ids: two queries for the whole page."""
    addresses = [r.address for r in rows]
    loans: dict[str, list[int]] = {a: [] for a in addresses}
    for loan_id, borrower in session.execute(select(Loan.id, Loan.borrower).where(Loan.borrower.in_(addresses))
                                             .order_by(Loan.id)):
        loans[borrower].append(loan_id)
    scores: dict[str, list[ScoreRecord]] = {a: [] for a in addresses}
    for s in session.scalars(select(ScoreRecord).where(ScoreRecord.borrower.in_(addresses))
                             .order_by(ScoreRecord.block_number, ScoreRecord.log_index)):
        scores[s.borrower].append(s)
    # Ages are measured on the chain's clock as the read model last saw it (what CreditOracle.isFresh compares).
    now = session.scalar(select(func.max(IndexerCursor.block_time))) or 0
    return [BorrowerOut.model_validate(Overlay(r, revoked_reason=_reason_text(r.revoked_reason),
                                               score_history=scores[r.address], loan_ids=loans[r.address],
                                               score_age=max(now - r.score_updated_at, 0)
                                               if now and r.score_updated_at is not None else None))
            for r in rows]


def loan_history(session: Session, row: Loan) -> AuditLoanOut:
    """A loan with its schedule, payments and every event, in chain order."""
    events = session.scalars(select(ChainEvent).where(ChainEvent.loan_id == row.id)
                             .order_by(ChainEvent.block_number, ChainEvent.log_index))
    return AuditLoanOut.model_validate(Overlay(row, events=list(events)))


def _range(name: str, low: int | None, high: int | None) -> None:
    if low is not None and high is not None and low > high:
        raise ApiError(422, "invalid_range", f"from_{name} {low} is after to_{name} {high}")


def loans_query(status: str | None, borrower: str | None) -> Select:
    query = select(Loan)
    if status is not None:
        if status not in STATUSES:
            raise ApiError(422, "invalid_status", f"status {status!r} is not one of {', '.join(STATUSES)}")
        query = query.where(Loan.status == status)
    if borrower is not None:
        query = query.where(Loan.borrower == checksum_address(borrower))
    return query


def event_names(context) -> set[str]:
    b = context.bindings
    return {item["name"] for name in b.manifest.contracts for item in b.by_name(name).abi if item["type"] == "event"}


def events_query(context, *, loan: int | None = None, borrower: str | None = None, name: str | None = None,
                 from_block: int | None = None, to_block: int | None = None, from_time: int | None = None,
                 to_time: int | None = None) -> Select:
    _range("block", from_block, to_block)
    _range("time", from_time, to_time)
    query = select(ChainEvent)
    if loan is not None:
        query = query.where(ChainEvent.loan_id == loan)
    if borrower is not None:
        address = checksum_address(borrower)
        # A borrower's history: events naming them, and every event of their loans (most loan events
        # carry only the loan id).
        query = query.where(or_(ChainEvent.borrower == address,
                                ChainEvent.loan_id.in_(select(Loan.id).where(Loan.borrower == address))))
    if name is not None:
        known = event_names(context)
        if name not in known:
            raise ApiError(422, "invalid_event_type",
                           f"no event {name!r}; the contracts emit {', '.join(sorted(known))}")
        query = query.where(ChainEvent.name == name)
    if from_block is not None:
        query = query.where(ChainEvent.block_number >= from_block)
    if to_block is not None:
        query = query.where(ChainEvent.block_number <= to_block)
    if from_time is not None:
        query = query.where(ChainEvent.block_time >= from_time)
    if to_time is not None:
        query = query.where(ChainEvent.block_time <= to_time)
    return query


def payments_query(loan: int | None = None, kind: PaymentKind | None = None, borrower: str | None = None) -> Select:
    query = select(Payment)
    if loan is not None:
        query = query.where(Payment.loan_id == loan)
    if kind is not None:
        query = query.where(Payment.kind == kind.value)
    if borrower is not None:
        query = query.where(Payment.loan_id.in_(select(Loan.id).where(Loan.borrower == checksum_address(borrower))))
    return query

"""The read model as a function of the stored events: one fold per loan, one per borrower.

The indexer calls `rebuild_loan` / `rebuild_borrower` for whatever a block range (or a reorg)
touched, so the incremental path and the repair path are the same code. `fold_loan` is also what
verification recomputes a loan with, independently of the read-model rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ledger.book import DAY, RUNNING, RUNNING_NAMES, LoanStatus, PaymentKind, solidity_name
from ledger.store.models.chain import Borrower, ChainEvent, Loan, Payment, ScheduleRow, ScoreRecord
from ledger.typed_data import Amortization, DayCount, EarlyRepayment, Frequency


class EventLike(Protocol):
    name: str
    args: dict[str, Any]
    block_number: int
    block_time: int
    tx_hash: str
    log_index: int


@dataclass
class PaymentState:
    reference: str
    kind: str
    amount: int
    paid_at: int
    tx_hash: str
    block_number: int
    log_index: int
    principal: int = 0
    interest: int = 0
    late_fee: int = 0
    penalty: int = 0
    credit: int = 0
    recovery: int = 0
    reverses: str | None = None


@dataclass
class LoanState:
    """A loan recomputed from its events alone; field names follow the read model."""

    id: int
    borrower: str
    terms: dict[str, Any]
    auto_approvable: bool  # the product lets the automatic policy approve it
    request_nonce: int
    requested_at: int
    status: LoanStatus = LoanStatus.REQUESTED
    disbursed_at: int = 0
    accrued_at: int = 0
    closed_at: int | None = None
    paid_installments: int = 0
    principal_repaid: int = 0
    interest_paid: int = 0
    late_fee_paid: int = 0
    penalty_paid: int = 0
    late_fee_unpaid: int = 0
    penalty_unpaid: int = 0
    principal_written_off: int = 0
    credit_balance: int = 0
    recovered: int = 0
    # The plan a prepayment last re-based the schedule on (ScheduleRebased): the contract's schedule is then its
    # installments, from the loan's installment rebased_at + 1 on. None: the original schedule (never re-based, or
    # put back on it by a reversal, which re-allocates on the original schedule).
    rebased_at: int | None = None
    rebased_principal: int = 0
    rebased_installments: int = 0
    rebased_payment_ray: int = 0  # its exact level payment (annuity), as the event gives it
    last_event_block: int = 0
    payments: list[PaymentState] = field(default_factory=list)

    def progress(self) -> dict[str, int]:
        return progress_json(self)


# ILoanBook.LoanProgress's fields, by the read model's (and LoanState's) attribute names.
_PROGRESS_FIELDS = ("paid_installments", "accrued_at", "principal_repaid", "interest_paid", "late_fee_paid",
                    "penalty_paid", "late_fee_unpaid", "penalty_unpaid", "credit_balance", "recovered")


def progress_json(loan: Any) -> dict[str, int]:
    """A LoanState's or read-model Loan's totals as ILoanBook.progressOf returns them (LoanProgress, JSON form)."""
    return {_camel(name): getattr(loan, name) for name in _PROGRESS_FIELDS}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class LoanEventError(ValueError):
    """A loan's events do not form a possible history (e.g. a repayment before any request)."""


# The contract's state machine: the statuses each event may follow. A history that breaks it
# (an event missing or added) is refused rather than folded into a plausible-looking state.
_CLOSED_BY_PAYMENT = (LoanStatus.REPAID, LoanStatus.OVERPAID)
_ALLOWED_FROM = {
    "LoanApproved": (LoanStatus.REQUESTED,), "LoanRejected": (LoanStatus.REQUESTED,),
    "LoanCancelled": (LoanStatus.REQUESTED, LoanStatus.APPROVED), "LoanDisbursed": (LoanStatus.APPROVED,),
    "LateChargesAccrued": RUNNING, "RepaymentApplied": RUNNING, "OverpaymentHeld": RUNNING,
    "LoanRepaid": (*RUNNING, LoanStatus.OVERPAID), "CreditRefunded": (LoanStatus.OVERPAID,),
    "LoanDefaulted": (LoanStatus.ACTIVE,), "LoanWrittenOff": (LoanStatus.DEFAULTED,),
    "RecoveryApplied": (LoanStatus.WRITTEN_OFF,), "DisbursementReversed": (LoanStatus.ACTIVE,),
    "RepaymentReversed": (*RUNNING, *_CLOSED_BY_PAYMENT, LoanStatus.WRITTEN_OFF), "ScheduleRebased": RUNNING,
    # Hardship (issue 17): asked and offered on an active loan, accepted on one still active.
    "RescheduleRequested": (LoanStatus.ACTIVE,), "RescheduleOffered": (LoanStatus.ACTIVE,),
    "RescheduleAccepted": (LoanStatus.ACTIVE,),
}


def fold_loan(events: Iterable[EventLike]) -> LoanState | None:
    """Replay a loan's LoanBook events in chain order; None when there are none."""
    state: LoanState | None = None
    for ev in events:
        a = ev.args
        allowed = _ALLOWED_FROM.get(ev.name)
        if state is not None and allowed is not None and state.status not in allowed:
            raise LoanEventError(f"{ev.name} at block {ev.block_number} cannot follow status "
                                 f"{state.status.solidity_name} (loan {state.id})")
        if ev.name == "LoanRequested":
            if state is not None:
                raise LoanEventError(f"loan {state.id} requested twice")
            state = LoanState(id=a["loanId"], borrower=a["borrower"], terms=dict(a["terms"]),
                              auto_approvable=a["autoApprovable"], request_nonce=a["nonce"],
                              requested_at=ev.block_time)
        elif state is None:
            if ev.name == "PaymentSkipped":
                continue  # a batch item naming an unknown loan: nothing happened to any loan
            raise LoanEventError(f"{ev.name} for loan {a.get('loanId')} before LoanRequested")
        elif ev.name == "LoanApproved":
            state.status = LoanStatus.APPROVED
        elif ev.name == "LoanRejected":
            state.status, state.closed_at = LoanStatus.REJECTED, ev.block_time
        elif ev.name == "LoanCancelled":
            state.status, state.closed_at = LoanStatus.CANCELLED, ev.block_time
        elif ev.name == "LoanDisbursed":
            state.status = LoanStatus.ACTIVE
            state.disbursed_at = state.accrued_at = a["paidAt"]
            state.payments.append(PaymentState(a["paymentRef"], PaymentKind.DISBURSEMENT, a["amount"], a["paidAt"],
                                               ev.tx_hash, ev.block_number, ev.log_index))
        elif ev.name == "LateChargesAccrued":
            state.late_fee_unpaid += a["lateFee"]
            state.penalty_unpaid += a["penalty"]
            state.accrued_at = a["toTime"]
        elif ev.name == "RepaymentApplied":
            state.principal_repaid += a["principal"]
            state.interest_paid += a["interest"]
            state.late_fee_paid += a["lateFee"]
            state.penalty_paid += a["penalty"]
            state.late_fee_unpaid -= a["lateFee"]
            state.penalty_unpaid -= a["penalty"]
            state.paid_installments = a["paidInstallments"]
            # The contract accrues to max(paidAt, accruedAt): a late-arriving confirmation never moves time back.
            state.accrued_at = max(state.accrued_at, a["paidAt"])
            state.payments.append(PaymentState(a["paymentRef"], PaymentKind.REPAYMENT, a["amount"], a["paidAt"], ev.tx_hash,
                                               ev.block_number, ev.log_index, a["principal"], a["interest"],
                                               a["lateFee"], a["penalty"]))
        elif ev.name == "ScheduleRebased":
            # The amounts are the contract's (`schedule(loanId)`, re-read by the indexer); only the numbering is ours.
            state.rebased_at, state.rebased_principal = a["rebasedAt"], a["principal"]
            state.rebased_installments, state.rebased_payment_ray = a["installments"], a["paymentRay"]
        elif ev.name == "RescheduleAccepted":
            # A hardship reschedule re-bases like a prepayment, from the first installment due after it (the ones
            # overdue are folded in: installments paid = rebasedAt), and the loan's term becomes rebasedAt + the
            # new count. The replaced schedule stays in the event (`previous`) and in the chain_events rows.
            state.rebased_at, state.rebased_principal = a["rebasedAt"], a["principal"]
            state.rebased_installments, state.rebased_payment_ray = a["current"]["installments"], a["paymentRay"]
            state.paid_installments = a["rebasedAt"]
            state.terms["installments"] = a["rebasedAt"] + a["current"]["installments"]
        elif ev.name == "OverpaymentHeld":
            # Closed by the repayment just before it; the rest is the borrower's until refunded.
            state.status, state.closed_at = LoanStatus.OVERPAID, ev.block_time
            state.credit_balance = a["creditBalance"]
            state.payments[-1].credit = a["credit"]
        elif ev.name == "CreditRefunded":
            state.credit_balance = a["creditBalance"]
            state.payments.append(PaymentState(a["refundRef"], PaymentKind.CREDIT_REFUND, a["amount"], a["refundedAt"],
                                               ev.tx_hash, ev.block_number, ev.log_index, credit=a["amount"]))
        elif ev.name == "RecoveryApplied":
            state.recovered = a["recovered"]
            state.payments.append(PaymentState(a["paymentRef"], PaymentKind.RECOVERY, a["amount"], a["paidAt"], ev.tx_hash,
                                               ev.block_number, ev.log_index, recovery=a["amount"]))
        elif ev.name == "RepaymentReversed":
            _reverse_repayment(state, ev)
        elif ev.name == "DisbursementReversed":
            # Back to what approval left: the payout bounced before it reached the borrower.
            state.status = LoanStatus.APPROVED
            state.disbursed_at = state.accrued_at = state.paid_installments = 0
            state.rebased_at = None
            state.late_fee_unpaid = state.penalty_unpaid = 0
            state.payments.append(PaymentState(a["reversalRef"], PaymentKind.PAYOUT_REVERSAL, a["amount"], a["reversedAt"],
                                               ev.tx_hash, ev.block_number, ev.log_index,
                                               reverses=a["paymentRef"]))
        elif ev.name == "LoanRepaid":
            state.status, state.closed_at = LoanStatus.REPAID, ev.block_time
        elif ev.name == "LoanDefaulted":
            state.status = LoanStatus.DEFAULTED
        elif ev.name == "LoanWrittenOff":
            state.status, state.closed_at = LoanStatus.WRITTEN_OFF, ev.block_time
            state.principal_written_off = a["principalWrittenOff"]
        state.last_event_block = ev.block_number
    return state


def _reverse_repayment(state: LoanState, ev: EventLike) -> None:
    """A compensating entry: charges unpaid again; the principal and interest totals and the installments
    paid are the book's own re-allocation (carried by the event: the schedule maths stay in the contract)."""
    a, parts = ev.args, ev.args["reversed"]
    if parts["recovery"]:
        state.recovered -= parts["recovery"]
    else:
        state.late_fee_paid -= parts["lateFee"]
        state.penalty_paid -= parts["penalty"]
        state.late_fee_unpaid += parts["lateFee"]
        state.penalty_unpaid += parts["penalty"]
        state.credit_balance -= parts["credit"]
        state.principal_repaid, state.interest_paid = a["principalRepaid"], a["interestPaid"]
        state.paid_installments = a["paidInstallments"]
        state.rebased_at = None  # the book re-allocates on the original schedule
        if state.status in _CLOSED_BY_PAYMENT:
            state.closed_at = None
        state.status = LoanStatus(a["status"])
    state.payments.append(PaymentState(
        a["reversalRef"], PaymentKind.REVERSAL, a["amount"], a["reversedAt"], ev.tx_hash, ev.block_number, ev.log_index,
        parts["principal"], parts["interest"], parts["lateFee"], parts["penalty"], parts["credit"], parts["recovery"],
        reverses=a["paymentRef"]))


# A loan's state -> its schedule as the contract's schedule(loanId) gives it for that state, as JSON rows
# {dueAt, principal, interest}; never read at a historical block (a pruned node has no state there).
ScheduleSource = Callable[["LoanState"], Sequence[dict[str, int]]]


_LOAN_FIELDS = ("borrower", "request_nonce", "requested_at", "disbursed_at", "accrued_at", "closed_at",
                "paid_installments", "principal_repaid", "interest_paid", "late_fee_paid", "penalty_paid",
                "late_fee_unpaid", "penalty_unpaid", "principal_written_off", "credit_balance", "recovered",
                "last_event_block")
_TERM_FIELDS = {"principal": "principal", "annual_rate_bps": "annualRateBps", "installments": "installments",
                "interval": "interval", "grace_period": "gracePeriod", "late_fee_bps": "lateFeeBps",
                "penalty_rate_bps": "penaltyRateBps", "default_after": "defaultAfter", "service_fee": "serviceFee",
                "product_id": "productId", "product_version": "productVersion"}


def loan_events(session: Session, loan_id: int) -> list[ChainEvent]:
    return list(session.scalars(
        select(ChainEvent).where(ChainEvent.contract == "LoanBook", ChainEvent.loan_id == loan_id)
        .order_by(ChainEvent.block_number, ChainEvent.log_index)))


def currency_code(raw: str) -> str:
    """bytes3 as stored (0x-hex) -> 'CNY'."""
    return bytes.fromhex(raw.removeprefix("0x")).decode("ascii", errors="replace").rstrip("\x00")


# Events the indexer set aside (poison events), by (tx hash, log index): the read model leaves them out.
EventKeys = Collection[tuple[str, int]]


def without(events: Iterable[ChainEvent], skip: EventKeys) -> list[ChainEvent]:
    return [e for e in events if (e.tx_hash, e.log_index) not in skip] if skip else list(events)


def rebuild_loan(session: Session, loan_id: int, schedule_of: ScheduleSource, as_of: int, *,
                 schedule_changed: bool, skip: EventKeys = ()) -> Loan | None:
    """Make the loan's read-model rows equal to what its stored events say (deleting them if none), leaving out
    the events in `skip`.

    The schedule rows are the contract's own: recomputed through `schedule_of` when `schedule_changed` (the
    caller saw one of ledger.book.SCHEDULE_EVENTS, or a reorg) or when the loan has none yet; kept otherwise.
    """
    state = fold_loan(without(loan_events(session, loan_id), skip))
    row = session.get(Loan, loan_id)
    if state is None:  # no events, or only batch items that named an unknown loan
        if row is not None:
            session.delete(row)
        return None
    if row is None:
        row = Loan(id=loan_id)
        session.add(row)
    for name in _LOAN_FIELDS:
        setattr(row, name, getattr(state, name))
    for column, key in _TERM_FIELDS.items():
        setattr(row, column, state.terms[key])
    row.currency = currency_code(state.terms["currency"])
    row.amortization = solidity_name(Amortization(state.terms["amortization"]))
    row.frequency = solidity_name(Frequency(state.terms["frequency"]))
    row.day_count = solidity_name(DayCount(state.terms["dayCount"]))
    row.early_repayment = solidity_name(EarlyRepayment(state.terms["earlyRepayment"]))
    row.auto_approvable = state.auto_approvable
    row.status = state.status.solidity_name
    if schedule_changed or not row.schedule:
        _replace_schedule(row, schedule_of(state), state.rebased_at or 0)
    _sync_payments(row, state)
    update_delinquency(row, as_of)
    return row


def _replace_schedule(row: Loan, rows: Sequence[dict[str, int]], first: int = 0) -> None:
    """The contract's schedule rows, numbered as the loan's installments: after a prepayment re-based it, the
    contract gives the installments from `first + 1` on (the ones before are paid)."""
    # Same primary keys as the rows they replace: SQLAlchemy turns delete + insert into an update.
    row.schedule.clear()
    row.schedule.extend(ScheduleRow(number=first + k + 1, due_at=r["dueAt"], principal=r["principal"],
                                    interest=r["interest"]) for k, r in enumerate(rows))


def _sync_payments(row: Loan, state: LoanState) -> None:
    existing = {p.payment_ref: p for p in row.payments}
    wanted = {p.reference: p for p in state.payments}
    for ref in set(existing) - set(wanted):
        row.payments.remove(existing[ref])
    for ref, p in wanted.items():
        target = existing.get(ref)
        if target is None:
            target = Payment(payment_ref=ref)
            row.payments.append(target)
        for name in ("kind", "amount", "principal", "interest", "late_fee", "penalty", "credit", "recovery",
                     "reverses", "paid_at", "tx_hash", "block_number", "log_index"):
            setattr(target, name, getattr(p, name))


def next_due_at(row: Loan) -> int | None:
    """Due date of the oldest unpaid installment, from the loan's schedule rows; None unless running."""
    if row.status not in RUNNING_NAMES:
        return None
    # By number: a re-based schedule's rows start after the installments paid before the prepayment.
    return next((r.due_at for r in row.schedule if r.number == row.paid_installments + 1), None)


def upcoming_due_at(row: Loan, as_of: int) -> int | None:
    """Due date of the first unpaid installment after `as_of` (one paid ahead of its date asks nothing), from
    the loan's schedule rows; unlike `next_due_at`, never a date already passed. The caller knows whether the
    loan runs: the chain may be a block ahead of the read model."""
    return next((r.due_at for r in row.schedule if r.number > row.paid_installments and r.due_at > as_of), None)


def days_past_due(next_due: int | None, as_of: int) -> int:
    """Whole days from the oldest unpaid due date to `as_of`; 0 when nothing is due yet."""
    return (as_of - next_due) // DAY if next_due is not None and as_of > next_due else 0


def update_delinquency(row: Loan, as_of: int) -> None:
    """Next due date and whole days past it, as of `as_of` (the last indexed block's time)."""
    row.next_due_at = next_due_at(row)
    row.days_past_due = days_past_due(row.next_due_at, as_of)
    row.as_of = as_of


def refresh_delinquency(session: Session, as_of: int) -> None:
    """Time moves without events: re-age every running loan (its next due date moves only with events)."""
    for row in session.scalars(select(Loan).where(Loan.status.in_(RUNNING_NAMES))):
        row.days_past_due = days_past_due(row.next_due_at, as_of)
        row.as_of = as_of


_BORROWER_EVENTS = ("BorrowerRegistered", "BorrowerUpdated", "BorrowerRevoked", "ScoreUpdated")


def borrower_events(session: Session, address: str) -> list[ChainEvent]:
    return list(session.scalars(
        select(ChainEvent).where(ChainEvent.borrower == address, ChainEvent.name.in_(_BORROWER_EVENTS))
        .order_by(ChainEvent.block_number, ChainEvent.log_index)))


def rebuild_borrower(session: Session, address: str, *, skip: EventKeys = ()) -> Borrower | None:
    """Make the borrower's row and score history equal to what its stored events say, leaving out `skip`."""
    events = without(borrower_events(session, address), skip)
    session.execute(delete(ScoreRecord).where(ScoreRecord.borrower == address))
    row = session.get(Borrower, address)
    if not events:
        if row is not None:
            session.delete(row)
        return None
    if row is None:
        row = Borrower(address=address)
        session.add(row)
    row.registered, row.revoked = False, False
    row.identity_commitment = row.kyc_expires_at = row.registered_at = row.revoked_reason = None
    row.score = row.credit_limit = row.model_version = row.score_updated_at = None
    for ev in events:
        a = ev.args
        if ev.name == "BorrowerRegistered":
            row.registered, row.registered_at = True, ev.block_time
            row.identity_commitment, row.kyc_expires_at = a["identityCommitment"], a["kycExpiresAt"]
        elif ev.name == "BorrowerUpdated":
            row.identity_commitment, row.kyc_expires_at = a["identityCommitment"], a["kycExpiresAt"]
        elif ev.name == "BorrowerRevoked":
            row.revoked, row.revoked_reason = True, a["reason"]
        elif ev.name == "ScoreUpdated":
            row.score, row.credit_limit, row.model_version = a["score"], a["creditLimit"], a["modelVersion"]
            row.score_updated_at = ev.block_time
            session.add(ScoreRecord(borrower=address, score=a["score"], credit_limit=a["creditLimit"],
                                    model_version=a["modelVersion"], report_id=a["reportId"],
                                    block_time=ev.block_time, block_number=ev.block_number, tx_hash=ev.tx_hash,
                                    log_index=ev.log_index))
    return row

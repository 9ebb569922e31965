"""Read-model rows -> response bodies, and the access rule for loans (own loans only, else 404)."""

from __future__ import annotations

from sqlalchemy import select
from web3 import Web3
from sqlalchemy.orm import Session, selectinload

from api.auth import Principal
from api.errors import ApiError, not_found
from api.schemas import InstallmentOut, LoanOut
from ledger.store.models.chain import Loan

READ_ALL = ("auditor", "operator", "admin")


def loan_out(row: Loan) -> LoanOut:
    return LoanOut(
        id=row.id, borrower=row.borrower, status=row.status, principal=row.principal, currency=row.currency,
        annual_rate_bps=row.annual_rate_bps, amortization=row.amortization, installments=row.installments,
        interval=row.interval, grace_period=row.grace_period, late_fee_bps=row.late_fee_bps,
        penalty_rate_bps=row.penalty_rate_bps, default_after=row.default_after, requested_at=row.requested_at,
        disbursed_at=row.disbursed_at or 0, closed_at=row.closed_at, paid_installments=row.paid_installments,
        principal_repaid=row.principal_repaid, interest_paid=row.interest_paid, late_fee_paid=row.late_fee_paid,
        penalty_paid=row.penalty_paid, principal_written_off=row.principal_written_off, next_due_at=row.next_due_at,
        days_past_due=row.days_past_due,
        schedule=[InstallmentOut(number=s.number, due_at=s.due_at, principal=s.principal, interest=s.interest)
                  for s in sorted(row.schedule, key=lambda s: s.number)])


def visible_loan(session: Session, who: Principal, loan_id: int) -> Loan:
    """The loan if `who` may see it; 404 otherwise, also for someone else's loan (no enumeration)."""
    row = session.scalar(select(Loan).where(Loan.id == loan_id).options(selectinload(Loan.schedule)))
    if row is None or (not who.has(*READ_ALL) and row.borrower.lower() != who.address.lower()):
        raise not_found(f"loan {loan_id}")
    return row


def checksum_address(value: str) -> str:
    """An address from a path or query parameter, checksummed; 422 `invalid_address` if it is not one."""
    try:
        return Web3.to_checksum_address(value)
    except (ValueError, TypeError):
        raise ApiError(422, "invalid_address", f"{value!r} is not an address (0x + 40 hex digits)") from None

"""The access rule for loans (own loans only, else 404) and addresses from paths and queries."""

from __future__ import annotations

from sqlalchemy import select
from web3 import Web3
from sqlalchemy.orm import Session, selectinload

from api.auth import Principal
from api.deps import READ_ALL
from api.errors import ApiError, not_found
from ledger.store.models.chain import Loan


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

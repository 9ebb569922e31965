"""The access rule for loans (own loans only, else 404) and addresses from paths and queries.

A borrower's own loans include those of the wallets their identity held before a recovery (the registry links
them): they read and repay them; what needs the on-chain borrower's signature is refused by name (`own_loan`).
"""

from __future__ import annotations

from sqlalchemy import select
from web3 import Web3
from sqlalchemy.orm import Session, selectinload

from api.auth import Principal
from api.deps import READ_ALL
from api.errors import ApiError, not_found
from api.services.earlier_wallets import refuse_earlier_wallets_loan
from ledger.store.models.chain import Loan


def visible_loan(session: Session, who: Principal, loan_id: int, context=None) -> Loan:
    """The loan if `who` may see it; 404 otherwise, also for someone else's loan (no enumeration). With `context`,
    a loan of a wallet `who` was recovered from is theirs too (asked of the registry only for a loan not `who`'s)."""
    row = session.scalar(select(Loan).where(Loan.id == loan_id).options(selectinload(Loan.schedule)))
    if row is None:
        raise not_found(f"loan {loan_id}")
    if who.has(*READ_ALL) or row.borrower.lower() == who.address.lower():
        return row
    if context is not None and row.borrower.lower() in {w.lower() for w in context.earlier_wallets.of(who.address)}:
        return row
    raise not_found(f"loan {loan_id}")


def own_loan(session: Session, context, address: str, loan_id: int, action: str) -> Loan:
    """The loan `address` signs for (its on-chain borrower): 404 for someone else's, 409 `loan_of_earlier_wallet`
    for one of a wallet `address` was recovered from (`action` needs that lost wallet's signature)."""
    row = visible_loan(session, Principal(address, frozenset()), loan_id, context)
    refuse_earlier_wallets_loan(row.borrower, address, loan_id, action)
    return row


def checksum_address(value: str) -> str:
    """An address from a path or query parameter, checksummed; 422 `invalid_address` if it is not one."""
    try:
        return Web3.to_checksum_address(value)
    except (ValueError, TypeError):
        raise ApiError(422, "invalid_address", f"{value!r} is not an address (0x + 40 hex digits)") from None

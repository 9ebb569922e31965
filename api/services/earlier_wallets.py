"""The wallets one identity held before this one: a wallet recovered onto (BorrowerRegistry.recoverBorrower) reads
and repays the loans the lost wallets took, which stay on-chain under their addresses. The registry links them
(`predecessorOf`), one hop per recovery.

Resolved per request, not cached: a wallet's predecessor is set once, at the recovery that registers it, and
reading it is one eth_call (one per recovery hop); a cache would show no loans for a while right after a recovery.
The single-loan reads ask only when the loan is not the caller's own (the common case asks nothing).
"""

from __future__ import annotations

from eth_utils import to_checksum_address

from api.errors import ApiError


def earlier_wallets(context, address: str) -> list[str]:
    """The wallets `address` was recovered from, most recent first (empty for a wallet never recovered onto)."""
    registry = context.bindings.registry.functions
    found: list[str] = []
    wallet = registry.predecessorOf(to_checksum_address(address)).call()
    while int(wallet, 16) and wallet not in found:
        found.append(wallet)
        wallet = registry.predecessorOf(wallet).call()
    return found


def refuse_earlier_wallets_loan(borrower: str, address: str, loan_id: int, action: str) -> None:
    """409 `loan_of_earlier_wallet` when loan `loan_id` is `borrower`'s, a wallet `address` was recovered from:
    `action` needs the loan's on-chain borrower's signature, and that wallet's key is lost. Reading and repaying it
    (the rail's checkout) need no signature and stay open to the new wallet."""
    if borrower.lower() != address.lower():
        raise ApiError(409, "loan_of_earlier_wallet",
                       f"loan {loan_id} was taken by {borrower}, a wallet this one was recovered from: {action} "
                       "needs that wallet's signature, and its key is lost. The loan can be read and repaid "
                       "(GET .../repayment-instructions) from this wallet; for anything else ask an operator")

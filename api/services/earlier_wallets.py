"""The wallets one identity held before this one: a wallet recovered onto (BorrowerRegistry.recoverBorrower) reads
and repays the loans the lost wallets took, which stay on-chain under their addresses. The registry links them
(`predecessorOf`), one hop per recovery.

Kept per process (`Context.earlier_wallets`): reading them is an eth_call per hop (measured ~19 ms for a wallet never
recovered onto, with the node busy: two thirds of GET /v1/loans). A wallet's predecessor is written once, at the
recovery that registers it, and never changed, so a wallet found recovered is kept for good; "none" is kept
briefly (as the roles are, api/auth.py) and forgotten at sign-in, so a recovery shows the old loans at once after
a new sign-in and at most EMPTY_SECONDS later otherwise. The single-loan reads ask only when the loan is not the
caller's own.
"""

from __future__ import annotations

import time

from eth_utils import to_checksum_address

from api.errors import ApiError

EMPTY_SECONDS = 5.0  # as ROLE_CACHE_SECONDS: how long "never recovered onto" is believed without asking again


class EarlierWallets:
    def __init__(self, context, clock=time.monotonic):
        self.context = context
        self.clock = clock
        self._found: dict[str, tuple[str, ...]] = {}  # for good: predecessors are never rewritten
        self._none: dict[str, float] = {}  # address -> when the registry said it has none

    def of(self, address: str) -> list[str]:
        """The wallets `address` was recovered from, most recent first (empty for a wallet never recovered onto)."""
        wallet = to_checksum_address(address)
        if wallet in self._found:
            return list(self._found[wallet])
        asked = self._none.get(wallet)
        if asked is not None and self.clock() - asked < EMPTY_SECONDS:
            return []
        found = resolve(self.context, wallet)
        if found:
            self._found[wallet] = tuple(found)
            self._none.pop(wallet, None)
        else:
            self._none[wallet] = self.clock()
        return found

    def forget(self, address: str) -> None:
        """Ask the registry again next time (a sign-in: a recovery may have just completed)."""
        self._none.pop(to_checksum_address(address), None)


def resolve(context, address: str) -> list[str]:
    """The registry's chain of predecessors of `address`, read now."""
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

"""The auditor's verification checks: the index against the chain, the state recomputed from events, a
borrower's identity commitment against the vault's record, and the action log against its anchors.

The identity check opens the vault's record and recomputes the commitment from the record and its salt
(not from the vault's stored column); what leaves here is pass/fail and the commitment, never the record.
"""

from __future__ import annotations

from api.errors import ApiError, not_found
from ledger import verify as checks
from ledger.encoding import to_0x_hex
from ledger.identity import identity_commitment
from ledger.store.models.chain import Loan
from ledger.vault import RecordNotFound, VaultIntegrityError

CHECKS = ("index", "state", "identity", "log")


def artifacts(context) -> dict[str, dict]:
    """The ABIs the API's bindings already hold, in the shape ledger.verify takes (no recompiling)."""
    b = context.bindings
    return {name: {"abi": b.by_name(name).abi} for name in b.manifest.contracts}


def run(context, check: str, *, loan_id: int | None = None,
        address: str | None = None) -> tuple[checks.VerificationResult, str | None]:
    """Runs `check` (one of CHECKS); returns its result and, for identity, the commitment the record opens to.

    `address` must already be checksummed (the identity check needs it: 422 `address_required` without).
    """
    b = context.bindings
    if check == "index":
        with context.sessions() as session:
            return checks.index_vs_chain(context.w3, b.manifest, session, artifacts=artifacts(context)), None
    if check == "state":
        with context.sessions() as session:
            result = checks.recomputed_state(context.w3, b.manifest, session, loan_id, artifacts=artifacts(context))
            if loan_id is not None and result.ok and session.get(Loan, loan_id) is None:
                raise not_found(f"loan {loan_id}")  # neither the index nor the node knows it
        return result, None
    if check == "identity":
        if address is None:
            raise ApiError(422, "address_required", "the identity check needs ?address=<borrower>")
        return identity(context, address)
    if check == "log":
        return checks.verify_action_log(context.sessions, b.anchor), None
    raise ValueError(f"unknown check {check!r}; one of {', '.join(CHECKS)}")


def identity(context, borrower: str) -> tuple[checks.VerificationResult, str | None]:
    """Does the registry's commitment for `borrower` match the one the vault's record opens to?"""
    try:
        opening = context.vault.opening(borrower)
    except RecordNotFound:
        result = checks.VerificationResult("identity", checked=1)
        result.fail(f"{borrower}: the vault holds no KYC record for this address")
        return result, None
    except VaultIntegrityError:
        result = checks.VerificationResult("identity", checked=1)
        result.fail(f"{borrower}: the vault's record does not authenticate (altered or under another key)")
        return result, None
    commitment = to_0x_hex(opening.commitment)
    # Recomputed from the opened record and salt, not read from the vault's stored column.
    result = checks.identity(context.w3, context.bindings.manifest, borrower,
                             lambda: identity_commitment(opening.record, opening.salt),
                             artifacts=artifacts(context))
    return result, commitment

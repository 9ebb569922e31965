"""Borrowers on-chain: register a KYC-verified wallet with its identity commitment, revoke one.

Only the commitment (the salted hash the vault's record opens to) goes on-chain; the record stays in the vault.
"""

from __future__ import annotations

from web3.contract.contract import ContractFunction

from api.errors import ApiError
from api.services.decisions import reason_bytes
from api.services.signed_requests import Signed, check_and_relay
from api.services.transactions import Sent, record
from ledger.encoding import to_0x_hex
from ledger.vault import RecordNotFound

KYC_VALIDITY = 365 * 86_400


def register_borrower(context, address: str, actor: str, request_id: str) -> str:
    """Registers a verified borrower with the vault's commitment; returns the transaction hash. Sent with the
    operator service account (as KYC's automatic registration is): another change moves it to a signed decision."""
    try:
        commitment = context.vault.commitment(address)
    except RecordNotFound:
        raise ApiError(409, "not_verified", f"{address} has no verified KYC record") from None
    expiry = context.chain_time() + KYC_VALIDITY
    receipt = context.signer("operator").transact(
        context.bindings.registry.functions.registerBorrower(address, commitment, expiry))
    tx_hash = to_0x_hex(receipt["transactionHash"])
    context.action_log.append(actor, "borrower.register", request_id, {"borrower": address, "tx": tx_hash})
    return tx_hash


def revoke_call(context, address: str, reason: str) -> ContractFunction:
    return context.bindings.registry.functions.revokeBorrower(address, reason_bytes(reason))


def revoke_borrower(context, address: str, reason: str, actor: str, signed: Signed, request_id: str) -> Sent:
    """No new applications from `address`; its existing loans run on. Signed by the operator who decides."""
    receipt = check_and_relay(context, actor, revoke_call(context, address, reason), signed.request,
                              signed.signature)
    return record(context, actor, "borrower.revoke", request_id, {"borrower": address, "reason": reason}, receipt,
                  signed_by=actor)

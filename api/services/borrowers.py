"""Borrowers on-chain: register a KYC-verified wallet with its identity commitment, revoke one.

Only the commitment (the salted hash the vault's record opens to) goes on-chain; the record stays in the vault.
"""

from __future__ import annotations

from web3.contract.contract import ContractFunction

from api.errors import ApiError
from api.services.decisions import reason_bytes
from api.services.signed_requests import REQUEST_TTL, Signed, check_and_relay, signed_call
from api.services.transactions import Sent, record
from ledger.encoding import to_0x_hex
from ledger.forwarding import UnknownCall
from ledger.vault import RecordNotFound

KYC_VALIDITY = 365 * 86_400


def register_call(context, address: str, kyc_expires_at: int | None = None) -> ContractFunction:
    """Registration of a verified borrower with the vault's commitment, valid KYC_VALIDITY from now (chain time)
    unless `kyc_expires_at` is given."""
    try:
        commitment = context.vault.commitment(address)
    except RecordNotFound:
        raise ApiError(409, "not_verified", f"{address} has no verified KYC record") from None
    expiry = context.chain_time() + KYC_VALIDITY if kyc_expires_at is None else kyc_expires_at
    return context.bindings.registry.functions.registerBorrower(address, commitment, expiry)


def register_borrower(context, address: str, actor: str, request_id: str) -> str:
    """Registers a verified borrower as KYC's automatic registration does: sent with the operator service account
    (no person decides it; a later change gives it its own bounded key). Returns the transaction hash."""
    receipt = context.signer("operator").transact(register_call(context, address))
    tx_hash = to_0x_hex(receipt["transactionHash"])
    context.action_log.append(actor, "borrower.register", request_id, {"borrower": address, "tx": tx_hash})
    return tx_hash


def register_signed(context, address: str, actor: str, signed: Signed, request_id: str) -> Sent:
    """Registers a verified borrower by an operator's signed decision. The KYC expiry it signed was set when the
    request was prepared: accepted if it is still within a prepared request's lifetime of a year from now."""
    now = context.chain_time()
    expiry = now + KYC_VALIDITY
    try:
        _, function, args = signed_call(context, signed.request)
    except (UnknownCall, KeyError, ValueError):
        function, args = None, {}
    if function == "registerBorrower" and expiry - REQUEST_TTL <= int(args["kycExpiresAt"]) <= expiry:
        expiry = int(args["kycExpiresAt"])
    receipt = check_and_relay(context, actor, register_call(context, address, expiry), signed.request,
                              signed.signature)
    return record(context, actor, "borrower.register", request_id, {"borrower": address}, receipt, signed_by=actor)


def revoke_call(context, address: str, reason: str) -> ContractFunction:
    return context.bindings.registry.functions.revokeBorrower(address, reason_bytes(reason))


def revoke_borrower(context, address: str, reason: str, actor: str, signed: Signed, request_id: str) -> Sent:
    """No new applications from `address`; its existing loans run on. Signed by the operator who decides."""
    receipt = check_and_relay(context, actor, revoke_call(context, address, reason), signed.request,
                              signed.signature)
    return record(context, actor, "borrower.revoke", request_id, {"borrower": address, "reason": reason}, receipt,
                  signed_by=actor)

"""Borrowers on-chain: register a KYC-verified wallet with its identity commitment, revoke one.

A completed KYC is registered by the oracle (the API records the intent with the KYC record: registration_intent);
an operator registers or revokes by a signed decision the API relays.

Only the commitment (the salted hash the vault's record opens to) goes on-chain; the record stays in the vault.
"""

from __future__ import annotations

import time

from eth_utils import to_checksum_address
from sqlalchemy.orm import Session
from web3.contract.contract import ContractFunction

from api.errors import ApiError
from api.services.decisions import reason_bytes
from api.services.signed_requests import (
    REQUEST_TTL,
    Signed,
    check_and_relay,
    signed_call,
)
from api.services.transactions import Sent, record
from ledger.forwarding import UnknownCall
from ledger.store.models.chain import Borrower
from ledger.store.models.registrations import PENDING, REGISTER, RegistrationIntent
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


def registration_intent(context, address: str, request_id: str, kyc_expires_at: int | None = None, *,
                        kind: str = REGISTER):
    """`also` for Vault.put / Vault.renew: the registration intent of a KYC record being stored, written in the
    record's transaction. The oracle's registration worker sends it with the oracle's key (oracle/registrations.py);
    the API holds no key that could. KYC valid KYC_VALIDITY from now (chain time; the clock if the node is away).
    `kind` UPDATE (a renewal of a registered borrower) sends updateBorrower; the borrower's row is replaced (one per
    borrower: a renewal's intent takes the place of the registration's, done or set aside)."""
    expiry = kyc_expires_at if kyc_expires_at is not None else _now(context) + KYC_VALIDITY
    borrower = to_checksum_address(address)
    key = f"kyc:{borrower}:{request_id}"[:128]  # the column's width; the borrower alone already makes it unique

    def record(session: Session, commitment: str) -> None:
        now = int(time.time())
        session.merge(RegistrationIntent(borrower=borrower, kind=kind, commitment=commitment,
                                         kyc_expires_at=expiry, idempotency_key=key, status=PENDING, outcome=None,
                                         last_error=None, tx_hash=None, attempts=0, next_attempt_at=0,
                                         created_at=now, updated_at=now))
    return record


def registration(context, address: str) -> RegistrationIntent | None:
    """The oracle's registration intent of this borrower (its latest: registration or renewal), if any."""
    with context.sessions() as session:
        return session.get(RegistrationIntent, to_checksum_address(address))


def ledger_borrower(context, address: str) -> Borrower | None:
    """The indexer's row of a registered borrower (commitment, kycExpiresAt, revoked), None if not registered."""
    with context.sessions() as session:
        row = session.get(Borrower, to_checksum_address(address))
    return row if row is not None and row.registered else None


def now(context) -> int:
    """Chain time (KYC expiries are the chain's); the clock if the node is away."""
    return _now(context)


def _now(context) -> int:
    try:
        return context.chain_time()
    except Exception:  # noqa: BLE001 - the node is away: KYC still completes; a year from now by the clock
        return int(time.time())


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

"""Wallet recovery: a borrower who lost their wallet proves the same identity again on a new one.

The steps are KYC's (api.services.kyc, purpose `recovery`): `POST /v1/kyc/recovery` seals the record and texts the
codes, `POST /v1/kyc/verify` confirms them. What is recovery's own is here: which verified record the new wallet
claims (found by the ID number's blind index, never by decrypting), whether it is the same person's (the name and
the bank card verified with that ID number), and, once the codes are confirmed, moving the vault record to the new
wallet with the oracle's `recover` intent in one transaction. The oracle's registration worker sends it as
BorrowerRegistry.recoverBorrower (old revoked "recovered", new registered, linked both ways).

Risk: when the lost wallet owes more principal than `recovery_review_principal` the intent is stored `held` and
`GET /v1/kyc` says `recovery_pending` until an operator confirms it (`POST /v1/kyc/recoveries/{address}/confirm`);
the operators' list is `GET /v1/kyc/recoveries`.

Exposure follows the identity on-chain (LoanBook.approve adds the outstanding principal of the wallets the new one
was recovered from), so a new wallet never starts a fresh limit beside the old loans.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from eth_utils import to_checksum_address
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.errors import ApiError
from api.services.borrowers import KYC_VALIDITY, ledger_borrower, now
from ledger.identity import KycRecord
from ledger.store.models.registrations import (
    DONE,
    HELD,
    PENDING,
    RECOVER,
    SET_ASIDE,
    RegistrationIntent,
)
from ledger.vault import DuplicateIdentity, IdentityMismatch, RecordNotFound


@dataclass(frozen=True)
class Recovery:
    """A wallet recovery as operators see it: the new wallet, the lost one, and where its intent stands."""

    borrower: str
    recovered_from: str
    status: str
    outstanding_principal: int
    created_at: int


def refuse_unless_recoverable(context, address: str, record: KycRecord) -> str:
    """The lost wallet `record` claims, or 409 naming why this wallet may not recover it; checked before any code
    is sent. Returns the old wallet's address."""
    if context.vault.has_record(address):
        raise ApiError(409, "already_verified", "this wallet has a verified record: recovery is for a new wallet")
    if ledger_borrower(context, address) is not None:
        # A wallet the registry knows (a lost one recovered from, or revoked) never takes an identity again.
        raise ApiError(409, "wallet_already_used", "this wallet was registered before: recover onto a new wallet")
    old = context.vault.find_by_id_number(record.id_number)
    if old is None:
        raise ApiError(409, "recovery_unknown_identity", "no wallet was verified with this ID number: "
                                                         "submit POST /v1/kyc instead")
    verified = context.vault.get(old)
    for name in ("name", "bank_card"):
        if getattr(verified, name) != getattr(record, name):
            raise ApiError(409, "recovery_other_person", f"the {name.replace('_', ' ')} is not the one verified "
                                                         f"with this ID number: a recovery is the same person's")
    in_flight = _intent(context, old)
    if in_flight is not None and in_flight.kind == RECOVER and in_flight.status not in (DONE, SET_ASIDE):
        raise ApiError(409, "recovery_in_progress", "this identity's last wallet recovery is not on-chain yet")
    owner = context.vault.find_by_phone(record.phone)
    if owner is not None and owner.lower() not in (old.lower(), address.lower()):
        raise ApiError(409, "duplicate_phone", "this phone is verified for another wallet")
    return old


def store(context, address: str, record: KycRecord, request_id: str) -> None:
    """Codes confirmed: the record moves from the lost wallet to `address` with the oracle's `recover` intent
    (held for an operator above the risk threshold), both in one transaction."""
    try:
        old = refuse_unless_recoverable(context, address, record)
    except ApiError as exc:
        if exc.code == "already_verified":
            return  # moved by this application before (a retry after a cut-off)
        raise
    held = outstanding_principal(context, old) > context.settings.recovery_review_principal
    borrower, expiry = to_checksum_address(address), now(context) + KYC_VALIDITY
    key = f"recover:{borrower}:{request_id}"[:128]

    def intent(session: Session, commitment: str) -> None:
        at = int(time.time())
        session.merge(RegistrationIntent(borrower=borrower, kind=RECOVER, recovered_from=to_checksum_address(old),
                                         commitment=commitment, kyc_expires_at=expiry, idempotency_key=key,
                                         status=HELD if held else PENDING, outcome=None, last_error=None,
                                         tx_hash=None, attempts=0, next_attempt_at=0, created_at=at, updated_at=at))
    try:
        context.vault.recover(old, address, record, also=intent)
    except IdentityMismatch as exc:
        raise ApiError(409, "recovery_other_person", str(exc)) from None
    except DuplicateIdentity as exc:
        raise ApiError(409, f"duplicate_{exc.field}", str(exc)) from None
    except RecordNotFound:
        raise ApiError(409, "recovery_unknown_identity", "the verified record moved meanwhile") from None
    context.action_log.append(address, "kyc.recovered", request_id,
                              {"recovered_from": to_checksum_address(old), "held": held})


def outstanding_principal(context, address: str) -> int:
    """What `address` (and the wallets it was recovered from) owe in principal, in the limits' currency."""
    b = context.bindings
    total, wallet = 0, to_checksum_address(address)
    while int(wallet, 16) != 0:
        total += b.book.functions.outstandingPrincipal(wallet, b.credit_limit_currency).call()
        wallet = b.registry.functions.predecessorOf(wallet).call()
    return total


def held(context) -> list[Recovery]:
    """Recoveries waiting for an operator (oldest first)."""
    with context.sessions() as session:
        rows = list(session.scalars(select(RegistrationIntent).where(RegistrationIntent.kind == RECOVER,
                                                                     RegistrationIntent.status == HELD)
                                    .order_by(RegistrationIntent.created_at)))
    return [Recovery(row.borrower, row.recovered_from, row.status, outstanding_principal(context, row.recovered_from),
                     row.created_at) for row in rows]


def confirm(context, address: str, operator: str, request_id: str) -> Recovery:
    """An operator's confirmation: the held recovery becomes pending, for the oracle to send. 409 unless held."""
    borrower = to_checksum_address(address)
    with context.sessions.begin() as session:
        changed = session.execute(update(RegistrationIntent).where(
            RegistrationIntent.borrower == borrower, RegistrationIntent.kind == RECOVER,
            RegistrationIntent.status == HELD).values(status=PENDING, updated_at=int(time.time()))).rowcount
    if not changed:
        raise ApiError(409, "no_held_recovery", "no wallet recovery of this address waits for a confirmation")
    row = _intent(context, borrower)
    context.action_log.append(operator, "kyc.recovery_confirmed", request_id,
                              {"borrower": borrower, "recovered_from": row.recovered_from})
    return Recovery(row.borrower, row.recovered_from, row.status, 0, row.created_at)


def _intent(context, address: str) -> RegistrationIntent | None:
    with context.sessions() as session:
        return session.get(RegistrationIntent, to_checksum_address(address))

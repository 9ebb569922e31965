"""Registration intents: a completed KYC waiting to be registered on-chain by the oracle.

The API writes one in the same transaction as the KYC record it registers (so a verified borrower is never left
without one, and none exists for a record that was not stored), and returns; the oracle's registration worker
sends it with the oracle's key (BorrowerRegistry.registerBorrower admits ORACLE_ROLE). One row per borrower: a
renewal (or a changed commitment) replaces the borrower's row with an `update` intent (updateBorrower).

States: pending -> done (`outcome` registered | already_registered, with `tx_hash` when this worker's
transaction did it) | set_aside (the registry refused it, or it cannot be sent as stored: `outcome` names why,
an operator must act; never retried automatically). A recovery may start `held` (an operator confirms it first:
then pending). A pending row that failed for the node's sake keeps its
`attempts`; the worker asks the registry (borrowerOf) before sending it again.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base

PENDING, DONE, SET_ASIDE = "pending", "done", "set_aside"
# A wallet recovery above the risk threshold waits for an operator's confirmation before the worker may send it.
HELD = "held"
# What the intent asks of the registry: a first registration, a renewal / new commitment of a registered one, or a
# wallet recovery (recoverBorrower from `recovered_from` to `borrower`, the new wallet).
REGISTER, UPDATE, RECOVER = "register", "update", "recover"


class RegistrationIntent(Base):
    __tablename__ = "registration_intents"
    __table_args__ = (Index("ix_registration_intents_status", "status"),)

    borrower: Mapped[str] = mapped_column(String(42), primary_key=True)  # checksummed address
    kind: Mapped[str] = mapped_column(String(16), default=REGISTER, server_default=REGISTER)  # register | update | recover
    recovered_from: Mapped[str | None] = mapped_column(String(42), nullable=True)  # recover: the lost wallet
    commitment: Mapped[str] = mapped_column(String(66))  # 0x + the vault's identity commitment
    kyc_expires_at: Mapped[int] = mapped_column(BigInteger)  # unix time, as registerBorrower takes it
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)  # the KYC request that completed it
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger, default=0)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)

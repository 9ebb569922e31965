"""The API's own tables: sign-in nonces, idempotency records, auditors, pending KYC, one-time codes, settings.

None holds PII in clear: a pending KYC application is sealed by the vault, a one-time code and the
phone it went to are kept only as keyed hashes.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base


class AuthNonce(Base):
    """A Sign-In with Ethereum nonce: issued, then used at most once before it expires."""

    __tablename__ = "auth_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_by: Mapped[str | None] = mapped_column(String(42))


class IdempotencyRecord(Base):
    """The first answer to a POST with an Idempotency-Key, replayed for every retry with the same key.

    While the first request runs, `owner` says which process holds the claim and `tx_hash` the transaction
    it signed (written before the node sees it), so a retry after a crash can ask the chain what happened.
    """

    __tablename__ = "idempotency_keys"

    principal: Mapped[str] = mapped_column(String(42), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    route: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)     # None while the first request is running
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    owner: Mapped[str | None] = mapped_column(String(160))      # "<host>|<pid>|<process start>|<claim>"
    tx_hash: Mapped[str | None] = mapped_column(String(66))     # the relayed transaction, once signed


class Auditor(Base):
    """An address the admin lets read everything (auditors hold no on-chain role: they change nothing)."""

    __tablename__ = "auditors"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    added_by: Mapped[str] = mapped_column(String(42))
    added_at: Mapped[int] = mapped_column(BigInteger)


class KycApplication(Base):
    """A KYC submission waiting for its one-time codes (or a phone change waiting for its code)."""

    __tablename__ = "kyc_applications"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))              # "initial" | "phone_change"
    sealed: Mapped[bytes] = mapped_column(LargeBinary)            # the record, sealed by the vault
    phone_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    card_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class OtpChallenge(Base):
    """A one-time code sent for (address, purpose); only its keyed hash is kept."""

    __tablename__ = "otp_challenges"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(42), index=True)
    purpose: Mapped[str] = mapped_column(String(16))              # "phone" | "card" | "phone_change"
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[int | None] = mapped_column(BigInteger)


class StepUpChallenge(Base):
    """A step-up code sent for one action with its parameters (`binding`: sha256 of both); only its keyed hash is
    kept. `used_for`: the Idempotency-Key of the request that spent it (its retry is the same request)."""

    __tablename__ = "step_up_challenges"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(42), index=True)
    action: Mapped[str] = mapped_column(String(32))
    binding: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[int | None] = mapped_column(BigInteger)    # -1: retired (a newer code, or too many wrong ones)
    used_for: Mapped[str | None] = mapped_column(String(128))


class ApiSetting(Base):
    """Operator-set switches that every API process must agree on (e.g. the automatic approval policy)."""

    __tablename__ = "api_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(42))
    updated_at: Mapped[int] = mapped_column(BigInteger)

"""The PII vault's tables: every personal value is ciphertext; lookups go through blind indexes.

Each record has its own data key (DEK), stored only wrapped by a key-encryption key (KEK) whose version
the row remembers. How the bytes are made and checked is ledger.vault's job; these are just the columns.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base


class KycVaultRecord(Base):
    """One borrower's KYC record, sealed (AES-GCM, nonce || ciphertext || tag) field by field."""

    __tablename__ = "kyc_records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)             # uuid4, bound into every seal
    borrower: Mapped[str] = mapped_column(String(42), unique=True)            # checksummed address
    commitment: Mapped[str] = mapped_column(String(66))                       # 0x-hex, as registered on-chain
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    name_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    phone_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    bank_card_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    salt_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # HMAC-SHA256 (hex) of the normalised value: finds a record, and refuses a duplicate, without decrypting.
    phone_index: Mapped[str] = mapped_column(String(64), unique=True)
    id_number_index: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)                       # unix seconds
    updated_at: Mapped[int] = mapped_column(BigInteger)


class VaultKey(Base):
    """A vault-wide secret (the blind-index key), wrapped by a KEK like a record's DEK."""

    __tablename__ = "vault_keys"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    kek_version: Mapped[int] = mapped_column(Integer)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)


PII_TABLES = [Base.metadata.tables[KycVaultRecord.__tablename__], Base.metadata.tables[VaultKey.__tablename__]]

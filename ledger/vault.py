"""The PII vault: KYC records stored only encrypted (envelope encryption), and the keys that open them.

- Each record gets a random 256-bit data key (DEK). Every field (name, ID number, phone, bank card and the
  commitment salt) is sealed with AES-GCM under it, with associated data naming the record id, the
  borrower and the field, so a ciphertext moved to another field or record no longer opens.
- The DEK is stored only wrapped (AES-GCM) by a key-encryption key (KEK); the row keeps the KEK's version
  and the wrap binds record id and version. Rotation re-wraps DEKs, never re-encrypts data.
- KEKs live in a key file (JSON, mode 0600) or in LOANLEDGER_KEK, never in the database.
- Lookups by phone or ID number use blind indexes: HMAC-SHA256 of the normalised value under a vault-wide
  index key, itself stored wrapped by the KEK (and re-wrapped on rotation with the DEKs). Normalised is
  ledger.identity's one canonical form (ASCII digits, whatever digits were typed); the phone's index is keyed on
  the national number of its E.164 form (+86 only, so one-to-one with it), which is what records sealed before
  phones were kept in E.164 were indexed on: their indexes stay valid without a re-index.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eth_utils import is_address, to_checksum_address
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ledger.config import Settings
from ledger.encoding import to_0x_hex
from ledger.errors import LoanLedgerError
from ledger.identity import (
    InvalidIdentity,
    KycRecord,
    MaskedKyc,
    identity_commitment,
    national_number,
    new_salt,
    normalize_id_number,
    normalize_phone,
)
from ledger.store.models.pii import KycVaultRecord, VaultKey

KEK_ENV = "LOANLEDGER_KEK"
KEY_BYTES = 32
_NONCE_BYTES = 12
_KEY_FILE_FORMAT = "loanledger-kek/1"
_INDEX_KEY = "blind-index"
_FIELDS = ("name", "id_number", "phone", "bank_card")


class VaultError(LoanLedgerError):
    """Root of the vault's errors."""


class KeyringError(VaultError):
    """The KEKs cannot be loaded or saved (missing or malformed key file, unsafe permissions, bad env value)."""


class MissingKeyVersion(KeyringError, LookupError):
    """Data is wrapped by a KEK version that the keyring does not hold: restore that key before going on."""

    def __init__(self, version: int, available: list[int]):
        self.version = version
        super().__init__(f"KEK version {version} is not in the keyring (it holds {available or 'none'})")


class VaultIntegrityError(VaultError):
    """A ciphertext does not authenticate: altered, moved from another record or field, or the wrong key."""


class DuplicateIdentity(VaultError):
    """The borrower already has a record, or the phone / ID number belongs to another borrower."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class IdentityMismatch(VaultError):
    """A wallet recovery's record is not the one verified for that ID number: another person (`field` differs)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class RecordNotFound(VaultError, LookupError):
    """No KYC record for this borrower."""


# ---------------------------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Keyring:
    """KEKs by version; new wraps use `current`, older versions only unwrap."""

    keys: Mapping[int, bytes]
    current: int
    source: str = "memory"

    def __post_init__(self) -> None:
        for version, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise KeyringError(f"KEK version {version} from {self.source} is {len(key)} bytes, not {KEY_BYTES}")
        if self.current not in self.keys:
            raise KeyringError(f"the current KEK version {self.current} is not among {sorted(self.keys)}")

    @classmethod
    def generate(cls, version: int = 1, source: str = "memory") -> Keyring:
        return cls({version: AESGCM.generate_key(256)}, version, source)

    @property
    def versions(self) -> list[int]:
        return sorted(self.keys)

    def kek(self, version: int) -> bytes:
        try:
            return self.keys[version]
        except KeyError:
            raise MissingKeyVersion(version, self.versions) from None

    def with_new_version(self) -> Keyring:
        version = max(self.keys) + 1
        return Keyring({**self.keys, version: AESGCM.generate_key(256)}, version, self.source)

    def without(self, versions: set[int]) -> Keyring:
        if self.current in versions:
            raise KeyringError(f"KEK version {self.current} is the current one and cannot be retired")
        return Keyring({v: k for v, k in self.keys.items() if v not in versions}, self.current, self.source)

    def __repr__(self) -> str:
        return f"Keyring(versions={self.versions}, current={self.current}, source={self.source!r})"


class KeyFile:
    """The KEKs on disk: {"format", "current", "keys": {version: base64}}, mode 0600, replaced atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Keyring:
        if not self.path.exists():
            raise KeyringError(f"no key file at {self.path}: run `loanledger keys init`")
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyringError(f"{self.path} is readable by others (mode {mode:o}): `chmod 600` it")
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") != _KEY_FILE_FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {_KEY_FILE_FORMAT!r}")
            keys = {int(v): base64.b64decode(k, validate=True) for v, k in data["keys"].items()}
            current = int(data["current"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyringError(f"{self.path} is not a LoanLedger key file: {exc}") from None
        return Keyring(keys, current, f"file:{self.path}")

    def create(self) -> Keyring:
        """A new key file holding one fresh KEK (version 1); refuses to replace an existing file."""
        keyring = Keyring.generate(source=f"file:{self.path}")
        self._write(keyring, exclusive=True)
        return keyring

    def add_version(self) -> Keyring:
        """A fresh KEK as the new current version, on disk (fsynced) before anything is wrapped with it."""
        keyring = self.load().with_new_version()
        self._write(keyring)
        return keyring

    def retire(self, versions: set[int]) -> Keyring:
        keyring = self.load().without(versions)
        self._write(keyring)
        return keyring

    def _write(self, keyring: Keyring, *, exclusive: bool = False) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = {"format": _KEY_FILE_FORMAT, "current": keyring.current,
                   "keys": {str(v): base64.b64encode(k).decode() for v, k in sorted(keyring.keys.items())}}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        # Created 0600 from the first byte, so the keys are never readable by others, not even briefly.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(payload, out, indent=2)
                out.flush()
                os.fsync(out.fileno())
            if exclusive:
                try:
                    os.link(temporary, self.path)   # atomic, and fails instead of overwriting
                except FileExistsError:
                    raise KeyringError(f"{self.path} already exists; not overwriting it") from None
            else:
                os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def keyring_from_env(value: str) -> Keyring:
    """LOANLEDGER_KEK: one base64 key (version 1), or "1:<base64>,2:<base64>" (the highest is current)."""
    keys: dict[int, bytes] = {}
    try:
        for part in (p.strip() for p in value.split(",") if p.strip()):
            version, _, encoded = part.rpartition(":") if ":" in part else ("1", "", part)
            keys[int(version)] = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise KeyringError(f"{KEK_ENV} is not base64 or version:base64 pairs: {exc}") from None
    if not keys:
        raise KeyringError(f"{KEK_ENV} is empty")
    return Keyring(keys, max(keys), "env")


def load_keyring(kek_path: Path, env: Mapping[str, str]) -> Keyring:
    """The KEKs from LOANLEDGER_KEK in `env` when set, else from the key file at `kek_path`."""
    if env.get(KEK_ENV):
        return keyring_from_env(env[KEK_ENV])
    return KeyFile(kek_path).load()


def keyring_from_settings(settings: Settings) -> Keyring:
    """The KEKs the settings name: `kek` (LOANLEDGER_KEK) when set, else the key file at `kek_path`."""
    if settings.kek:
        return keyring_from_env(settings.kek.get_secret_value())
    return KeyFile(settings.kek_path).load()


# ------------------------------------------------------------------------------------------ sealing


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes, what: str) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], aad)
    except InvalidTag:
        raise VaultIntegrityError(f"{what} does not authenticate: altered, moved from another record, "
                                  f"or sealed under another key") from None


def _field_aad(record_id: str, borrower: str, name: str) -> bytes:
    return f"loanledger/kyc/v1/{record_id}/{borrower}/{name}".encode()


def _wrap_aad(owner: str, kek_version: int) -> bytes:
    return f"loanledger/wrap/v1/{owner}/{kek_version}".encode()


# -------------------------------------------------------------------------------------------- vault


@dataclass(frozen=True)
class IdentityOpening:
    """What opens a borrower's on-chain commitment: the record and its salt (for auditors)."""

    borrower: str
    record: KycRecord
    salt: bytes
    commitment: bytes


@dataclass(frozen=True)
class RotationReport:
    to_version: int
    records: int                                          # record DEKs re-wrapped
    vault_keys: int                                       # vault-wide keys re-wrapped
    previous: dict[int, int] = field(default_factory=dict)  # old KEK version -> items re-wrapped from it


class Vault:
    """Borrowers' KYC records, encrypted at rest. `store` is a session factory or an engine."""

    def __init__(self, store: sessionmaker | Engine, keyring: Keyring):
        self._sessions = store if isinstance(store, sessionmaker) else sessionmaker(store, expire_on_commit=False)
        self.keyring = keyring
        self._index_key_cache: bytes | None = None

    # -- writing

    def put(self, borrower: str, record: KycRecord, also: Callable[[Session, str], None] | None = None) -> str:
        """Store a new borrower's record with a fresh salt; returns the record id. `also(session, commitment)` runs
        in the same transaction (what must be stored with the record or not at all, e.g. its registration intent)."""
        borrower = _address(borrower)
        phone_index, id_index = self._phone_index(record.phone), self._blind("id_number", record.id_number)
        row = self._new_row(borrower, record, phone_index, id_index)
        record_id = row.id
        try:
            with self._sessions.begin() as session:
                self._refuse_duplicates(session, borrower, phone_index, id_index)
                session.add(row)
                if also is not None:
                    also(session, row.commitment)
        except IntegrityError:
            # Another writer got there between our check and our insert: say which value collided.
            with self._sessions() as session:
                self._refuse_duplicates(session, borrower, phone_index, id_index)
            raise
        return record_id

    def _new_row(self, borrower: str, record: KycRecord, phone_index: str, id_index: str) -> KycVaultRecord:
        """A record row for `borrower`, sealed under a fresh data key with a fresh salt."""
        record_id, dek, salt, now = str(uuid.uuid4()), AESGCM.generate_key(256), new_salt(), int(time.time())
        sealed = {f"{name}_sealed": _seal(dek, getattr(record, name).encode(), _field_aad(record_id, borrower, name))
                  for name in _FIELDS}
        return KycVaultRecord(id=record_id, borrower=borrower,
                              commitment=to_0x_hex(identity_commitment(record, salt)),
                              kek_version=self.keyring.current, wrapped_dek=self._wrap(dek, record_id),
                              salt_sealed=_seal(dek, salt, _field_aad(record_id, borrower, "salt")),
                              phone_index=phone_index, id_number_index=id_index, created_at=now, updated_at=now,
                              **sealed)

    def recover(self, old: str, new: str, record: KycRecord,
                also: Callable[[Session, str], None] | None = None) -> str:
        """Move a borrower's record from a lost wallet `old` to `new` (wallet recovery), re-proven as `record`: the
        same ID number, name and bank card as the record verified on `old` (IdentityMismatch naming the first that
        differs), a phone no other borrower has. The old row goes, the new one is sealed under a fresh key and salt
        (fields are bound to their wallet); `also(session, commitment)` runs in the same transaction (the recovery
        intent). Returns the new commitment."""
        old, new = _address(old), _address(new)
        phone_index, id_index = self._phone_index(record.phone), self._blind("id_number", record.id_number)
        with self._sessions.begin() as session:
            row = self._row(session, old, lock=True)
            if row.id_number_index != id_index:
                raise IdentityMismatch("id_number", "this ID number is not the one that wallet was verified with")
            dek = self._unwrap(row.wrapped_dek, row.id, row.kek_version)
            for name in ("name", "bank_card"):
                verified = _open(dek, getattr(row, f"{name}_sealed"), _field_aad(row.id, old, name),
                                 f"the {name} of record {row.id}").decode()
                if verified != getattr(record, name):
                    raise IdentityMismatch(name, f"the {name.replace('_', ' ')} is not the one verified with this "
                                                 f"ID number")
            if session.scalar(select(KycVaultRecord.borrower).where(KycVaultRecord.borrower == new)) is not None:
                raise DuplicateIdentity("borrower", f"{new} already has a KYC record")
            clash = session.scalar(select(KycVaultRecord.borrower).where(KycVaultRecord.phone_index == phone_index,
                                                                         KycVaultRecord.borrower != old))
            if clash is not None:
                raise DuplicateIdentity("phone", "this phone number belongs to another borrower")
            session.delete(row)
            session.flush()  # the indexes are unique: the old row leaves before the new one comes
            moved = self._new_row(new, record, phone_index, id_index)
            session.add(moved)
            if also is not None:
                also(session, moved.commitment)
            return moved.commitment

    def update_phone(self, borrower: str, phone: str) -> None:
        """Replace the phone (after the new number is confirmed); the commitment does not change."""
        borrower, phone = _address(borrower), normalize_phone(phone)
        phone_index = self._phone_index(phone)
        with self._sessions.begin() as session:
            row = self._row(session, borrower, lock=True)
            clash = session.scalar(select(KycVaultRecord.borrower).where(KycVaultRecord.phone_index == phone_index,
                                                                         KycVaultRecord.borrower != borrower))
            if clash is not None:
                raise DuplicateIdentity("phone", "this phone number belongs to another borrower")
            dek = self._unwrap(row.wrapped_dek, row.id, row.kek_version)
            row.phone_sealed = _seal(dek, phone.encode(), _field_aad(row.id, borrower, "phone"))
            row.phone_index, row.updated_at = phone_index, int(time.time())

    def renew(self, borrower: str, record: KycRecord, also: Callable[[Session, str], None] | None = None) -> str:
        """Replace a borrower's record with its re-verified one (a KYC renewal) of the same person: the same ID
        number (DuplicateIdentity("id_number") otherwise), the salt kept, so the commitment changes only if the name
        did. `also(session, commitment)` runs in the same transaction (the renewal's update intent); returns the
        commitment."""
        borrower = _address(borrower)
        phone_index, id_index = self._phone_index(record.phone), self._blind("id_number", record.id_number)
        with self._sessions.begin() as session:
            row = self._row(session, borrower, lock=True)
            if row.id_number_index != id_index:
                raise DuplicateIdentity("id_number", "this ID number is not the one this wallet was verified with")
            clash = session.scalar(select(KycVaultRecord.borrower).where(KycVaultRecord.phone_index == phone_index,
                                                                         KycVaultRecord.borrower != borrower))
            if clash is not None:
                raise DuplicateIdentity("phone", "this phone number belongs to another borrower")
            dek = self._unwrap(row.wrapped_dek, row.id, row.kek_version)
            salt = _open(dek, row.salt_sealed, _field_aad(row.id, borrower, "salt"), f"the salt of record {row.id}")
            for name in _FIELDS:
                setattr(row, f"{name}_sealed", _seal(dek, getattr(record, name).encode(),
                                                     _field_aad(row.id, borrower, name)))
            row.commitment = to_0x_hex(identity_commitment(record, salt))
            row.phone_index, row.updated_at = phone_index, int(time.time())
            if also is not None:
                also(session, row.commitment)
            return row.commitment

    def rotate(self, to_version: int | None = None) -> RotationReport:
        """Re-wrap every DEK and vault key not yet under `to_version` (default: current), in one transaction.

        Either everything moves or nothing does: a record whose KEK is missing, or that does not
        authenticate, aborts the whole rotation and leaves every row as it was.
        """
        target = self.keyring.current if to_version is None else to_version
        new_kek = self.keyring.kek(target)
        previous: Counter[int] = Counter()
        with self._sessions.begin() as session:
            records = session.scalars(select(KycVaultRecord).where(KycVaultRecord.kek_version != target)
                                      .order_by(KycVaultRecord.id).with_for_update()).all()
            for row in records:
                dek = self._unwrap(row.wrapped_dek, row.id, row.kek_version)
                previous[row.kek_version] += 1
                row.wrapped_dek, row.kek_version = _seal(new_kek, dek, _wrap_aad(row.id, target)), target
            keys = session.scalars(select(VaultKey).where(VaultKey.kek_version != target).with_for_update()).all()
            for key in keys:
                secret = self._unwrap(key.wrapped, f"key:{key.name}", key.kek_version)
                previous[key.kek_version] += 1
                key.wrapped, key.kek_version = _seal(new_kek, secret, _wrap_aad(f"key:{key.name}", target)), target
        return RotationReport(target, len(records), len(keys), dict(previous))

    # -- pending applications (sealed, outside the records, until their one-time codes are confirmed)

    def seal_pending(self, borrower: str, record: KycRecord) -> bytes:
        """A KYC submission sealed for holding until it is verified: version || wrapped DEK || sealed JSON.

        Kept apart from the records so an unverified phone or ID number never claims a blind index.
        """
        borrower, dek = _address(borrower), AESGCM.generate_key(256)
        version = self.keyring.current
        wrapped = _seal(self.keyring.kek(version), dek, _wrap_aad(f"pending:{borrower}", version))
        body = _seal(dek, json.dumps(record.to_dict(), sort_keys=True).encode(), _field_aad("pending", borrower, "record"))
        return version.to_bytes(4, "big") + len(wrapped).to_bytes(2, "big") + wrapped + body

    def open_pending(self, borrower: str, sealed: bytes) -> KycRecord:
        borrower = _address(borrower)
        version, size = int.from_bytes(sealed[:4], "big"), int.from_bytes(sealed[4:6], "big")
        dek = self._unwrap(sealed[6:6 + size], f"pending:{borrower}", version)
        body = _open(dek, sealed[6 + size:], _field_aad("pending", borrower, "record"), "a pending KYC application")
        return KycRecord(**json.loads(body))

    # -- reading

    def get(self, borrower: str) -> KycRecord:
        return self.opening(borrower).record

    def masked(self, borrower: str) -> MaskedKyc:
        return self.get(borrower).masked()

    def opening(self, borrower: str) -> IdentityOpening:
        """The decrypted record with its salt; checks that they still give the stored commitment."""
        borrower = _address(borrower)
        with self._sessions() as session:
            row = self._row(session, borrower)
        dek = self._unwrap(row.wrapped_dek, row.id, row.kek_version)
        values = {name: _open(dek, getattr(row, f"{name}_sealed"), _field_aad(row.id, borrower, name),
                              f"the {name} of record {row.id}").decode() for name in _FIELDS}
        salt = _open(dek, row.salt_sealed, _field_aad(row.id, borrower, "salt"), f"the salt of record {row.id}")
        record = KycRecord(**values)
        commitment = identity_commitment(record, salt)
        if to_0x_hex(commitment) != row.commitment:
            raise VaultIntegrityError(f"record {row.id}: the stored commitment {row.commitment} is not the "
                                      f"commitment of the sealed record")
        return IdentityOpening(borrower, record, salt, commitment)

    def commitment(self, borrower: str) -> bytes:
        """The bytes32 to register on-chain (BorrowerRegistry.registerBorrower)."""
        return self.opening(borrower).commitment

    def has_record(self, borrower: str) -> bool:
        """Whether `borrower` has a record, without opening it."""
        return self._find(KycVaultRecord.borrower, _address(borrower)) is not None

    def find_by_phone(self, phone: str) -> str | None:
        """The borrower whose record has this phone, found without decrypting anything."""
        return self._find(KycVaultRecord.phone_index, self._phone_index(phone))

    def find_by_id_number(self, id_number: str) -> str | None:
        return self._find(KycVaultRecord.id_number_index, self._blind("id_number", normalize_id_number(id_number)))

    def kek_versions_in_use(self) -> dict[int, int]:
        """KEK version -> how many DEKs and vault keys it wraps; a version absent here can be retired."""
        with self._sessions() as session:
            usage: Counter[int] = Counter()
            for model in (KycVaultRecord, VaultKey):
                for version, count in session.execute(select(model.kek_version, func.count())
                                                      .group_by(model.kek_version)):
                    usage[version] += count
        return dict(sorted(usage.items()))

    def ensure_index_key(self) -> None:
        """Create the blind-index key now (normally created on first use)."""
        self._index_key()

    # -- internals

    def _row(self, session: Session, borrower: str, lock: bool = False) -> KycVaultRecord:
        query = select(KycVaultRecord).where(KycVaultRecord.borrower == borrower)
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise RecordNotFound(f"no KYC record for borrower {borrower}")
        return row

    def _find(self, column, digest: str) -> str | None:
        with self._sessions() as session:
            return session.scalar(select(KycVaultRecord.borrower).where(column == digest))

    @staticmethod
    def _refuse_duplicates(session: Session, borrower: str, phone_index: str, id_index: str) -> None:
        clashes = session.execute(select(KycVaultRecord.borrower, KycVaultRecord.phone_index,
                                         KycVaultRecord.id_number_index)
                                  .where(or_(KycVaultRecord.borrower == borrower,
                                             KycVaultRecord.phone_index == phone_index,
                                             KycVaultRecord.id_number_index == id_index))).all()
        for other, other_phone, other_id in clashes:
            if other == borrower:
                raise DuplicateIdentity("borrower", f"{borrower} already has a KYC record; update it instead")
            if other_id == id_index:
                raise DuplicateIdentity("id_number", "this ID number belongs to another borrower")
            if other_phone == phone_index:
                raise DuplicateIdentity("phone", "this phone number belongs to another borrower")

    def _wrap(self, dek: bytes, owner: str) -> bytes:
        version = self.keyring.current
        return _seal(self.keyring.kek(version), dek, _wrap_aad(owner, version))

    def _unwrap(self, wrapped: bytes, owner: str, version: int) -> bytes:
        return _open(self.keyring.kek(version), wrapped, _wrap_aad(owner, version), f"the data key of {owner}")

    def _phone_index(self, phone: str) -> str:
        return self._blind("phone", national_number(phone))

    def _blind(self, name: str, value: str) -> str:
        return hmac.new(self._index_key(), f"{name}\x00{value}".encode(), sha256).hexdigest()

    def _index_key(self) -> bytes:
        if self._index_key_cache is None:
            owner = f"key:{_INDEX_KEY}"
            with self._sessions() as session:
                row = session.get(VaultKey, _INDEX_KEY)
            if row is None:
                try:
                    with self._sessions.begin() as session:
                        session.add(VaultKey(name=_INDEX_KEY, kek_version=self.keyring.current,
                                             wrapped=self._wrap(secrets.token_bytes(KEY_BYTES), owner)))
                except IntegrityError:
                    pass  # another process created it first; use theirs
                with self._sessions() as session:
                    row = session.get(VaultKey, _INDEX_KEY)
            if row is None:
                raise VaultError("the blind-index key could not be created")
            self._index_key_cache = self._unwrap(row.wrapped, owner, row.kek_version)
        return self._index_key_cache


def _address(borrower: str) -> str:
    if not isinstance(borrower, str) or not is_address(borrower):
        raise InvalidIdentity("borrower", f"{borrower!r} is not an Ethereum address")
    return to_checksum_address(borrower)

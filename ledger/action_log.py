"""The action log: every state-changing action (who, what, when, request id), hash-chained, anchored on-chain.

Entry hash (version 1), the one definition an auditor recomputes:

    hash(n) = keccak256(abi.encode(
        keccak256("LoanLedger.ActionLog.v1"),   # domain tag
        uint64 seq,                             # 1, 2, 3 ... without gaps
        uint64 at,                              # unix milliseconds
        keccak256(bytes(actor)),                # UTF-8
        keccak256(bytes(action)),               # UTF-8
        keccak256(bytes(request_id)),           # UTF-8
        keccak256(bytes(details)),              # UTF-8 of the canonical JSON below
        bytes32 prev_hash))                     # hash(n-1); 32 zero bytes for seq 1

ABI encoding gives every field a fixed place and width, so no two different entries encode alike (a
delimiter-joined string could be shifted from one field into the next). Canonical JSON of `details`:
`json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, JSON objects with string
keys, and values that are strings, integers, booleans, null, lists or objects; no floats, whose text form
differs between languages. Details never hold PII: `append` refuses the KYC field names and any string
that is a valid resident ID, mobile number or bank card number (ledger.identity's validators).

Appending is serialised by the database (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction-scoped
advisory lock), and a conflict on `seq` from a writer that bypassed the lock is retried, so threads and
processes appending at once produce one gapless chain. `anchor` writes the head and the entry count to
the ActionLogAnchor contract; `ledger.verify.verify_action_log` checks both.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_utils import keccak
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from web3.contract import Contract

from ledger.chain import ChainClient
from ledger.encoding import to_0x_hex
from ledger.errors import ContractRevert, LoanLedgerError
from ledger.identity import InvalidIdentity, normalize_bank_card, normalize_id_number, normalize_phone
from ledger.store.models.action_log import ActionLogAnchorRecord, ActionLogEntry

log = logging.getLogger(__name__)

HASH_DOMAIN = keccak(b"LoanLedger.ActionLog.v1")
GENESIS = "0x" + "00" * 32  # the prev_hash of seq 1
# Column widths of ActionLogEntry.
_LIMITS = {"actor": 128, "action": 64, "request_id": 64}
# Key names that only ever hold a person's data; a value under them is refused whatever it looks like.
_PII_KEYS = frozenset({"name", "full_name", "id_number", "resident_id", "phone", "mobile", "bank_card", "card_number"})
# pg_advisory_xact_lock key: the first 8 bytes of a tag, as the signed bigint PostgreSQL wants.
_PG_LOCK_KEY = int.from_bytes(keccak(b"LoanLedger.ActionLog.append")[:8], "big", signed=True)


class ActionLogError(LoanLedgerError, ValueError):
    """An entry cannot be logged as given (bad field, details not canonical-JSON-able, PII in details)."""


@dataclass(frozen=True)
class Entry:
    """One logged action, as stored."""

    seq: int
    at: int            # unix milliseconds
    actor: str
    action: str
    request_id: str
    details: str       # canonical JSON
    prev_hash: str
    hash: str

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.details)

    @classmethod
    def of(cls, row: ActionLogEntry) -> Entry:
        return cls(row.seq, row.at, row.actor, row.action, row.request_id, row.details, row.prev_hash, row.hash)


@dataclass(frozen=True)
class Anchored:
    """A head written to the ActionLogAnchor contract (and recorded as an ActionLogAnchorRecord)."""

    seq: int           # entries covered
    head: str
    tx_hash: str
    block_number: int
    anchored_at: int   # block time, unix seconds


# ---------------------------------------------------------------------- encoding

def canonical_details(details: Mapping[str, Any]) -> str:
    """`details` as canonical JSON; ActionLogError for anything the format does not allow."""
    if not isinstance(details, Mapping):
        raise ActionLogError(f"details must be a JSON object (a mapping), got {type(details).__name__}")
    _check_value(details, "details")
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _check_value(value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ActionLogError(f"{path}: keys must be strings, got {key!r}")
            if key.lower() in _PII_KEYS:
                raise ActionLogError(f"{path}.{key}: personal data never goes into the action log")
            _check_value(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, f"{path}[{i}]")
    elif isinstance(value, str):
        if _looks_like_pii(value):
            raise ActionLogError(f"{path}: looks like an ID, phone or card number; personal data never goes "
                                 "into the action log (log the borrower's address instead)")
    elif isinstance(value, float):
        raise ActionLogError(f"{path}: floats are not allowed (amounts are integers of minor units)")
    elif value is not None and not isinstance(value, bool | int):
        raise ActionLogError(f"{path}: {type(value).__name__} is not a JSON value")


def _looks_like_pii(value: str) -> bool:
    # Hashes and addresses are hex with a 0x prefix and never pass these checks; the validators reject
    # quickly, so this stays cheap for ordinary strings.
    stripped = value.strip()
    if len(stripped) < 11 or len(stripped) > 32:
        return False
    for validate in (normalize_id_number, normalize_phone, normalize_bank_card):
        try:
            validate(stripped)
            return True
        except InvalidIdentity:
            continue
    return False


def entry_hash(seq: int, at: int, actor: str, action: str, request_id: str, details: str, prev_hash: str) -> str:
    """The entry's hash as 0x-hex (see the module docstring); `details` is the stored canonical JSON."""
    prev = bytes.fromhex(prev_hash.removeprefix("0x"))
    return to_0x_hex(keccak(encode(
        ["bytes32", "uint64", "uint64", "bytes32", "bytes32", "bytes32", "bytes32", "bytes32"],
        [HASH_DOMAIN, seq, at, keccak(actor.encode()), keccak(action.encode()), keccak(request_id.encode()),
         keccak(details.encode()), prev])))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------- the log

class ActionLog:
    """Appends to, reads the head of, and anchors the action log in the store behind `sessions`."""

    def __init__(self, sessions: sessionmaker, *, clock: Callable[[], int] = _now_ms, max_attempts: int = 20):
        self.sessions, self._clock, self.max_attempts = sessions, clock, max_attempts

    def append(self, actor: str, action: str, request_id: str, details: Mapping[str, Any] | None = None) -> Entry:
        """Logs one action as the next entry and returns it; safe from many threads and processes at once."""
        for field, value in (("actor", actor), ("action", action), ("request_id", request_id)):
            if not isinstance(value, str) or not value.strip():
                raise ActionLogError(f"{field} must be a non-empty string")
            if len(value) > _LIMITS[field]:
                raise ActionLogError(f"{field} is {len(value)} characters long, at most {_LIMITS[field]} are allowed")
        body = canonical_details({} if details is None else details)
        for attempt in range(1, self.max_attempts + 1):
            try:
                with self.sessions.begin() as session:
                    self._serialise(session)
                    last = session.scalars(select(ActionLogEntry).order_by(ActionLogEntry.seq.desc()).limit(1)).first()
                    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
                    at = self._clock()
                    digest = entry_hash(seq, at, actor, action, request_id, body, prev)
                    row = ActionLogEntry(seq=seq, at=at, actor=actor, action=action, request_id=request_id,
                                         details=body, prev_hash=prev, hash=digest)
                    session.add(row)
                return Entry.of(row)
            except (IntegrityError, OperationalError) as exc:
                if attempt == self.max_attempts or not _is_contention(exc):
                    raise
                log.debug("action log append lost a race (attempt %d): %s", attempt, exc.orig)
                time.sleep(random.uniform(0, 0.005 * attempt))  # jitter, so the losers do not collide again
        raise AssertionError("unreachable")

    def head(self) -> Entry | None:
        """The last entry, or None while the log is empty."""
        with self.sessions() as session:
            row = session.scalars(select(ActionLogEntry).order_by(ActionLogEntry.seq.desc()).limit(1)).first()
            return Entry.of(row) if row else None

    def entry(self, seq: int) -> Entry | None:
        with self.sessions() as session:
            row = session.get(ActionLogEntry, seq)
            return Entry.of(row) if row else None

    def last_anchor(self) -> Anchored | None:
        with self.sessions() as session:
            row = session.scalars(select(ActionLogAnchorRecord).order_by(ActionLogAnchorRecord.seq.desc())
                                  .limit(1)).first()
            return Anchored(row.seq, row.head, row.tx_hash, row.block_number, row.anchored_at) if row else None

    def anchor(self, client: ChainClient, anchor_contract: Contract) -> Anchored | None:
        """Writes the head and entry count to ActionLogAnchor (from `client`'s account, which needs the
        operator role) and records it; None when nothing was logged since the last anchor."""
        head = self.head()
        if head is None:
            return None
        with self.sessions() as session:
            recorded = session.scalar(select(func.max(ActionLogAnchorRecord.seq))) or 0
        count = client.call(anchor_contract.functions.anchorCount())
        on_chain = client.call(anchor_contract.functions.anchorAt(count))[1] if count else 0
        if head.seq <= max(recorded, on_chain):
            return None
        try:
            receipt = client.transact(anchor_contract.functions.anchor(bytes.fromhex(head.hash[2:]), head.seq))
        except ContractRevert as exc:
            # Another process anchored a head at least as new between our read and our send.
            if exc.name == "AnchorNotForward":
                log.info("action log: another anchor got there first (%s)", exc)
                return None
            raise
        block = client.w3.eth.get_block(receipt["blockNumber"])
        anchored = Anchored(head.seq, head.hash, to_0x_hex(receipt["transactionHash"]), receipt["blockNumber"],
                            block["timestamp"])
        with self.sessions.begin() as session:
            session.add(ActionLogAnchorRecord(seq=anchored.seq, head=anchored.head, tx_hash=anchored.tx_hash,
                                              block_number=anchored.block_number, anchored_at=anchored.anchored_at))
        return anchored

    @staticmethod
    def _serialise(session: Session) -> None:
        """Takes the log's write lock for this transaction, so reading the last entry and appending are one step."""
        connection = session.connection()
        dialect = connection.dialect.name
        if dialect == "sqlite":
            # pysqlite opens its implicit transaction only at the INSERT, after our read: a second writer could
            # read the same last seq. BEGIN IMMEDIATE takes the write lock first (waiting up to busy_timeout).
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def _is_contention(exc: IntegrityError | OperationalError) -> bool:
    """A lost race worth retrying: a duplicate seq, a locked SQLite file, a serialization failure or deadlock."""
    if isinstance(exc, IntegrityError):
        return True  # the only constraints an append can hit are seq's and hash's, both "someone else was first"
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in {"40001", "40P01"}:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database is busy" in message

"""Idempotency keys: the same key twice returns the first answer, never a second effect.

The first request claims (principal, key) by inserting a row before it acts; a retry while it runs
gets 409 `idempotency_in_progress`; a retry after gets the stored answer; the same key with another
body or route is refused (`idempotency_key_reused`), since it is a client bug that would hide a payment.

A claim names its owner (host, process and the process's start time) and, for a route that relays a
transaction, the transaction's hash, written before the node sees it. A retry that finds a claim whose
owner is gone (the process on this host no longer exists, or, from another host, the claim is older than
LEASE seconds) does not wait forever: a route that can `reconcile` asks the chain what the recorded
transaction did. Mined: the answer is rebuilt from it and stored, so the retry gets the loan the crashed
request made. Still in the node's pool: 409 as before (retry shortly). Never sent or never mined: the
retry takes the claim over and runs the request again, which is safe because the borrower's signed
request carries a nonce the loan book spends once.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError, OperationalError

from api.errors import ApiError
from ledger.store.models.api import IdempotencyRecord

MAX_KEY = 128
# Seconds after which a claim from another host is taken as abandoned. Longer than one relay and its policy
# normally take; on the owner's own host its death is seen at once.
LEASE = 30
IN_FLIGHT = "in_flight"  # what `reconcile` answers while the recorded transaction waits in the node's pool

Answer = tuple[int, Any]
# The recorded transaction's outcome: (status, payload) once mined, IN_FLIGHT, or None when it was never
# mined and cannot be (the request may then run again).
Reconcile = Callable[[str], "Answer | str | None"]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), which tells a reused pid from the owner."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_HOST = socket.gethostname()[:64]


def _process() -> str:
    return f"{_HOST}|{os.getpid()}|{_start_time(os.getpid()) or '-'}"


def _alive(pid: int, started: str) -> bool:
    if os.path.isdir("/proc"):
        return _start_time(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def abandoned(record: IdempotencyRecord, now: float) -> bool:
    """Whether the claim's owner can no longer answer: its process is gone, or the lease ran out."""
    if record.owner:
        host, pid, started, *_ = [*record.owner.split("|"), "", "", ""]
        if host == _HOST and pid.isdigit():
            return not _alive(int(pid), started)
    return now - record.created_at > LEASE


class Claim:
    """The running request's hold on (principal, key): it records the transaction it is about to send."""

    def __init__(self, context, principal: str, key: str):
        self.context, self.principal, self.key = context, principal, key
        self.owner = f"{_process()}|{uuid.uuid4().hex[:12]}"

    def _mine(self):
        return update(IdempotencyRecord).where(IdempotencyRecord.principal == self.principal,
                                               IdempotencyRecord.key == self.key,
                                               IdempotencyRecord.owner == self.owner)

    def record_tx(self, tx_hash: str) -> None:
        """Called by ChainClient.submit before the node sees the transaction (`before_send`)."""
        _persist(self.context, self._mine().values(tx_hash=tx_hash))


def run_once(context, principal: str, key: str | None, route: str, body: Any,
             action: Callable[[], Answer]) -> JSONResponse:
    """Runs `action` (-> (status, payload)) once per (principal, key); replays its answer afterwards."""
    return run_once_reconciled(context, principal, key, route, body, lambda _claim: action(), None)


def run_once_reconciled(context, principal: str, key: str | None, route: str, body: Any,
                        action: Callable[[Claim], Answer], reconcile: Reconcile | None) -> JSONResponse:
    """run_once for an action that records its transaction on the claim, so a crashed claim can be reconciled."""
    if key is None:
        raise ApiError(400, "idempotency_key_required", "send an Idempotency-Key header (any unique string "
                                                         "per intended operation, e.g. a UUID)")
    if not 1 <= len(key) <= MAX_KEY:
        raise ApiError(400, "invalid_idempotency_key", f"the Idempotency-Key must be 1 to {MAX_KEY} characters")
    digest = hashlib.sha256(json.dumps(jsonable_encoder(body), sort_keys=True).encode()).hexdigest()
    claim = Claim(context, principal, key)
    try:
        with context.sessions.begin() as session:
            session.add(IdempotencyRecord(principal=principal, key=key, route=route, request_hash=digest,
                                          status_code=None, response=None, created_at=int(time.time()),
                                          owner=claim.owner))
    except IntegrityError:
        replayed = _existing(context, claim, route, digest, reconcile)
        if replayed is not None:
            return replayed
    return _act(context, claim, action)


def _existing(context, claim: Claim, route: str, digest: str, reconcile: Reconcile | None) -> JSONResponse | None:
    """The answer for a key already claimed; None once this request has taken over an abandoned claim."""
    in_progress = ApiError(409, "idempotency_in_progress", "a request with this key is being processed")
    with context.sessions() as session:
        first = session.get(IdempotencyRecord, (claim.principal, claim.key))
    if first is None:  # released between our insert and our read: the caller may simply retry
        raise in_progress
    if first.route != route or first.request_hash != digest:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
    if first.status_code is not None:
        return JSONResponse(status_code=first.status_code, content=json.loads(first.response),
                            headers={"idempotent-replayed": "true"})
    if reconcile is None or not abandoned(first, time.time()):
        raise in_progress
    outcome = reconcile(first.tx_hash) if first.tx_hash else None
    if outcome == IN_FLIGHT:
        raise in_progress
    if outcome is not None:
        status, payload = outcome
        content = jsonable_encoder(payload)
        _persist(context, _unanswered(first).values(status_code=status, response=json.dumps(content), owner=None))
        return JSONResponse(status_code=status, content=content, headers={"idempotent-replayed": "true"})
    # Never mined and it cannot be: this request takes the claim over (one retry wins) and runs again.
    with context.sessions.begin() as session:
        taken = session.execute(_unanswered(first).values(owner=claim.owner, tx_hash=None,
                                                          created_at=int(time.time()))).rowcount
    if taken != 1:
        raise in_progress
    return None


def _unanswered(first: IdempotencyRecord):
    """An update of `first` only while it is still the same unanswered claim."""
    owner = (IdempotencyRecord.owner.is_(None) if first.owner is None else IdempotencyRecord.owner == first.owner)
    return update(IdempotencyRecord).where(IdempotencyRecord.principal == first.principal,
                                           IdempotencyRecord.key == first.key,
                                           IdempotencyRecord.status_code.is_(None), owner)


def _act(context, claim: Claim, action: Callable[[Claim], Answer]) -> JSONResponse:
    try:
        status, payload = action(claim)
    except ApiError as exc:
        if exc.status >= 500 or exc.status == 429:  # a limit's refusal is no answer: the key may run later
            _release(context, claim)
            raise
        _store(context, claim, exc.status, {"error": {"code": exc.code, "message": exc.message}})
        raise
    except Exception:
        # Not the client's fault (node down, timeout): free the key so the retry can run.
        _release(context, claim)
        raise
    content = jsonable_encoder(payload)
    _store(context, claim, status, content)
    return JSONResponse(status_code=status, content=content)


def _persist(context, statement) -> None:
    """Runs one write, retried while the database is briefly busy: the action already happened, so
    losing its answer (or leaving the key claimed forever) is the worse outcome."""
    for attempt in range(5):
        try:
            with context.sessions.begin() as session:
                session.execute(statement)
            return
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.2 * 2 ** attempt)


def _store(context, claim: Claim, status: int, content: Any) -> None:
    # Only while the claim is still ours: a retry that reconciled it or took it over has the last word.
    _persist(context, claim._mine().values(status_code=status, response=json.dumps(content), owner=None))


def _release(context, claim: Claim) -> None:
    _persist(context, delete(IdempotencyRecord).where(IdempotencyRecord.principal == claim.principal,
                                                      IdempotencyRecord.key == claim.key,
                                                      IdempotencyRecord.owner == claim.owner))

"""Idempotency keys: the same key twice returns the first answer, never a second effect.

The first request claims (principal, key) by inserting a row before it acts; a retry while it runs
gets 409 `idempotency_in_progress`; a retry after gets the stored answer; the same key with another
body or route is refused (`idempotency_key_reused`), since it is a client bug that would hide a payment.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError, OperationalError

from api.errors import ApiError
from ledger.store.models.api import IdempotencyRecord

MAX_KEY = 128


def run_once(context, principal: str, key: str | None, route: str, body: Any,
             action: Callable[[], tuple[int, Any]]) -> JSONResponse:
    """Runs `action` (-> (status, payload)) once per (principal, key); replays its answer afterwards."""
    if key is None:
        raise ApiError(400, "idempotency_key_required", "send an Idempotency-Key header (any unique string "
                                                         "per intended operation, e.g. a UUID)")
    if not 1 <= len(key) <= MAX_KEY:
        raise ApiError(400, "invalid_idempotency_key", f"the Idempotency-Key must be 1 to {MAX_KEY} characters")
    digest = hashlib.sha256(json.dumps(jsonable_encoder(body), sort_keys=True).encode()).hexdigest()
    try:
        with context.sessions.begin() as session:
            session.add(IdempotencyRecord(principal=principal, key=key, route=route, request_hash=digest,
                                          status_code=None, response=None, created_at=int(time.time())))
    except IntegrityError:
        with context.sessions() as session:
            first = session.get(IdempotencyRecord, (principal, key))
        if first is None:  # released between our insert and our read: the caller may simply retry
            raise ApiError(409, "idempotency_in_progress", "a request with this key is being processed") from None
        if first.route != route or first.request_hash != digest:
            raise ApiError(422, "idempotency_key_reused",
                           "this Idempotency-Key was used for a different request") from None
        if first.status_code is None:
            raise ApiError(409, "idempotency_in_progress", "a request with this key is being processed") from None
        return JSONResponse(status_code=first.status_code, content=json.loads(first.response),
                            headers={"idempotent-replayed": "true"})
    try:
        status, payload = action()
    except ApiError as exc:
        if exc.status >= 500:
            _release(context, principal, key)
            raise
        _store(context, principal, key, exc.status, {"error": {"code": exc.code, "message": exc.message}})
        raise
    except Exception:
        # Not the client's fault (node down, timeout): free the key so the retry can run.
        _release(context, principal, key)
        raise
    content = jsonable_encoder(payload)
    _store(context, principal, key, status, content)
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


def _store(context, principal: str, key: str, status: int, content: Any) -> None:
    _persist(context, update(IdempotencyRecord).where(IdempotencyRecord.principal == principal,
                                                      IdempotencyRecord.key == key)
             .values(status_code=status, response=json.dumps(content)))


def _release(context, principal: str, key: str) -> None:
    _persist(context, delete(IdempotencyRecord).where(IdempotencyRecord.principal == principal,
                                                      IdempotencyRecord.key == key))

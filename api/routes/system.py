"""Liveness, readiness and metrics: what an orchestrator and Prometheus ask."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from web3 import Web3

from api.notices.sender import set_aside_count
from ledger.indexer_status import IndexerStatus, read_status

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str = Field(description="always `ok`: the process answers")
    attention: dict[str, int] | None = Field(None, description="present only when something needs an operator: "
                                             "`notices_set_aside`, SMS notices no retry will deliver")

    model_config = {"json_schema_extra": {"examples": [{"status": "ok"},
                                                       {"status": "ok", "attention": {"notices_set_aside": 2}}]}}


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str] = Field(description="store, node, deployment and indexer: `ok...` or what is wrong")

    model_config = {"json_schema_extra": {"examples": [
        {"ready": True, "checks": {"store": "ok", "node": "ok (block 118)", "deployment": "ok",
                                   "indexer": "ok (block 118)"}},
        {"ready": False, "checks": {"store": "ok", "node": "unavailable: ReadTimeout",
                                    "deployment": "unknown: the node is down", "indexer": "unknown: the node is down"}},
        {"ready": False, "checks": {"store": "ok", "node": "ok (block 940)", "deployment": "ok",
                                    "indexer": "behind: block 610 of 940 (330 blocks, at most 20 tolerated)"}},
        {"ready": False, "checks": {"store": "ok", "node": "ok (block 118)", "deployment": "ok",
                                    "indexer": "stuck: last poll 300 s ago (at most 60 tolerated)"}},
        {"ready": True, "checks": {"store": "ok", "node": "ok (block 118)", "deployment": "ok",
                                   "indexer": "ok (block 118; 1 poison event set aside: see "
                                              "`loanledger indexer poison`)"}}]}}


@router.get("/healthz", response_model=Health, response_model_exclude_none=True, summary="The process is up")
async def healthz(request: Request) -> Health:  # async, chain- and store-free: answers while the node hangs
    # The notice sender's count as of its last round (it counts after each): no I/O here.
    set_aside = getattr(request.app.state, "notices", None) and request.app.state.notices.set_aside
    return Health(status="ok", attention={"notices_set_aside": set_aside} if set_aside else None)


# Readiness probes run on threads of their own, not the shared pool routes wait on a hung node in.
_PROBES = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


@router.get("/readyz", response_model=Readiness, summary="Node, store, deployment reachable; the index caught up",
            responses={503: {"model": Readiness, "description": "something is missing; `checks` says what"}})
async def readyz(request: Request):
    context = request.app.state.context
    # Each call is bounded by its own timeout (the node's `node_timeout`); the deadline bounds the whole
    # answer anyway, whatever hangs.
    deadline = 3 * context.settings.node_timeout + 2
    try:
        checks = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(_PROBES, _checks, context),
                                        deadline)
    except TimeoutError:
        checks = {"store": "unknown", "node": f"unavailable: no answer within {deadline:.0f}s",
                  "deployment": "unknown: the node is down", "indexer": "unknown: the node is down"}
    ready = all(v.startswith("ok") for v in checks.values())
    return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, "checks": checks})


def _checks(context) -> dict[str, str]:
    checks: dict[str, str] = {}
    indexer: IndexerStatus | None = None
    try:
        indexer = read_status(context.sessions)
        checks["store"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
        checks["store"] = f"unavailable: {type(exc).__name__}"
    head: int | None = None
    try:
        head = context.w3.eth.block_number
        checks["node"] = f"ok (block {head})"
    except Exception as exc:  # noqa: BLE001
        checks["node"] = f"unavailable: {type(exc).__name__}"
    if head is not None:
        try:
            book = context.bindings.book
            checks["deployment"] = "ok" if context.w3.eth.get_code(Web3.to_checksum_address(book.address)) else \
                f"no code at {book.address}: redeploy"
        except Exception as exc:  # noqa: BLE001
            checks["deployment"] = f"unavailable: {getattr(exc, 'message', type(exc).__name__)}"
    else:
        checks["deployment"] = "unknown: the node is down"
    checks["indexer"] = _indexer_check(indexer, head, time.time(), max_lag=context.settings.index_max_lag,
                                       max_silence=context.settings.index_max_silence)
    return checks


def _indexer_check(status: IndexerStatus | None, head: int | None, now: float, *, max_lag: int,
                   max_silence: float) -> str:
    """A lagging or stuck indexer serves stale reads and makes writes wait for it: not ready once it is more than
    `max_lag` blocks behind, or when no indexer finished a round (its heartbeat) for `max_silence` seconds; on a
    quiet chain the lag stays 0 even when the indexer died, the silence does not.

    Poison events (set aside because their projection raised) keep it ready: the API answers everything else
    correctly, and an orchestrator pulling every replica out of rotation over one unreadable event would turn it
    back into the full stop setting it aside avoids. They are shown here, logged at ERROR when set aside, and
    counted in /metrics (`loanledger_indexer_poison_events`) to alert on.
    """
    if head is None:
        return "unknown: the node is down"
    if status is None:
        return "unknown: the store is down"
    if status.block_number < 0:
        return "not started: nothing indexed yet (is `loanledger index --follow` running?)"
    silence = status.silence(now)
    if silence is None:
        return "stuck: no indexer round recorded (is `loanledger index --follow` running?)"
    if silence > max_silence:
        return f"stuck: last poll {silence:.0f} s ago (at most {max_silence:.0f} tolerated)"
    lag = head - status.block_number
    if lag > max_lag:
        return f"behind: block {status.block_number} of {head} ({lag} blocks, at most {max_lag} tolerated)"
    if status.poison_events:
        plural = "s" if status.poison_events != 1 else ""
        return (f"ok (block {status.block_number}; {status.poison_events} poison event{plural} set aside: "
                "see `loanledger indexer poison`)")
    return f"ok (block {status.block_number})"


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    metrics = request.app.state.metrics
    try:  # the indexer's figures live in the store; a store that is down keeps the last ones (and /readyz says so)
        metrics.indexer_status(read_status(request.app.state.context.sessions))
        metrics.notices_set_aside.set(set_aside_count(request.app.state.context.sessions))
    except Exception:  # noqa: BLE001, S110 - the request metrics still answer without the store
        pass
    return metrics.exposition()

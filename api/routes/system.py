"""Liveness, readiness and metrics: what an orchestrator and Prometheus ask."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from web3 import Web3

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str = Field(description="always `ok`: the process answers")

    model_config = {"json_schema_extra": {"examples": [{"status": "ok"}]}}


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str] = Field(description="store, node and deployment: `ok...` or what is wrong")

    model_config = {"json_schema_extra": {"examples": [
        {"ready": True, "checks": {"store": "ok", "node": "ok (block 118)", "deployment": "ok"}},
        {"ready": False, "checks": {"store": "ok", "node": "unavailable: ConnectionError",
                                    "deployment": "unknown: the node is down"}}]}}


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:  # async: nothing to wait for, so no hop to the thread pool
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, summary="Node, store and deployment reachable",
            responses={503: {"model": Readiness, "description": "something is missing; `checks` says what"}})
def readyz(request: Request):
    context = request.app.state.context
    checks: dict[str, str] = {}
    try:
        with context.sessions() as session:
            session.execute(text("SELECT 1"))
        checks["store"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
        checks["store"] = f"unavailable: {type(exc).__name__}"
    try:
        block = context.w3.eth.block_number
        checks["node"] = f"ok (block {block})"
    except Exception as exc:  # noqa: BLE001
        checks["node"] = f"unavailable: {type(exc).__name__}"
    if checks["node"].startswith("ok"):
        try:
            book = context.bindings.book
            checks["deployment"] = "ok" if context.w3.eth.get_code(Web3.to_checksum_address(book.address)) else \
                f"no code at {book.address}: redeploy"
        except Exception as exc:  # noqa: BLE001
            checks["deployment"] = f"unavailable: {getattr(exc, 'message', type(exc).__name__)}"
    else:
        checks["deployment"] = "unknown: the node is down"
    ready = all(v.startswith("ok") for v in checks.values())
    return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, "checks": checks})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    return request.app.state.metrics.exposition()

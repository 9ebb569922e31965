"""Every error is JSON `{"error": {"code", "message"}}` with a stable code; never a stack trace.

A contract's custom error keeps its name as the code's root (snake case), so a client can act on
`loan_book_credit_limit_exceeded` without parsing a message; a node or store that is down is a 503.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import requests
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from web3.exceptions import ContractCustomError

from ledger.chain import NodeUnavailable, ReceiptTimeout, SignerNotConfigured, TransactionFailed
from ledger.errors import ContractRevert
from ledger.identity import InvalidIdentity

log = logging.getLogger("loanledger.api")


class ErrorBody(BaseModel):
    code: str = Field(description="stable, snake case: act on it (a contract's custom error keeps its name)")
    message: str = Field(description="for people: may change between versions")

    model_config = {"json_schema_extra": {"examples": [{"code": "not_found", "message": "loan 7 not found"}]}}


class ErrorResponse(BaseModel):
    error: ErrorBody

    model_config = {"json_schema_extra": {"examples": [
        {"error": {"code": "not_found", "message": "loan 7 not found"}},
        {"error": {"code": "invalid_request", "message": "terms.principal: Input should be greater than 0"}},
        {"error": {"code": "loan_book_credit_limit_exceeded",
                   "message": "LoanBookCreditLimitExceeded(borrower='0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc', "
                              "exposureAfter=200779, creditLimit=150000)"}}]}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for the errors it can give: each status documented with the one error body."""
    return {status: {"model": ErrorResponse} for status in statuses}


class ApiError(Exception):
    """An error the API answers as it is; `headers` go with it (a 429's Retry-After)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


# Reverts that are the client's to fix and what HTTP status they are; the rest are 409 (state conflict).
_REVERT_STATUS = {
    "LoanBookUnknownLoan": 404, "LoanBookNoCreditLimit": 422,
    "LoanBookInvalidSignature": 422, "LoanBookExpiredRequest": 422, "LoanBookZeroAmount": 422,
    "LoanBookBorrowerNotEligible": 403, "AccessControlUnauthorizedAccount": 403, "EnforcedPause": 503,
    "ProductCatalogUnknownProduct": 404, "ProductCatalogInvalidProduct": 422,
    "ProductCatalogCostAboveCap": 422, "ProductCatalogPenaltyAboveCeiling": 422, "ProductCatalogLateFeeAboveCeiling": 422,
    "ProductCatalogPrincipalOutOfRange": 422, "ProductCatalogInstallmentsOutOfRange": 422,
    # The borrower signed for a version that is no longer offered: 409, re-read the product and sign again.
    "ProductCatalogVersionChanged": 409, "ProductCatalogRetired": 409,
    # A signed decision the forwarder refuses (the API checks these first and names them itself).
    "ERC2771ForwarderInvalidSigner": 422, "ERC2771ForwarderExpiredRequest": 422, "ERC2771UntrustfulTarget": 422,
}


def revert_code(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _json(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}}, headers=headers)


def install(app: FastAPI) -> None:
    _document(app)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError):
        return _json(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden"}.get(
            exc.status_code, "http_error")
        return _json(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
        return _json(422, "invalid_request", f"{where}: {first.get('msg')}" if where else str(first.get("msg")))

    @app.exception_handler(InvalidIdentity)
    async def _identity(_: Request, exc: InvalidIdentity):
        field = getattr(exc, "field", "identity")
        return _json(422, f"invalid_{field}", str(exc))

    @app.exception_handler(ContractRevert)
    async def _revert(_: Request, exc: ContractRevert):
        return _json(_REVERT_STATUS.get(exc.name, 409), revert_code(exc.name), str(exc))

    @app.exception_handler(ContractCustomError)
    async def _view_revert(request: Request, exc: ContractCustomError):
        # A view called through web3 directly (not ChainClient.call) reverts undecoded, e.g. `loanOf`
        # of an unknown loan: decode it against our contracts' errors, as a transaction's would be.
        decoded = request.app.state.context.bindings.errors.from_exception(exc)
        if decoded is None:
            log.error("unknown custom error on %s %s: %r", request.method, request.url.path, exc)
            return _json(500, "internal", "an unexpected error; it was logged with the request id")
        return await _revert(request, decoded)

    @app.exception_handler(NodeUnavailable)
    async def _node(_: Request, exc: NodeUnavailable):
        return _json(503, "node_unavailable", str(exc), {"retry-after": "5"})

    @app.exception_handler(ReceiptTimeout)
    async def _timeout(_: Request, exc: ReceiptTimeout):
        return _json(504, "transaction_pending", f"{exc}; it may still be mined: retry with the same Idempotency-Key")

    @app.exception_handler(TransactionFailed)
    async def _failed(_: Request, exc: TransactionFailed):
        return _json(502, "transaction_failed", str(exc))

    @app.exception_handler(SignerNotConfigured)
    async def _signer(_: Request, exc: SignerNotConfigured):
        log.error("a signer is missing: %s", exc)
        return _json(503, "signer_not_configured", "this service has no key for that action; ask the operator")

    @app.exception_handler(OperationalError)
    async def _store(_: Request, exc: OperationalError):
        log.error("store unavailable: %s", exc.__class__.__name__)
        return _json(503, "store_unavailable", "the database is not answering; retry later", {"retry-after": "5"})

    @app.exception_handler(SQLAlchemyError)
    async def _store_other(_: Request, exc: SQLAlchemyError):
        log.exception("store error")
        return _json(500, "store_error", "the database refused the operation")

    # web3's HTTP provider lets the requests library's errors through when the node is unreachable.
    for kind in (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError):
        app.add_exception_handler(kind, _node_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _json(500, "internal", "an unexpected error; it was logged with the request id")


async def _node_down(_: Request, exc: Exception):
    return _json(503, "node_unavailable", f"the Ethereum node is not answering ({type(exc).__name__}); retry later",
                 {"retry-after": "5"})


_RETRY_AFTER = {"description": "seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}
_ERROR_REF = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def _document(app: FastAPI) -> None:
    """The OpenAPI schema states the errors every operation can give, in the format they really have.

    FastAPI documents a failed validation as its own `HTTPValidationError`, which the handlers here
    replace by `ErrorResponse`; and a body that is not readable text, or a POST without its
    Idempotency-Key, is a 400 that no route lists. Patched once into the generated schema, so the
    routes keep listing only what is particular to them.
    """
    generate = app.openapi

    def openapi() -> dict:
        schema = generate()  # cached by FastAPI: the patch below is idempotent
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                headers = {p["name"].lower() for p in operation.get("parameters", []) if p.get("in") == "header"}
                if operation.get("requestBody") or "idempotency-key" in headers:
                    responses.setdefault("400", {"description": "the body is not readable, or the Idempotency-Key "
                                                                "header is missing or too long", **_ERROR_REF})
                if "429" in responses:  # every 429 says when to come back
                    responses["429"].setdefault("headers", {}).setdefault("Retry-After", _RETRY_AFTER)
                if operation.get("requestBody") or operation.get("parameters"):
                    described = responses.get("422", {}).get("description") or "the request is not valid"
                    responses["422"] = {"description": described, **_ERROR_REF}
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        _restore_example_nulls(schema)
        return schema

    app.openapi = openapi


def _models(base: type[BaseModel] = BaseModel):
    for model in base.__subclasses__():
        yield model
        yield from _models(model)


def _restore_example_nulls(schema: dict) -> None:
    """Puts back the nulls FastAPI drops from schema examples (fastapi#5559: its final encoding excludes None
    everywhere), without which an example of a required nullable field (`closed_at` of an active loan) would
    not match its own schema. The examples are the API models' own, matched by component name."""
    components = schema.get("components", {}).get("schemas", {})
    for model in _models():
        examples = model.model_config.get("json_schema_extra")
        if not model.__module__.startswith("api.") or not isinstance(examples, dict) or "examples" not in examples:
            continue
        component = components.get(model.__name__)
        if component is not None and component.get("title") == model.__name__:
            component["examples"] = json.loads(json.dumps(examples["examples"]))

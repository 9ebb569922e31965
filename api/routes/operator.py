"""Operator and admin routes. The service's own keys send the transactions; the action log records
which signed-in operator asked, and the chain's roles decide who may ask."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field
from sqlalchemy import delete, select

from api import idempotency
from api.auth import Principal, require
from api.errors import ApiError, ErrorResponse
from api.observability import current_request_id
from api.policy import approve_or_reject, auto_approve_enabled, reason_bytes, request_payout, set_auto_approve
from api.routes.kyc import register_borrower
from api.schemas import ADDRESS, LoanIdPath, TxOut
from api.views import checksum_address
from ledger.store.models.api import Auditor

router = APIRouter(prefix="/v1/operator", tags=["operator"])
ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
          409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}
CONTRACT_ROLES = {"operator": "OPERATOR_ROLE", "oracle": "ORACLE_ROLE", "pauser": "PAUSER_ROLE",
                  "admin": "DEFAULT_ADMIN_ROLE", "score_signer": "SCORE_SIGNER_ROLE"}


# Anvil's well-known accounts, as in the other examples.
_BOB = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"
_SIGNER = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
_NEW_SIGNER = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"
_AUDITOR = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=32, description="at most 32 bytes; stored on-chain")

    model_config = {"json_schema_extra": {"examples": [{"reason": "income_unverified"}]}}


class Decision(BaseModel):
    loan_id: int
    decision: str = Field(description="approved, or rejected:<reason> (stale_score, over_limit, not_eligible)")
    block_number: int

    model_config = {"json_schema_extra": {"examples": [
        {"loan_id": 1, "decision": "approved", "block_number": 117},
        {"loan_id": 2, "decision": "rejected:over_limit", "block_number": 121}]}}


class PolicyIn(BaseModel):
    auto_approve: bool = Field(description="approve each application as it arrives, if the loan book allows")

    model_config = {"json_schema_extra": {"examples": [{"auto_approve": True}]}}


class PolicyOut(BaseModel):
    auto_approve: bool

    model_config = {"json_schema_extra": {"examples": [{"auto_approve": True}]}}


class RoleIn(BaseModel):
    role: str = Field(pattern="^(operator|oracle|pauser|admin|score_signer)$")
    account: str = Field(pattern=ADDRESS)
    contracts: list[str] = Field(default_factory=lambda: ["BorrowerRegistry", "CreditOracle", "LoanBook",
                                                          "ActionLogAnchor"],
                                 description="where to grant or revoke; a contract without that role is skipped")

    model_config = {"json_schema_extra": {"examples": [{
        "role": "operator", "account": _BOB,
        "contracts": ["BorrowerRegistry", "CreditOracle", "LoanBook", "ActionLogAnchor"]}]}}


class RoleChange(BaseModel):
    role: str
    account: str
    transactions: list[TxOut] = Field(description="one per contract changed (none if it already was so)")

    model_config = {"json_schema_extra": {"examples": [{
        "role": "operator", "account": _BOB,
        "transactions": [{"tx_hash": "0x47bb006c91539ecb9ba52283ff2cf92af350004d720305f9f6a019b073a950b7",
                          "block_number": 130},
                         {"tx_hash": "0xe65d30637b95eb7d242982822f73fa9a9fb557f9f89feb65f9c9c4e04bf31725",
                          "block_number": 131}]}]}}


class SignerRotationIn(BaseModel):
    old: str = Field(pattern=ADDRESS, description="the score signer to retire")
    new: str = Field(pattern=ADDRESS, description="the score signer to admit")

    model_config = {"json_schema_extra": {"examples": [{"old": _SIGNER, "new": _NEW_SIGNER}]}}


class AuditorIn(BaseModel):
    address: str = Field(pattern=ADDRESS)

    model_config = {"json_schema_extra": {"examples": [{"address": _AUDITOR}]}}


class AuditorList(BaseModel):
    auditors: list[str]

    model_config = {"json_schema_extra": {"examples": [{"auditors": [_AUDITOR]}]}}


class PayoutOut(BaseModel):
    loan_id: int
    ordered: bool
    rail_reference: str | None = Field(None, description="the payment rail's reference for the payout order")

    model_config = {"json_schema_extra": {"examples": [{
        "loan_id": 1, "ordered": True, "rail_reference": "PAY-00000001-3f9a2c"}]}}


def _ctx(request: Request):
    return request.app.state.context


def _tx(receipt) -> TxOut:
    return TxOut(tx_hash="0x" + bytes(receipt["transactionHash"]).hex(), block_number=receipt["blockNumber"])


def _logged(request: Request, who: Principal, action: str, details: dict, receipt) -> TxOut:
    out = _tx(receipt)
    _ctx(request).action_log.append(who.address, action, current_request_id(), {**details, "tx": out.tx_hash})
    request.app.state.metrics.transactions.labels(action).inc()
    return out


@router.post("/borrowers/{address}/register", response_model=TxOut, responses=ERRORS,
             summary="Register a KYC-verified borrower on-chain (when automatic registration is off)")
def register(address: str, request: Request, who: Principal = Depends(require("operator"))) -> TxOut:
    address = checksum_address(address)
    tx_hash = register_borrower(_ctx(request), address, who.address, current_request_id())
    request.app.state.roles.forget(address)
    receipt = _ctx(request).w3.eth.get_transaction_receipt(tx_hash)
    return _tx(receipt)


@router.post("/borrowers/{address}/revoke", response_model=TxOut, responses=ERRORS,
             summary="Revoke a borrower: no new applications; existing loans run on")
def revoke(address: str, body: ReasonIn, request: Request, who: Principal = Depends(require("operator"))) -> TxOut:
    address = checksum_address(address)
    context = _ctx(request)
    receipt = context.signer("operator").transact(
        context.bindings.registry.functions.revokeBorrower(address, reason_bytes(body.reason)))
    request.app.state.roles.forget(address)
    return _logged(request, who, "borrower.revoke", {"borrower": address, "reason": body.reason}, receipt)


@router.post("/loans/{loan_id}/approve", response_model=Decision, responses=ERRORS,
             summary="Approve (or, if the loan book refuses for score/limit/eligibility, reject with that reason)")
def approve(loan_id: LoanIdPath, request: Request, idempotency_key: str | None = Header(None),
            who: Principal = Depends(require("operator"))):
    context = _ctx(request)

    def action():
        decision, block = approve_or_reject(context, loan_id, who.address, current_request_id())
        context.wait_indexed(block)
        return 200, Decision(loan_id=loan_id, decision=decision, block_number=block)

    return idempotency.run_once(context, who.address, idempotency_key, f"POST /v1/operator/loans/{loan_id}/approve",
                                {}, action)


@router.post("/loans/{loan_id}/reject", response_model=TxOut, responses=ERRORS, summary="Reject an application")
def reject(loan_id: LoanIdPath, body: ReasonIn, request: Request, idempotency_key: str | None = Header(None),
           who: Principal = Depends(require("operator"))):
    function = _ctx(request).bindings.book.functions.reject(loan_id, reason_bytes(body.reason))
    return _loan_transaction(request, who, idempotency_key, loan_id, "reject", function, body.model_dump())


@router.post("/loans/{loan_id}/disburse", response_model=PayoutOut, responses=ERRORS,
             summary="Order the payout of an approved loan over the payment rail")
def disburse(loan_id: LoanIdPath, request: Request, idempotency_key: str | None = Header(None),
             who: Principal = Depends(require("operator"))):
    context = _ctx(request)

    def action():
        payment = request_payout(context, loan_id, who.address, current_request_id())
        if payment is None:
            raise ApiError(503, "rail_unavailable", f"the payment rail at {context.settings.rail_url} did not take "
                                                    "the order; retry with the same Idempotency-Key")
        return 200, PayoutOut(loan_id=loan_id, ordered=True, rail_reference=payment.get("reference"))

    return idempotency.run_once(context, who.address, idempotency_key,
                                f"POST /v1/operator/loans/{loan_id}/disburse", {}, action)


@router.post("/loans/{loan_id}/write-off", response_model=TxOut, responses=ERRORS,
             summary="Write off a defaulted loan")
def write_off(loan_id: LoanIdPath, request: Request, idempotency_key: str | None = Header(None),
              who: Principal = Depends(require("operator"))):
    function = _ctx(request).bindings.book.functions.writeOff(loan_id)
    return _loan_transaction(request, who, idempotency_key, loan_id, "write-off", function, {})


@router.post("/loans/{loan_id}/declare-default", response_model=TxOut, responses=ERRORS,
             summary="Declare a loan in default once it is past its threshold")
def declare_default(loan_id: LoanIdPath, request: Request, idempotency_key: str | None = Header(None),
                    who: Principal = Depends(require("operator"))):
    function = _ctx(request).bindings.book.functions.declareDefault(loan_id)
    return _loan_transaction(request, who, idempotency_key, loan_id, "declare-default", function, {})


def _loan_transaction(request: Request, who: Principal, key: str | None, loan_id: int, verb: str, function,
                      body: dict):
    """Sends `function` as the operator service account once per Idempotency-Key, logs and returns it."""
    context = _ctx(request)

    def action():
        receipt = context.signer("operator").transact(function)
        context.wait_indexed(receipt["blockNumber"])
        details = {"loan_id": loan_id, **body}
        return 200, _logged(request, who, f"loan.{verb.replace('-', '_')}", details, receipt)

    return idempotency.run_once(context, who.address, key, f"POST /v1/operator/loans/{loan_id}/{verb}", body, action)


@router.get("/policy", response_model=PolicyOut, responses=ERRORS, summary="The automatic approval policy")
def get_policy(request: Request, _: Principal = Depends(require("operator", "admin", "auditor"))) -> PolicyOut:
    return PolicyOut(auto_approve=auto_approve_enabled(_ctx(request)))


@router.put("/policy", response_model=PolicyOut, responses=ERRORS, summary="Switch automatic approval on or off")
def put_policy(body: PolicyIn, request: Request, who: Principal = Depends(require("operator"))) -> PolicyOut:
    context = _ctx(request)
    set_auto_approve(context, body.auto_approve, who.address)
    context.action_log.append(who.address, "policy.auto_approve", current_request_id(), {"enabled": body.auto_approve})
    return PolicyOut(auto_approve=body.auto_approve)


def _pause(request: Request, who: Principal, pause: bool) -> list[TxOut]:
    context = _ctx(request)
    pauser = context.signer("pauser")
    b = context.bindings
    out = []
    for contract in (b.registry, b.oracle, b.book, b.anchor):
        paused = contract.functions.paused().call()
        if paused == pause:
            continue
        fn = contract.functions.pause() if pause else contract.functions.unpause()
        out.append(_logged(request, who, "system.pause" if pause else "system.unpause",
                           {"contract": contract.address}, pauser.transact(fn)))
    return out


@router.post("/pause", response_model=list[TxOut], responses=ERRORS, summary="Pause every contract")
def pause(request: Request, who: Principal = Depends(require("operator", "pauser"))) -> list[TxOut]:
    return _pause(request, who, True)


@router.post("/unpause", response_model=list[TxOut], responses=ERRORS, summary="Unpause every contract")
def unpause(request: Request, who: Principal = Depends(require("operator", "pauser"))) -> list[TxOut]:
    return _pause(request, who, False)


def _role_change(request: Request, who: Principal, body: RoleIn, grant: bool) -> RoleChange:
    context = _ctx(request)
    admin = context.signer("admin")
    account = checksum_address(body.account)
    out = []
    for name in body.contracts:
        try:
            contract = context.bindings.by_name(name)
        except KeyError:
            raise ApiError(422, "unknown_contract", f"no contract {name!r}") from None
        role_name = CONTRACT_ROLES[body.role]
        if not any(f.get("name") == role_name for f in contract.abi):
            continue  # e.g. SCORE_SIGNER_ROLE exists on the credit oracle only
        role = contract.functions[role_name]().call()
        if contract.functions.hasRole(role, account).call() == grant:
            continue
        fn = contract.functions.grantRole(role, account) if grant else contract.functions.revokeRole(role, account)
        out.append(_logged(request, who, "role.grant" if grant else "role.revoke",
                           {"role": body.role, "account": account, "contract": name}, admin.transact(fn)))
    request.app.state.roles.forget(account)
    return RoleChange(role=body.role, account=account, transactions=out)


@router.post("/roles/grant", response_model=RoleChange, responses=ERRORS, summary="Grant a role (admin)")
def grant_role(body: RoleIn, request: Request, who: Principal = Depends(require("admin"))) -> RoleChange:
    return _role_change(request, who, body, True)


@router.post("/roles/revoke", response_model=RoleChange, responses=ERRORS, summary="Revoke a role (admin)")
def revoke_role(body: RoleIn, request: Request, who: Principal = Depends(require("admin"))) -> RoleChange:
    return _role_change(request, who, body, False)


@router.post("/oracle-signer/rotate", response_model=list[RoleChange], responses=ERRORS,
             summary="Rotate the credit oracle's score signer: grant the new key, then revoke the old")
def rotate_signer(body: SignerRotationIn, request: Request, who: Principal = Depends(require("admin"))):
    if body.old.lower() == body.new.lower():
        raise ApiError(422, "same_signer", "the new signer is the old one")
    granted = _role_change(request, who, RoleIn(role="score_signer", account=body.new, contracts=["CreditOracle"]), True)
    revoked = _role_change(request, who, RoleIn(role="score_signer", account=body.old, contracts=["CreditOracle"]), False)
    return [granted, revoked]


@router.get("/auditors", response_model=AuditorList, responses=ERRORS, summary="Addresses admitted as auditors")
def auditors(request: Request, _: Principal = Depends(require("admin", "operator"))) -> AuditorList:
    with _ctx(request).sessions() as session:
        return AuditorList(auditors=list(session.scalars(select(Auditor.address).order_by(Auditor.address))))


@router.post("/auditors", response_model=AuditorList, responses=ERRORS, summary="Admit an auditor (admin)")
def add_auditor(body: AuditorIn, request: Request, who: Principal = Depends(require("admin"))) -> AuditorList:
    context = _ctx(request)
    address = checksum_address(body.address)
    with context.sessions.begin() as session:
        session.merge(Auditor(address=address, added_by=who.address, added_at=int(time.time())))
    context.action_log.append(who.address, "auditor.add", current_request_id(), {"auditor": address})
    request.app.state.roles.forget(address)
    return auditors(request, who)


@router.delete("/auditors/{address}", response_model=AuditorList, responses=ERRORS, summary="Remove an auditor")
def remove_auditor(address: str, request: Request, who: Principal = Depends(require("admin"))) -> AuditorList:
    context = _ctx(request)
    address = checksum_address(address)
    with context.sessions.begin() as session:
        session.execute(delete(Auditor).where(Auditor.address == address))
    context.action_log.append(who.address, "auditor.remove", current_request_id(), {"auditor": address})
    request.app.state.roles.forget(address)
    return auditors(request, who)

"""Operator and admin routes. The service's own keys send the transactions; the action log records
which signed-in operator asked, and the chain's roles decide who may ask."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from web3 import Web3

from api import idempotency
from api.auth import Principal, require
from api.errors import ApiError, ErrorResponse
from api.observability import current_request_id
from api.policy import approve_or_reject, auto_approve_enabled, reason_bytes, request_payout, set_auto_approve
from api.routes.kyc import register_borrower
from api.schemas import ADDRESS, LoanIdPath, TxOut
from ledger.store.models.api import Auditor

router = APIRouter(prefix="/v1/operator", tags=["operator"])
ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
          409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}
CONTRACT_ROLES = {"operator": "OPERATOR_ROLE", "oracle": "ORACLE_ROLE", "pauser": "PAUSER_ROLE",
                  "admin": "DEFAULT_ADMIN_ROLE", "score_signer": "SCORE_SIGNER_ROLE"}


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=32, description="at most 32 bytes; stored on-chain")


class Decision(BaseModel):
    loan_id: int
    decision: str
    block_number: int


class PolicyIn(BaseModel):
    auto_approve: bool


class PolicyOut(BaseModel):
    auto_approve: bool


class RoleIn(BaseModel):
    role: str = Field(pattern="^(operator|oracle|pauser|admin|score_signer)$")
    account: str = Field(pattern=ADDRESS)
    contracts: list[str] = Field(default_factory=lambda: ["BorrowerRegistry", "CreditOracle", "LoanBook",
                                                          "ActionLogAnchor"])


class RoleChange(BaseModel):
    role: str
    account: str
    transactions: list[TxOut]


class SignerRotationIn(BaseModel):
    old: str = Field(pattern=ADDRESS)
    new: str = Field(pattern=ADDRESS)


class AuditorIn(BaseModel):
    address: str = Field(pattern=ADDRESS)


class AuditorList(BaseModel):
    auditors: list[str]


class PayoutOut(BaseModel):
    loan_id: int
    ordered: bool
    rail_reference: str | None = None


def _ctx(request: Request):
    return request.app.state.context


def _tx(receipt) -> TxOut:
    return TxOut(tx_hash="0x" + bytes(receipt["transactionHash"]).hex(), block_number=receipt["blockNumber"])


def _logged(request: Request, who: Principal, action: str, details: dict, receipt) -> TxOut:
    out = _tx(receipt)
    _ctx(request).action_log.append(who.address, action, current_request_id(), {**details, "tx": out.tx_hash})
    request.app.state.metrics.transactions.labels(action).inc()
    return out


def _address(value: str) -> str:
    try:
        return Web3.to_checksum_address(value)
    except ValueError:
        raise ApiError(422, "invalid_address", f"{value!r} is not an address") from None


@router.post("/borrowers/{address}/register", response_model=TxOut, responses=ERRORS,
             summary="Register a KYC-verified borrower on-chain (when automatic registration is off)")
def register(address: str, request: Request, who: Principal = Depends(require("operator"))) -> TxOut:
    address = _address(address)
    tx_hash = register_borrower(_ctx(request), address, who.address, current_request_id())
    request.app.state.roles.forget(address)
    receipt = _ctx(request).w3.eth.get_transaction_receipt(tx_hash)
    return _tx(receipt)


@router.post("/borrowers/{address}/revoke", response_model=TxOut, responses=ERRORS,
             summary="Revoke a borrower: no new applications; existing loans run on")
def revoke(address: str, body: ReasonIn, request: Request, who: Principal = Depends(require("operator"))) -> TxOut:
    address = _address(address)
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
    context = _ctx(request)

    def action():
        receipt = context.signer("operator").transact(
            context.bindings.book.functions.reject(loan_id, reason_bytes(body.reason)))
        context.wait_indexed(receipt["blockNumber"])
        return 200, _logged(request, who, "loan.reject", {"loan_id": loan_id, "reason": body.reason}, receipt)

    return idempotency.run_once(context, who.address, idempotency_key, f"POST /v1/operator/loans/{loan_id}/reject",
                                body.model_dump(), action)


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
    context = _ctx(request)

    def action():
        receipt = context.signer("operator").transact(context.bindings.book.functions.writeOff(loan_id))
        context.wait_indexed(receipt["blockNumber"])
        return 200, _logged(request, who, "loan.write_off", {"loan_id": loan_id}, receipt)

    return idempotency.run_once(context, who.address, idempotency_key,
                                f"POST /v1/operator/loans/{loan_id}/write-off", {}, action)


@router.post("/loans/{loan_id}/declare-default", response_model=TxOut, responses=ERRORS,
             summary="Declare a loan in default once it is past its threshold")
def declare_default(loan_id: LoanIdPath, request: Request, idempotency_key: str | None = Header(None),
                    who: Principal = Depends(require("operator"))):
    context = _ctx(request)

    def action():
        receipt = context.signer("operator").transact(context.bindings.book.functions.declareDefault(loan_id))
        context.wait_indexed(receipt["blockNumber"])
        return 200, _logged(request, who, "loan.declare_default", {"loan_id": loan_id}, receipt)

    return idempotency.run_once(context, who.address, idempotency_key,
                                f"POST /v1/operator/loans/{loan_id}/declare-default", {}, action)


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
    account = _address(body.account)
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
    address = _address(body.address)
    with context.sessions.begin() as session:
        session.merge(Auditor(address=address, added_by=who.address, added_at=int(time.time())))
    context.action_log.append(who.address, "auditor.add", current_request_id(), {"auditor": address})
    request.app.state.roles.forget(address)
    return auditors(request, who)


@router.delete("/auditors/{address}", response_model=AuditorList, responses=ERRORS, summary="Remove an auditor")
def remove_auditor(address: str, request: Request, who: Principal = Depends(require("admin"))) -> AuditorList:
    context = _ctx(request)
    address = _address(address)
    with context.sessions.begin() as session:
        session.execute(delete(Auditor).where(Auditor.address == address))
    context.action_log.append(who.address, "auditor.remove", current_request_id(), {"auditor": address})
    request.app.state.roles.forget(address)
    return auditors(request, who)

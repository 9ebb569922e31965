"""Operator, admin and pauser routes. A decision that changes the chain is signed by the person who makes it: they
ask `POST /requests` for what to sign (ForwardRequest typed data and what it does in words), sign it in their own
wallet, and send it to the decision's route, which checks it is theirs and is that route's decision before the API
relays it (api.services.signed_requests); the chain checks their role and its events name them. The action log
records who signed."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Response

from api import idempotency
from api.deps import (
    Admin,
    Auditor,
    ContextDep,
    DecisionMaker,
    MetricsDep,
    Operator,
    Pauser,
    PolicyReader,
    RolesDep,
    Staff,
)
from api.errors import ApiError, error_responses
from api.observability import Metrics, current_request_id
from api.schemas import LoanIdPath, TxOut
from api.schemas.credit_refunds import CreditRefundList, CreditRefundOut
from api.schemas.four_eyes import ProposalList, ProposalOut
from api.schemas.operator import (
    ApplyToLoanIn,
    AuditorIn,
    AuditorList,
    Decision,
    PayoutOrderList,
    PayoutOrderOut,
    PayoutOut,
    PolicyIn,
    PolicyOut,
    RoleChange,
    SignedReasonIn,
    SignedRoleIn,
    SignedRotationIn,
    SuspenseItemOut,
    SuspenseList,
)
from api.schemas.signed import (
    SIGNED_FIELDS,
    PreparedOut,
    PrepareIn,
    SignedRequestIn,
    SignedRequestsIn,
)
from api.services import (
    credit_refunds,
    decision_requests,
    decisions,
    four_eyes,
    pausing,
    payouts,
    suspense,
)
from api.services.borrowers import register_signed, revoke_borrower
from api.services.roles import add_auditor as admit_auditor
from api.services.roles import auditors as admitted_auditors
from api.services.roles import remove_auditor as dismiss_auditor
from api.services.transactions import Sent
from api.views import checksum_address
from ledger.store.models.suspense import SuspenseState

router = APIRouter(prefix="/v1/operator", tags=["operator"])
ProposalIdPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="FourEyes' proposal id",
                                     examples=["0x" + "3c" * 32])]
ERRORS = error_responses(401, 403, 404, 409, 422, 503)


def _counted(metrics: Metrics, sent: Sent) -> TxOut:
    metrics.transactions.labels(sent.action).inc()
    return TxOut.model_validate(sent)


@router.post("/requests", response_model=PreparedOut, responses=ERRORS,
             summary="What to sign for a decision: ForwardRequest typed data (one per call, in order) and what it "
                     "does in words; sign each with your own wallet and send them to the decision's route")
def prepare_request(body: PrepareIn, context: ContextDep, who: DecisionMaker) -> PreparedOut:
    return decision_requests.prepare(context, who.address, who.roles, body.action, body.params)


@router.post("/borrowers/{address}/register", response_model=TxOut, responses=ERRORS,
             summary="Register a KYC-verified borrower on-chain (when automatic registration is off)")
def register(address: str, body: SignedRequestIn, context: ContextDep, roles: RolesDep, metrics: MetricsDep,
             who: Operator) -> TxOut:
    address = checksum_address(address)
    sent = register_signed(context, address, who.address, body.signed(), current_request_id())
    roles.forget(address)
    return _counted(metrics, sent)


@router.post("/borrowers/{address}/revoke", response_model=TxOut, responses=ERRORS,
             summary="Revoke a borrower: no new applications; existing loans run on")
def revoke(address: str, body: SignedReasonIn, context: ContextDep, roles: RolesDep, metrics: MetricsDep,
           who: Operator) -> TxOut:
    address = checksum_address(address)
    sent = revoke_borrower(context, address, body.reason, who.address, body.signed(), current_request_id())
    roles.forget(address)
    return _counted(metrics, sent)


@router.post("/loans/{loan_id}/approve", response_model=Decision,
             responses=ERRORS | {202: {"model": ProposalOut, "description": "above the payout threshold: proposed, "
                                       "awaiting a second operator's confirmation"}},
             summary="Approve (or, if the loan book refuses for score/limit/eligibility, reject with that reason); "
                     "above the payout threshold, propose the approval for a second operator to confirm (202)")
def approve(loan_id: LoanIdPath, body: SignedRequestIn, context: ContextDep, who: Operator,
            idempotency_key: str | None = Header(None)):
    if four_eyes.is_proposal(context, body.request.model_dump(by_alias=True)):
        return _proposal_once(context, who.address, idempotency_key, f"POST /v1/operator/loans/{loan_id}/approve", {},
                              lambda: four_eyes.propose(context, who.address, decisions.approve_call(context, loan_id),
                                                        body.signed(), current_request_id(), "loan.approve",
                                                        {"loan_id": loan_id}))

    def action():
        decision, block = decisions.decide(context, loan_id, who.address, body.signed(), current_request_id())
        context.wait_indexed(block)
        return 200, Decision(loan_id=loan_id, decision=decision, block_number=block, signed_by=who.address)

    return idempotency.run_once(context, who.address, idempotency_key, f"POST /v1/operator/loans/{loan_id}/approve",
                                {}, action)


@router.post("/loans/{loan_id}/reject", response_model=TxOut, responses=ERRORS, summary="Reject an application")
def reject(loan_id: LoanIdPath, body: SignedReasonIn, context: ContextDep, metrics: MetricsDep, who: Operator,
           idempotency_key: str | None = Header(None)):
    decisions.reason_bytes(body.reason)  # 422 before the Idempotency-Key is spent on a reason too long
    return _once(context, metrics, who.address, idempotency_key, loan_id, "reject",
                 body.model_dump(exclude=SIGNED_FIELDS),
                 lambda: decisions.reject(context, loan_id, body.reason, who.address, body.signed(),
                                          current_request_id()))


@router.post("/loans/{loan_id}/disburse", response_model=PayoutOut, responses=ERRORS,
             summary="Order the payout of an approved loan over the payment rail (once: asking again answers "
                     "the loan's order)")
def disburse(loan_id: LoanIdPath, context: ContextDep, who: Operator, idempotency_key: str | None = Header(None),
             retry: bool = Query(False, description="Re-order a failed payout (a returned or refused one) as a new "
                                 "order; without it a failed order is answered as it is")):
    def action():
        order = (payouts.retry_payout if retry else payouts.order_payout)(
            context, loan_id, who.address, current_request_id())
        return 200, PayoutOut(loan_id=loan_id, ordered=order.state not in (payouts.FAILED, payouts.CANCELLED),
                              state=order.state, rail_reference=order.rail_reference)

    return idempotency.run_once(context, who.address, idempotency_key,
                                f"POST /v1/operator/loans/{loan_id}/disburse", {"retry": True} if retry else {},
                                action)


@router.get("/payouts", response_model=PayoutOrderList, responses=ERRORS,
            summary="Payout orders, newest first (operators, admins and auditors)")
def list_payouts(context: ContextDep, _: Auditor,
                 state: Literal["ordered", "sent", "settled", "failed", "cancelled"] | None = None,
                 loan_id: int | None = Query(None, ge=1, le=2**63 - 1),
                 limit: int = Query(100, ge=1, le=1000)) -> PayoutOrderList:
    orders = payouts.list_orders(context, state=state, loan_id=loan_id, limit=limit)
    return PayoutOrderList(orders=[PayoutOrderOut.model_validate(o) for o in orders])


@router.get("/suspense", response_model=SuspenseList, responses=ERRORS,
            summary="Received payments the loan book refused, newest first (operators, admins and auditors)")
def list_suspense(context: ContextDep, _: Auditor,
                  state: SuspenseState | None = None,
                  loan_id: int | None = Query(None, ge=1, le=2**256 - 1),
                  limit: int = Query(100, ge=1, le=1000)) -> SuspenseList:
    items = suspense.list_items(context, state=state, loan_id=loan_id, limit=limit)
    return SuspenseList(items=[SuspenseItemOut.model_validate(i) for i in items])


@router.post("/suspense/{item_id}/refund", response_model=SuspenseItemOut, responses=ERRORS,
             summary="Refund a suspense item over the rail (once: asking again answers the same refund)")
def refund_suspense(item_id: Annotated[int, Path(ge=1, le=2**63 - 1)], context: ContextDep, who: Operator,
                    idempotency_key: str | None = Header(None)):
    def action():
        item = suspense.refund(context, item_id, who.address, current_request_id())
        return 200, SuspenseItemOut.model_validate(item)

    return idempotency.run_once(context, who.address, idempotency_key,
                                f"POST /v1/operator/suspense/{item_id}/refund", {}, action)


@router.post("/suspense/{item_id}/apply", response_model=SuspenseItemOut, responses=ERRORS,
             summary="Apply an open suspense item to the loan it was meant for (same rail reference, re-queued)")
def apply_suspense(item_id: Annotated[int, Path(ge=1, le=2**63 - 1)], body: ApplyToLoanIn, context: ContextDep,
                   who: Operator, idempotency_key: str | None = Header(None)):
    def action():
        item = suspense.apply(context, item_id, body.loan_id, who.address, current_request_id())
        return 200, SuspenseItemOut.model_validate(item)

    return idempotency.run_once(context, who.address, idempotency_key,
                                f"POST /v1/operator/suspense/{item_id}/apply", body.model_dump(), action)


@router.post("/loans/{loan_id}/write-off", response_model=ProposalOut, status_code=202, responses=ERRORS,
             summary="Propose writing off a defaulted loan: a second operator confirms it "
                     "(POST /v1/operator/proposals/{proposal_id}/confirm) before it expires")
def write_off(loan_id: LoanIdPath, body: SignedRequestIn, context: ContextDep, who: Operator,
              idempotency_key: str | None = Header(None)):
    return _proposal_once(context, who.address, idempotency_key, f"POST /v1/operator/loans/{loan_id}/write-off", {},
                          lambda: four_eyes.propose(context, who.address, decisions.write_off_call(context, loan_id),
                                                    body.signed(), current_request_id(), "loan.write_off",
                                                    {"loan_id": loan_id}))


def _proposal_once(context, actor: str, key: str | None, route: str, body: dict, propose) -> ProposalOut:
    """Relays the signed proposal `propose` makes once per Idempotency-Key: 202, awaiting confirmation."""
    return idempotency.run_once(context, actor, key, route, body, lambda: (202, propose()))


@router.get("/proposals", response_model=ProposalList, responses=ERRORS,
            summary="Proposals awaiting a second person's confirmation (not expired), oldest first: what each does, "
                    "who proposed it, when it expires (operators and admins)")
def list_proposals(context: ContextDep, _: Staff) -> ProposalList:
    return ProposalList(proposals=four_eyes.awaiting(context))


@router.get("/proposals/{proposal_id}", response_model=ProposalOut, responses=ERRORS,
            summary="One proposal, in whatever state (operators and admins)")
def one_proposal(proposal_id: ProposalIdPath, context: ContextDep, _: Staff) -> ProposalOut:
    return four_eyes.out(context, four_eyes.find(context, proposal_id))


@router.post("/proposals/{proposal_id}/confirm", response_model=ProposalOut, responses=ERRORS,
             summary="Confirm a proposal (signed `proposal.confirm`): FourEyes refuses its proposer, a confirmer "
                     "without the call's role and an expired proposal, then makes the call")
def confirm_proposal(proposal_id: ProposalIdPath, body: SignedRequestIn, context: ContextDep, who: Staff,
                     idempotency_key: str | None = Header(None)) -> ProposalOut:
    def action():
        confirmed = four_eyes.confirm(context, who.address, proposal_id, body.signed(), current_request_id())
        context.wait_indexed(confirmed.block_number)
        return 200, confirmed

    return idempotency.run_once(context, who.address, idempotency_key,
                                f"POST /v1/operator/proposals/{proposal_id}/confirm", {}, action)


@router.post("/proposals/{proposal_id}/cancel", response_model=ProposalOut, responses=ERRORS,
             summary="Cancel a proposal (signed `proposal.cancel`; its proposer or an admin)")
def cancel_proposal(proposal_id: ProposalIdPath, body: SignedRequestIn, context: ContextDep,
                    who: Staff) -> ProposalOut:
    return four_eyes.cancel(context, who.address, proposal_id, body.signed(), current_request_id())


@router.post("/loans/{loan_id}/declare-default", response_model=TxOut, responses=ERRORS,
             summary="Declare a loan in default once it is past its threshold")
def declare_default(loan_id: LoanIdPath, body: SignedRequestIn, context: ContextDep, metrics: MetricsDep,
                    who: Operator, idempotency_key: str | None = Header(None)):
    return _once(context, metrics, who.address, idempotency_key, loan_id, "declare-default", {},
                 lambda: decisions.declare_default(context, loan_id, who.address, body.signed(),
                                                   current_request_id()))


def _once(context, metrics: Metrics, actor: str, key: str | None, loan_id: int, verb: str, body: dict, send):
    """Runs the decision `send` once per Idempotency-Key and answers once the index holds its block. The key
    stands for the decision (`body` without its signature): a retry with the same key answers the first result."""

    def action():
        sent = send()
        context.wait_indexed(sent.block_number)
        return 200, _counted(metrics, sent)

    return idempotency.run_once(context, actor, key, f"POST /v1/operator/loans/{loan_id}/{verb}", body, action)


@router.get("/policy", response_model=PolicyOut, responses=ERRORS, summary="The automatic approval policy")
def get_policy(context: ContextDep, _: PolicyReader) -> PolicyOut:
    return PolicyOut(auto_approve=decisions.auto_approve_enabled(context))


@router.put("/policy", response_model=PolicyOut, responses=ERRORS, summary="Switch automatic approval on or off")
def put_policy(body: PolicyIn, context: ContextDep, who: Operator) -> PolicyOut:
    decisions.switch_auto_approve(context, body.auto_approve, who.address, current_request_id())
    return PolicyOut(auto_approve=body.auto_approve)


@router.post("/pause", response_model=list[TxOut], responses=ERRORS, summary="Pause every contract")
def pause(body: SignedRequestsIn, context: ContextDep, metrics: MetricsDep, who: Pauser) -> list[TxOut]:
    return [_counted(metrics, s)
            for s in pausing.set_paused(context, True, who.address, body.signed(), current_request_id())]


@router.post("/unpause", response_model=list[TxOut], responses=ERRORS, summary="Unpause every contract")
def unpause(body: SignedRequestsIn, context: ContextDep, metrics: MetricsDep, who: Pauser) -> list[TxOut]:
    return [_counted(metrics, s)
            for s in pausing.set_paused(context, False, who.address, body.signed(), current_request_id())]


def _awaiting_confirmation(context, response: Response, proposals) -> None:
    """A change that is only proposed answers 202, once the index (which the proposals list reads) holds it."""
    if proposals:
        context.wait_indexed(max(p.block_number for p in proposals))
        response.status_code = 202


_PROPOSED = {202: {"model": RoleChange, "description": "where you do not hold the contract's admin role (the default "
                   "deploy renounces it): proposed, awaiting a second admin's confirmation"}}


def _role_change(context, roles, metrics: Metrics, response: Response, actor: str, body: SignedRoleIn,
                 grant: bool) -> RoleChange:
    account = checksum_address(body.account)
    sent, proposals = four_eyes.change_role(context, body.role, account, body.contracts, grant, actor, body.signed(),
                                            current_request_id())
    _awaiting_confirmation(context, response, proposals)
    roles.forget(account)
    return RoleChange(role=body.role, account=account, transactions=[_counted(metrics, s) for s in sent],
                      proposals=proposals)


@router.post("/roles/grant", response_model=RoleChange, responses=ERRORS | _PROPOSED,
             summary="Grant a role (admin): alone where you hold the contract's admin role, else proposed for a "
                     "second admin to confirm (FourEyes: its own roles always)")
def grant_role(body: SignedRoleIn, response: Response, context: ContextDep, roles: RolesDep, metrics: MetricsDep,
               who: Admin) -> RoleChange:
    return _role_change(context, roles, metrics, response, who.address, body, True)


@router.post("/roles/revoke", response_model=RoleChange, responses=ERRORS | _PROPOSED,
             summary="Revoke a role (admin): alone where you hold the contract's admin role, else proposed for a "
                     "second admin to confirm")
def revoke_role(body: SignedRoleIn, response: Response, context: ContextDep, roles: RolesDep, metrics: MetricsDep,
                who: Admin) -> RoleChange:
    return _role_change(context, roles, metrics, response, who.address, body, False)


@router.post("/oracle-signer/rotate", response_model=list[RoleChange], responses=ERRORS | {202: {
                 "model": list[RoleChange], "description": "where you do not hold the credit oracle's admin role (the "
                 "default deploy renounces it): proposed, awaiting a second admin's confirmation"}},
             summary="Rotate the credit oracle's score signer: grant the new key, then revoke the old; where you do "
                     "not hold its admin role, propose both for a second admin to confirm (202)")
def rotate_signer(body: SignedRotationIn, response: Response, context: ContextDep, roles: RolesDep,
                  metrics: MetricsDep, who: Admin):
    if body.old.lower() == body.new.lower():
        raise ApiError(422, "same_signer", "the new signer is the old one")
    old, new = checksum_address(body.old), checksum_address(body.new)
    (granted, grant_proposed), (revoked, revoke_proposed) = four_eyes.rotate_signer(
        context, old, new, who.address, body.signed(), current_request_id())
    roles.forget(old)
    roles.forget(new)
    _awaiting_confirmation(context, response, grant_proposed + revoke_proposed)
    return [RoleChange(role="score_signer", account=new, transactions=[_counted(metrics, s) for s in granted],
                       proposals=grant_proposed),
            RoleChange(role="score_signer", account=old, transactions=[_counted(metrics, s) for s in revoked],
                       proposals=revoke_proposed)]


@router.get("/auditors", response_model=AuditorList, responses=ERRORS, summary="Addresses admitted as auditors")
def auditors(context: ContextDep, _: Staff) -> AuditorList:
    return AuditorList(auditors=admitted_auditors(context))


@router.post("/auditors", response_model=AuditorList, responses=ERRORS, summary="Admit an auditor (admin)")
def add_auditor(body: AuditorIn, context: ContextDep, roles: RolesDep, who: Admin) -> AuditorList:
    address = checksum_address(body.address)
    admit_auditor(context, address, who.address, current_request_id())
    roles.forget(address)
    return AuditorList(auditors=admitted_auditors(context))


@router.delete("/auditors/{address}", response_model=AuditorList, responses=ERRORS, summary="Remove an auditor")
def remove_auditor(address: str, context: ContextDep, roles: RolesDep, who: Admin) -> AuditorList:
    address = checksum_address(address)
    dismiss_auditor(context, address, who.address, current_request_id())
    roles.forget(address)
    return AuditorList(auditors=admitted_auditors(context))


@router.post("/loans/{loan_id}/credit-refund", response_model=CreditRefundOut, responses=ERRORS,
             summary="Pay an Overpaid loan's credit back over the rail (once: asking again answers the same refund)")
def refund_credit(loan_id: LoanIdPath, context: ContextDep, who: Operator, idempotency_key: str | None = Header(None)):
    def action():
        order = credit_refunds.order_credit_refund(context, loan_id, who.address, current_request_id())
        return 200, CreditRefundOut.model_validate(order)

    return idempotency.run_once(context, who.address, idempotency_key,
                                f"POST /v1/operator/loans/{loan_id}/credit-refund", {}, action)


@router.get("/credit-refunds", response_model=CreditRefundList, responses=ERRORS,
            summary="Credit refund orders, newest first (operators, admins and auditors)")
def list_credit_refunds(context: ContextDep, _: Auditor,
                        state: Literal["ordered", "sent", "settled", "failed"] | None = None,
                        loan_id: int | None = Query(None, ge=1, le=2**63 - 1),
                        limit: int = Query(100, ge=1, le=1000)) -> CreditRefundList:
    orders = credit_refunds.list_orders(context, loan_id=loan_id, state=state, limit=limit)
    return CreditRefundList(orders=[CreditRefundOut.model_validate(o) for o in orders])

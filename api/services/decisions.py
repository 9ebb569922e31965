"""Operators' decisions on loans, signed by the operator who makes them and relayed; approving orders the payout
(api.services.payouts); the switch of the automatic approval policy.

The automatic policy itself is not the API's: it runs as its own process with its own key (oracle/policy.py,
`loanledger oracle policy`: POLICY_ROLE, admitted by the loan book only for loans their product made
autoApprovable). The API answers an application Requested; the policy decides shortly after, with the book's own
check: it tries `approve`, and a refusal for a stale score, a credit limit or an ineligible borrower becomes a
`reject` with that reason (REJECTIONS, the one definition both use), on-chain, so the borrower and the auditors see
why. What it may not decide waits for an operator.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError

from api.errors import ApiError
from api.services import payouts, signed_requests
from api.services.signed_requests import Signed, check_and_relay
from api.services.transactions import Sent, record
from ledger.encoding import to_0x_hex
from ledger.store.models.api import ApiSetting

log = logging.getLogger(__name__)

REJECTIONS = {"LoanBookStaleScore": "stale_score", "LoanBookCreditLimitExceeded": "over_limit",
              "LoanBookBorrowerNotEligible": "not_eligible"}
AUTO_APPROVE = "auto_approve"


def auto_approve_enabled(context) -> bool:
    with context.sessions() as session:
        value = session.scalar(select(ApiSetting.value).where(ApiSetting.name == AUTO_APPROVE))
    return context.settings.auto_approve if value is None else value == "true"


def set_auto_approve(context, enabled: bool, actor: str) -> None:
    with context.sessions.begin() as session:
        session.merge(ApiSetting(name=AUTO_APPROVE, value="true" if enabled else "false", updated_by=actor,
                                 updated_at=int(time.time())))


def reason_bytes(reason: str) -> bytes:
    raw = reason.encode()
    if len(raw) > 32:
        raise ApiError(422, "invalid_reason", "a reason is at most 32 bytes")
    return raw.ljust(32, b"\0")


def request_payout(context, loan_id: int, actor: str, request_id: str) -> payouts.Order | None:
    """Orders the payout of an approved loan (api.services.payouts: one recorded order per loan, sent once);
    None when the provider did not answer (the order stays recorded, and a retry reconciles it first)."""
    try:
        return payouts.order_payout(context, loan_id, actor, request_id)
    except payouts.PayoutUnavailable as exc:
        log.warning("payout of loan %d not confirmed by the provider: %s", loan_id, exc.message)
        return None


# Operator decisions on one loan, signed by the operator who makes them (api.services.signed_requests) and
# relayed by the API: each has the call its route expects (what `POST /v1/operator/requests` prepares, and what the
# signed request must be) and the decision itself.


def approve_call(context, loan_id: int) -> ContractFunction:
    return context.bindings.book.functions.approve(loan_id)


def reject_call(context, loan_id: int, reason: str) -> ContractFunction:
    return context.bindings.book.functions.reject(loan_id, reason_bytes(reason))


def write_off_call(context, loan_id: int) -> ContractFunction:
    return context.bindings.book.functions.writeOff(loan_id)


def declare_default_call(context, loan_id: int) -> ContractFunction:
    return context.bindings.book.functions.declareDefault(loan_id)


def approval_to_sign(context, signer: str, loan_id: int) -> tuple[ContractFunction, str]:
    """What an operator approving `loan_id` signs, and the decision it is: the approval, or, when the loan book
    would refuse it for a stale score, a credit limit or an ineligible borrower, the rejection with that reason
    (the book's checks, run as the signer would: the borrower and the auditors then see why)."""
    try:
        approve_call(context, loan_id).call({"from": signer})
    except ContractCustomError as exc:
        refused = context.bindings.errors.from_exception(exc)
        reason = REJECTIONS.get(refused.name) if refused is not None else None
        if reason is not None:
            return reject_call(context, loan_id, reason), f"rejected:{reason}"
    except ContractLogicError:
        pass  # refused for another reason: the signed approval will be refused on-chain with it, as it was
    return approve_call(context, loan_id), "approved"


def decide(context, loan_id: int, actor: str, signed: Signed, request_id: str) -> tuple[str, int]:
    """Relays the operator's signed approval (or the rejection `approval_to_sign` gave them for the book's reason);
    an approval orders the payout. Returns (decision, block)."""
    calls = {"approved": approve_call(context, loan_id),
             **{f"rejected:{reason}": reject_call(context, loan_id, reason) for reason in REJECTIONS.values()}}
    receipt = check_and_relay(context, actor, list(calls.values()), signed.request, signed.signature)
    data = signed.request["data"].lower()
    decision = next(d for d, call in calls.items() if signed_requests.calldata(call)[1] == data)
    context.action_log.append(actor, "loan.approve" if decision == "approved" else "loan.reject", request_id,
                              {"loan_id": loan_id, "decision": decision, "signed_by": actor,
                               "tx": to_0x_hex(receipt["transactionHash"])})
    if decision == "approved":
        request_payout(context, loan_id, actor, request_id)
    return decision, receipt["blockNumber"]


def reject(context, loan_id: int, reason: str, actor: str, signed: Signed, request_id: str) -> Sent:
    receipt = check_and_relay(context, actor, reject_call(context, loan_id, reason), signed.request, signed.signature)
    return record(context, actor, "loan.reject", request_id, {"loan_id": loan_id, "reason": reason}, receipt,
                  signed_by=actor)


def declare_default(context, loan_id: int, actor: str, signed: Signed, request_id: str) -> Sent:
    """Declares a loan in default once it is past its threshold (the loan book checks)."""
    receipt = check_and_relay(context, actor, declare_default_call(context, loan_id), signed.request,
                              signed.signature)
    return record(context, actor, "loan.declare_default", request_id, {"loan_id": loan_id}, receipt, signed_by=actor)


def switch_auto_approve(context, enabled: bool, actor: str, request_id: str) -> None:
    """Switches the automatic approval policy and records who did."""
    set_auto_approve(context, enabled, actor)
    context.action_log.append(actor, "policy.auto_approve", request_id, {"enabled": enabled})

"""Automatic debit (issue 17): a borrower's debit mandate for one loan and the bound card.

The borrower signs a DebitMandate (EIP-712) and sends it with a step-up code for `debit_mandate` {loan_id}; the
oracle's collection run debits the loan's amount due on each due date while the mandate is in force. Revoking it is
signed too (RevokeDebitMandate). Checks and refusals: api/services/mandates.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import Principal
from api.deps import ContextDep, LoanReader, RegisteredBorrower
from api.errors import error_responses
from api.observability import current_request_id
from api.schemas import LoanIdPath
from api.schemas.mandates import (
    CollectionOut,
    MandateIn,
    MandateOut,
    MandateRevokeIn,
    MandateSignParams,
    MandateStatusOut,
    MandateToSignOut,
)
from api.services import mandates
from api.stepup import STEP_UP_ERRORS, StepUpCode, StepUpDep
from api.views import visible_loan

router = APIRouter(prefix="/v1", tags=["loans"])
ERRORS = error_responses(401, 403, 404, 409, 422, 503)


@router.get("/loans/{loan_id}/debit-mandate", response_model=MandateStatusOut, responses=ERRORS,
            summary="The loan's debit mandate in force, its automatic debits, and (for its borrower) what a new "
                    "one or a revocation signs")
def mandate_status(loan_id: LoanIdPath, context: ContextDep, who: LoanReader) -> MandateStatusOut:
    with context.sessions() as session:
        row = visible_loan(session, who, loan_id)
        current = mandates.active(session, loan_id)
        nonce = mandates.next_nonce(session, row.borrower)
        debits = [CollectionOut.model_validate(i) for i in mandates.collections(session, loan_id)]
    mine = row.borrower.lower() == who.address.lower()
    params = None
    if mine:
        params = MandateSignParams(chain_id=context.w3.eth.chain_id, loan_book=context.bindings.book.address,
                                   card=mandates.bound_card(context, who.address), nonce=nonce)
    return MandateStatusOut(loan_id=loan_id, mandate=MandateOut.model_validate(current) if current else None,
                            sign_params=params,
                            revocation_to_sign=mandates.revocation_to_sign(context, who.address, loan_id)
                            if mine and current else None, collections=debits)


@router.get("/loans/{loan_id}/debit-mandate/typed-data", response_model=MandateToSignOut, responses=ERRORS,
            summary="The DebitMandate the borrower would sign for these terms: typed data ready for "
                    "eth_signTypedData_v4 and what it authorises in plain words",
            description="`max_amount` (minor units) defaults to what the loan book will ask on the next due date; "
                        "`valid_until` (chain time) to the loan's last due date plus its default period. The "
                        "signature is then sent to POST .../debit-mandate with these terms.")
def mandate_to_sign(loan_id: LoanIdPath, context: ContextDep, who: RegisteredBorrower,
                    max_amount: Annotated[int | None, Query(ge=1, lt=2**96)] = None,
                    valid_until: Annotated[int | None, Query(gt=0, lt=2**40)] = None) -> MandateToSignOut:
    with context.sessions() as session:
        row = visible_loan(session, Principal(who.address, frozenset()), loan_id)  # own loans only, else 404
        terms = mandates.Terms(max_amount or mandates.proposed_ceiling(context, row),
                               valid_until or mandates.default_valid_until(context, row))
        return MandateToSignOut(**mandates.typed_to_sign(context, who.address, row, terms, row.currency))


@router.post("/loans/{loan_id}/debit-mandate", response_model=MandateOut, status_code=201,
             responses={**ERRORS, **STEP_UP_ERRORS},
             summary="Set up automatic debit of the loan's amount due from the bound card: the borrower's signed "
                     "DebitMandate and a step-up code for debit_mandate {loan_id} (replaces a previous mandate)")
def create_mandate(loan_id: LoanIdPath, body: MandateIn, context: ContextDep, step_up: StepUpDep,
                   who: RegisteredBorrower, code: StepUpCode = None) -> MandateOut:
    with context.sessions() as session:
        row = visible_loan(session, Principal(who.address, frozenset()), loan_id)  # own loans only, else 404
        status = row.status
    step_up.redeem(who.address, "debit_mandate", {"loan_id": loan_id}, code)
    made = mandates.create(context, who.address, status, loan_id, mandates.Terms(body.max_amount, body.valid_until),
                           body.nonce, body.card, bytes.fromhex(body.signature[2:]), current_request_id())
    return MandateOut.model_validate(made)


@router.delete("/loans/{loan_id}/debit-mandate", response_model=MandateOut, responses=ERRORS,
               summary="Revoke the loan's debit mandate with the borrower's RevokeDebitMandate signature: the next "
                       "collection run debits nothing")
def revoke_mandate(loan_id: LoanIdPath, body: MandateRevokeIn, context: ContextDep,
                   who: RegisteredBorrower) -> MandateOut:
    with context.sessions() as session:
        visible_loan(session, Principal(who.address, frozenset()), loan_id)  # own loans only, else 404
    revoked = mandates.revoke(context, who.address, loan_id, bytes.fromhex(body.signature[2:]), current_request_id())
    return MandateOut.model_validate(revoked)

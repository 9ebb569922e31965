"""Automatic debit (issue 17): a borrower's debit mandate for one loan and the bound card.

The borrower signs a DebitMandate (EIP-712) and sends it with a step-up code for `debit_mandate` {loan_id}; the
oracle's collection run debits the loan's amount due on each due date while the mandate is in force. Revoking it is
signed too (RevokeDebitMandate). Checks and refusals: api/services/mandates.py.

Operators see every automatic-debit attempt the collection run recorded (`GET /v1/operator/debits`, paged by
cursor as the audit lists are): what needs a person is `state=set_aside`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import Auditor, ContextDep, LoanReader, RegisteredBorrower
from api.errors import error_responses
from api.observability import current_request_id
from api.paging import MAX_KEY, decode_cursor, next_cursor, page
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
from api.views import own_loan, visible_loan

router = APIRouter(prefix="/v1", tags=["loans"])
ERRORS = error_responses(401, 403, 404, 409, 422, 503)


@router.get("/loans/{loan_id}/debit-mandate", response_model=MandateStatusOut, responses=ERRORS,
            summary="The loan's debit mandate in force, its automatic debits, and (for its borrower) what a new "
                    "one or a revocation signs")
def mandate_status(loan_id: LoanIdPath, context: ContextDep, who: LoanReader) -> MandateStatusOut:
    with context.sessions() as session:
        row = visible_loan(session, who, loan_id, context)
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
        row = own_loan(session, context, who.address, loan_id, "a debit mandate")  # own loans only, else 404
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
        row = own_loan(session, context, who.address, loan_id, "a debit mandate")  # own loans only, else 404
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
        own_loan(session, context, who.address, loan_id, "revoking a debit mandate")  # own loans only, else 404
    revoked = mandates.revoke(context, who.address, loan_id, bytes.fromhex(body.signature[2:]), current_request_id())
    return MandateOut.model_validate(revoked)


# ------------------------------------------------------------------ every automatic debit (operators)

MAX_PAGE = 500
_DEBIT = {"id": 7, "key": "debit-3-1769817600-1", "mandate_id": 3, "loan_id": 12, "due_at": 1_769_817_600,
          "attempt": 1, "amount": 41_588, "currency": "CNY", "state": "declined", "reason": "insufficient_funds",
          "reference": "col_5f2a9c", "retry_at": 1_769_904_000, "set_aside": False, "created_at": 1_769_817_900,
          "updated_at": 1_769_818_200}


class DebitOut(BaseModel):
    """One automatic-debit attempt, as the collection run (oracle/collections.py) recorded it."""

    id: int
    key: str = Field(description="the rail order's Idempotency-Key: debit-{mandate}-{due_at}-{attempt}")
    mandate_id: int
    loan_id: int
    due_at: int = Field(description="the installment's due date (unix seconds)")
    attempt: int = Field(description="1 for the due date's debit, then one per retry")
    amount: int = Field(description="minor units: the loan book's amount due at the run, capped by the mandate")
    currency: str
    state: str = Field(description="pending, sent, collected, declined, failed or set_aside")
    reason: str | None = Field(None, description="why the bank declined it, e.g. insufficient_funds")
    reference: str | None = Field(None, description="the rail's reference once it took the order")
    retry_at: int | None = Field(None, description="when the next attempt is due (the retry policy), if any")
    set_aside: bool = Field(description="declined too often: no more retries, a person follows it up")
    created_at: int
    updated_at: int

    model_config = {"json_schema_extra": {"examples": [_DEBIT]}}


class DebitPage(BaseModel):
    debits: list[DebitOut] = Field(description="oldest first (the order the run recorded them)")
    next_cursor: str | None = Field(description="give it as `cursor` for the next page; null on the last")

    model_config = {"json_schema_extra": {"examples": [{"debits": [_DEBIT], "next_cursor": None}]}}


@router.get("/operator/debits", response_model=DebitPage, responses=error_responses(401, 403, 422, 503),
            tags=["operator"],
            summary="Every automatic-debit attempt (state, loan, amount, attempt, next retry, set aside), paged "
                    "(operators, admins and auditors)",
            description="From the collection run's records, oldest first; `state=set_aside` lists what needs a "
                        "person. 422 `invalid_state`, `invalid_cursor`.")
def list_debits(context: ContextDep, _: Auditor,
                state: Annotated[str | None, Query(description="one of " + ", ".join(mandates.DEBIT_STATES))] = None,
                loan_id: Annotated[int | None, Query(ge=1, le=MAX_KEY, description="only this loan's")] = None,
                cursor: Annotated[str | None, Query(max_length=256, description="next_cursor of the previous page")]
                = None,
                limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"rows per page (1..{MAX_PAGE})")] = 100,
                ) -> DebitPage:
    query = mandates.debits_query(state, loan_id)
    after = decode_cursor(cursor, mandates.DEBIT_ORDER.types)
    with context.sessions() as session:
        rows, key = page(session, query, mandates.DEBIT_ORDER, after, limit)
        debits = [DebitOut(id=r.id, key=r.key, mandate_id=r.mandate_id, loan_id=r.loan_id, due_at=r.due_at,
                           attempt=r.attempt, amount=r.amount, currency=r.currency, state=r.status, reason=r.reason,
                           reference=r.reference, retry_at=r.retry_at, set_aside=r.status == "set_aside",
                           created_at=r.created_at, updated_at=r.updated_at) for r in rows]
    return DebitPage(debits=debits, next_cursor=next_cursor(key))

"""Auditor routes: read everything, change nothing. Loans, pseudonymous borrowers, every event with its
block and transaction, payments, the portfolio report, the ledger's verification checks, and exports.

Lists page with an opaque cursor over a stable key (api.paging); the queries are api.audit_queries, the
bodies api.schemas.audit, the checks api.services.verification, the exports api.exports. Nothing from
the PII vault leaves: the identity check returns pass/fail and the commitment only.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api import exports
from api.audit_queries import (
    BORROWER_ORDER,
    EVENT_ORDER,
    LOAN_ORDER,
    PAYMENT_ORDER,
    borrower_bodies,
    events_query,
    loan_history,
    loans_query,
    payments_query,
)
from api.deps import Auditor, ContextDep
from api.errors import error_responses, not_found
from api.paging import MAX_KEY, decode_cursor, next_cursor, page
from api.read_cache import cached_read
from api.schemas import LoanIdPath, LoanList, LoanOut
from api.schemas.audit import (
    AuditLoanOut,
    BorrowerOut,
    BorrowerPage,
    Check,
    EventOut,
    EventPage,
    PaymentKind,
    PaymentOut,
    PaymentPage,
    ReconciliationOut,
    ReconciliationReportOut,
    ReconciliationRowOut,
    VerificationOut,
)
from api.services import reconciliation, verification
from api.services.reports import PortfolioOut, current_portfolio
from api.views import checksum_address, visible_loan
from ledger.store.models.chain import Borrower, Loan

router = APIRouter(prefix="/v1/audit", tags=["audit"])
ERRORS = error_responses(401, 403, 404, 422, 503)
MAX_PAGE = 500


Cursor = Annotated[str | None, Query(max_length=256, description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"rows per page (1..{MAX_PAGE})")]
LoanId = Annotated[int | None, Query(ge=1, le=MAX_KEY, description="only this loan")]
BorrowerAddress = Annotated[str | None, Query(description="only this borrower's (an address)")]
Block = Annotated[int | None, Query(ge=0, le=MAX_KEY)]
Time = Annotated[int | None, Query(ge=0, le=MAX_KEY, description="unix seconds (block time)")]


# ---------------------------------------------------------------------------------------------- routes

LOAN_LIST_EXAMPLE = {200: {"content": {"application/json": {"example": {"loans": [], "next_cursor": "WzEwMF0"}}}}}


@router.get("/loans", response_model=LoanList, responses={**ERRORS, **LOAN_LIST_EXAMPLE},
            summary="Every loan, by id, with its schedule (filter by status and borrower)")
@cached_read()
def loans(request: Request, context: ContextDep, _: Auditor, status: Annotated[str | None, Query(description="e.g. Active")] = None,
          borrower: BorrowerAddress = None, cursor: Cursor = None, limit: Limit = 100) -> LoanList:
    query = loans_query(status, borrower).options(selectinload(Loan.schedule))
    after = decode_cursor(cursor, LOAN_ORDER.types)
    with context.sessions() as session:
        rows, key = page(session, query, LOAN_ORDER, after, limit)
        return LoanList(loans=[LoanOut.model_validate(r) for r in rows], next_cursor=next_cursor(key))


@router.get("/loans/{loan_id}", response_model=AuditLoanOut, responses=ERRORS,
            summary="One loan with its schedule, payments and every event (block, tx, log index, time)")
@cached_read()
def loan(loan_id: LoanIdPath, request: Request, context: ContextDep, who: Auditor) -> AuditLoanOut:
    with context.sessions() as session:
        return loan_history(session, visible_loan(session, who, loan_id))


@router.get("/borrowers", response_model=BorrowerPage, responses=ERRORS,
            summary="Borrowers as the chain knows them (pseudonymous), by address")
def borrowers(context: ContextDep, _: Auditor, revoked: bool | None = None, cursor: Cursor = None,
              limit: Limit = 100) -> BorrowerPage:
    query = select(Borrower)
    if revoked is not None:
        query = query.where(Borrower.revoked == revoked)
    after = decode_cursor(cursor, BORROWER_ORDER.types)
    with context.sessions() as session:
        rows, key = page(session, query, BORROWER_ORDER, after, limit)
        return BorrowerPage(borrowers=borrower_bodies(session, rows), next_cursor=next_cursor(key))


@router.get("/borrowers/{address}", response_model=BorrowerOut, responses=ERRORS,
            summary="One borrower: commitment, KYC expiry, revocation, score history, loans (no PII)")
def borrower(address: Annotated[str, Path(max_length=64)], context: ContextDep, _: Auditor) -> BorrowerOut:
    address = checksum_address(address)
    with context.sessions() as session:
        row = session.get(Borrower, address)
        if row is None:
            raise not_found(f"borrower {address}")
        return borrower_bodies(session, [row])[0]


@router.get("/events", response_model=EventPage, responses=ERRORS,
            summary="Every indexed event in chain order (block, log index), filtered")
def events(context: ContextDep, _: Auditor, loan: LoanId = None, borrower: BorrowerAddress = None,
           event_type: Annotated[str | None, Query(alias="type", max_length=64,
                                                   description="event name, e.g. RepaymentApplied")] = None,
           from_block: Block = None, to_block: Block = None, from_time: Time = None, to_time: Time = None,
           cursor: Cursor = None, limit: Limit = 100) -> EventPage:
    query = events_query(context, loan=loan, borrower=borrower, name=event_type, from_block=from_block,
                         to_block=to_block, from_time=from_time, to_time=to_time)
    after = decode_cursor(cursor, EVENT_ORDER.types)
    with context.sessions() as session:
        rows, key = page(session, query, EVENT_ORDER, after, limit)
        return EventPage(events=[EventOut.model_validate(r) for r in rows], next_cursor=next_cursor(key))


@router.get("/payments", response_model=PaymentPage, responses=ERRORS,
            summary="Payments confirmed on-chain (disbursements and repayments with their allocation)")
def payments(context: ContextDep, _: Auditor, loan: LoanId = None, kind: PaymentKind | None = None,
             borrower: BorrowerAddress = None, cursor: Cursor = None, limit: Limit = 100) -> PaymentPage:
    query = payments_query(loan, kind, borrower)
    after = decode_cursor(cursor, PAYMENT_ORDER.types)
    with context.sessions() as session:
        rows, key = page(session, query, PAYMENT_ORDER, after, limit)
        return PaymentPage(payments=[PaymentOut.model_validate(r) for r in rows], next_cursor=next_cursor(key))


@router.get("/report/portfolio", response_model=PortfolioOut, responses=ERRORS,
            summary="Outstanding principal, portfolio-at-risk (1/30/90 days), delinquency buckets, totals by status")
@cached_read(at_chain_head=True)
def portfolio_report(request: Request, context: ContextDep, _: Auditor,
                     currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$",
                                                           description="needed only if loans use several")] = None,
                     ) -> PortfolioOut:
    return current_portfolio(context, currency)


@router.get("/verify/{check}", response_model=VerificationOut, responses=ERRORS,
            summary="Run a verification: index vs chain, state recomputed from events, identity, action log")
def verify(check: Check, context: ContextDep, _: Auditor,
           loan_id: Annotated[int | None, Query(ge=1, le=MAX_KEY, description="state: only this loan")] = None,
           address: Annotated[str | None, Query(description="identity: the borrower to check")] = None,
           ) -> VerificationOut:
    if check is Check.identity and address is not None:
        address = checksum_address(address)
    result, commitment = verification.run(context, check.value, loan_id=loan_id, address=address)
    return VerificationOut(**result.to_dict(), commitment=commitment)


# ---------------------------------------------------------------------------------------------- export


@router.get("/export/{dataset}.{fmt}", response_class=StreamingResponse,
            responses={**ERRORS, 200: {"description": "the whole dataset, in the list routes' order",
                                       "content": {"text/csv": {"example": "id,borrower,status,principal\n"},
                                                   "application/json": {"example": [{"id": 1}]}}}},
            summary="Export loans, events or payments as CSV (header row) or a JSON array; amounts are integers")
def export(dataset: exports.Dataset, fmt: exports.ExportFormat, context: ContextDep,
           _: Auditor) -> StreamingResponse:
    spec = exports.EXPORTS[dataset]
    rows = exports.export_rows(context.sessions, spec)
    headers = {"content-disposition": f'attachment; filename="{dataset.value}.{fmt.value}"'}
    if fmt is exports.ExportFormat.csv:
        return StreamingResponse(exports.csv_text(spec.columns, rows), media_type="text/csv; charset=utf-8",
                                 headers=headers)
    return StreamingResponse(exports.json_array(rows), media_type="application/json", headers=headers)


Day = Annotated[date | None, Query(alias="date", description="YYYY-MM-DD (UTC); default: yesterday, as the "
                                                               "oracle's scheduled run")]
Provider = Annotated[str | None, Query(max_length=32, description="only this payment provider")]


@router.get("/reconciliation", response_model=ReconciliationOut, responses=ERRORS,
            summary="The payment providers' settlement statements for a UTC day against the ledger (as "
                    "`loanledger rail reconcile`): matched, amount differs, on the rail only, on-chain only")
def reconcile(context: ContextDep, _: Auditor, day: Day = None, provider: Provider = None) -> ReconciliationOut:
    day = day or reconciliation.yesterday()
    found = reconciliation.reconcile(context, day, provider)
    return ReconciliationOut(date=day.isoformat(), skipped=found.skipped, reports=[ReconciliationReportOut(
        provider=r.provider, date=r.day.isoformat(), counts=r.counts, unmatched=r.unmatched, balanced=r.balanced,
        statement_lines=sum(1 for row in r.rows if row.category != "chain_only"),
        rows=[ReconciliationRowOut.model_validate(row) for row in r.rows]) for r in found.reports])


@router.get("/reconciliation.csv", response_class=Response,
            responses={**ERRORS, 200: {"description": "one row per statement line or chain-only payment",
                                       "content": {"text/csv": {"example": "category,provider,reference,...\n"}}}},
            summary="The same reconciliation as CSV (one header; the provider is a column)")
def reconcile_csv(context: ContextDep, _: Auditor, day: Day = None, provider: Provider = None) -> Response:
    day = day or reconciliation.yesterday()
    found = reconciliation.reconcile(context, day, provider)
    return Response(reconciliation.as_csv(found), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="reconciliation-{day.isoformat()}.csv"'})

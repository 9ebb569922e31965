"""Auditor routes: read everything, change nothing. Loans, pseudonymous borrowers, every event with its
block and transaction, payments, the portfolio report, the ledger's verification checks, and exports.

Lists page with an opaque cursor over a stable key (loan id; block number then log index; address),
so a page boundary never drops or repeats a row even while the indexer appends. Borrowers are shown
as the chain knows them (address, commitment, KYC expiry, scores): nothing from the PII vault leaves
this module; the identity check returns pass/fail and the commitment only.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session, selectinload

from api.auth import Principal, require
from api.errors import ApiError, ErrorResponse, not_found
from api.read_cache import cached_read
from api.reports import STATUSES, PortfolioOut, load_figures, portfolio, report_currency
from api.schemas import EXAMPLE_BORROWER, EXAMPLE_LOAN, EXAMPLE_LOAN_BOOK, EXAMPLE_TX, LoanIdPath, LoanList, LoanOut
from api.views import READ_ALL, checksum_address, loan_out, visible_loan
from ledger import verify as checks
from ledger.identity import identity_commitment
from ledger.store.models.chain import Borrower, ChainEvent, Loan, Payment, ScoreRecord
from ledger.vault import RecordNotFound, VaultIntegrityError

router = APIRouter(prefix="/v1/audit", tags=["audit"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
    422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}
Auditor = Annotated[Principal, Depends(require(*READ_ALL))]  # READ_ALL: auditor, operator, admin
MAX_PAGE = 500
EXPORT_BATCH = 1_000
_MAX_KEY = 2**63 - 1  # cursors carry BIGINT keys


# ---------------------------------------------------------------------------------------------- bodies

# Loan 1 of the schemas' examples: paid out in block 118, its first installment repaid on time in block 140.
_REPAYMENT_TX = "0x74fbbb3eb7c5f1739180ad00882878b8e5dcb3fde4fd0cf8d0c601f090714d65"
_ORACLE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
_EXAMPLE_EVENT = {
    "id": 9, "contract": "LoanBook", "address": EXAMPLE_LOAN_BOOK, "name": "RepaymentApplied",
    "args": {"loanId": 1, "paymentRef": "0xceabd89e4db26443885dc5389713c6f5115cef9c47779dcb26ab965b687e2f28",
             "amount": 41_588, "principal": 39_221, "interest": 2_367, "lateFee": 0, "penalty": 0,
             "paidAt": 1_769_817_600, "paidInstallments": 1, "actor": _ORACLE},
    "block_number": 140, "block_hash": "0x5e5d6a4656578ad54442961513502097eba8c9bc0e30f8b9205bf20c090fc240",
    "block_time": 1_769_817_612, "tx_hash": _REPAYMENT_TX, "log_index": 1, "loan_id": 1, "borrower": EXAMPLE_BORROWER}
_EXAMPLE_PAYMENTS = [
    {"reference": "0x38f78745b82e6b53762316d8a03d9d7dce0e3dcbb2ee692f46bbb5364734dce2", "kind": "disbursement",
     "loan_id": 1, "amount": 120_000, "principal": 0, "interest": 0, "late_fee": 0, "penalty": 0,
     "paid_at": 1_767_225_600, "tx_hash": EXAMPLE_TX, "block_number": 118, "log_index": 0},
    {"reference": _EXAMPLE_EVENT["args"]["paymentRef"], "kind": "repayment", "loan_id": 1, "amount": 41_588,
     "principal": 39_221, "interest": 2_367, "late_fee": 0, "penalty": 0, "paid_at": 1_769_817_600,
     "tx_hash": _REPAYMENT_TX, "block_number": 140, "log_index": 1}]
_EXAMPLE_SCORE = {"score": 700, "credit_limit": 1_000_000, "model_version": 1, "report_id": 1,
                  "block_time": 1_767_139_200, "block_number": 12,
                  "tx_hash": "0x47bb006c91539ecb9ba52283ff2cf92af350004d720305f9f6a019b073a950b7", "log_index": 0}


class EventOut(BaseModel):
    id: int
    contract: str
    address: str
    name: str
    args: dict[str, Any] = Field(description="decoded arguments: integers as integers, bytes as 0x-hex")
    block_number: int
    block_hash: str
    block_time: int
    tx_hash: str
    log_index: int
    loan_id: int | None
    borrower: str | None

    model_config = {"json_schema_extra": {"examples": [_EXAMPLE_EVENT]}}


class EventPage(BaseModel):
    events: list[EventOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last")

    model_config = {"json_schema_extra": {"examples": [{"events": [_EXAMPLE_EVENT], "next_cursor": "WzE0MCwxXQ"}]}}


class PaymentOut(BaseModel):
    reference: str = Field(description="the rail's payment reference (bytes32), credited once ever")
    kind: str = Field(description="disbursement | repayment")
    loan_id: int
    amount: int
    principal: int
    interest: int
    late_fee: int
    penalty: int
    paid_at: int
    tx_hash: str
    block_number: int
    log_index: int

    model_config = {"json_schema_extra": {"examples": [_EXAMPLE_PAYMENTS[1]]}}


class PaymentPage(BaseModel):
    payments: list[PaymentOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last")

    model_config = {"json_schema_extra": {"examples": [{"payments": _EXAMPLE_PAYMENTS, "next_cursor": None}]}}


class AuditLoanOut(LoanOut):
    events: list[EventOut] = Field(description="every event of the loan, in chain order")
    payments: list[PaymentOut] = Field(description="its disbursement and repayments, in chain order")

    # Shortened: the real answer lists every event (LoanRequested, LoanApproved, LoanDisbursed, ...).
    model_config = {"json_schema_extra": {"examples": [{
        **EXAMPLE_LOAN, "events": [_EXAMPLE_EVENT], "payments": _EXAMPLE_PAYMENTS}]}}


class ScoreOut(BaseModel):
    score: int
    credit_limit: int = Field(description="minor units")
    model_version: int
    report_id: int
    block_time: int
    block_number: int
    tx_hash: str
    log_index: int

    model_config = {"json_schema_extra": {"examples": [_EXAMPLE_SCORE]}}


class BorrowerOut(BaseModel):
    """A borrower as the chain knows them: pseudonymous (no name, ID, phone or card)."""

    address: str
    registered: bool
    identity_commitment: str | None = Field(description="salted hash of the KYC record")
    kyc_expires_at: int | None
    registered_at: int | None
    revoked: bool
    revoked_reason: str | None
    score: int | None
    credit_limit: int | None
    model_version: int | None
    score_updated_at: int | None
    score_history: list[ScoreOut]
    loan_ids: list[int]

    model_config = {"json_schema_extra": {"examples": [{
        "address": EXAMPLE_BORROWER, "registered": True,
        "identity_commitment": "0x38f78745b82e6b53762316d8a03d9d7dce0e3dcbb2ee692f46bbb5364734dce2",
        "kyc_expires_at": 1_798_675_200, "registered_at": 1_767_139_200, "revoked": False, "revoked_reason": None,
        "score": 700, "credit_limit": 1_000_000, "model_version": 1, "score_updated_at": 1_767_139_200,
        "score_history": [_EXAMPLE_SCORE], "loan_ids": [1]}]}}


class BorrowerPage(BaseModel):
    borrowers: list[BorrowerOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last")

    model_config = {"json_schema_extra": {"examples": [{
        "borrowers": BorrowerOut.model_config["json_schema_extra"]["examples"],
        "next_cursor": "WyIweDk5NjU1MDdEMWE1NWJjQzI2OTVDNThiYTE2RkIzN2Q4MTlCMEE0ZGMiXQ"}]}}


class VerificationOut(BaseModel):
    check: str
    ok: bool
    checked: int = Field(description="how many items were compared")
    details: list[str] = Field(description="one line per discrepancy (or, when ok, what matched)")
    commitment: str | None = Field(None, description="identity: the commitment the vault's record opens to")
    first_bad_seq: int | None = Field(None, description="log: the lowest entry the log can no longer vouch for")
    anchors: int | None = Field(None, description="log: on-chain anchors compared")

    model_config = {"json_schema_extra": {"examples": [
        {"check": "index", "ok": True, "checked": 120, "details": []},
        {"check": "state", "ok": False, "checked": 3,
         "details": ["loan 2 (from events) progress: {...} != node {...}"]},
        {"check": "identity", "ok": True, "checked": 1,
         "details": [f"{EXAMPLE_BORROWER}: commitment matches the registry (KYC expires at 1798675200)"],
         "commitment": "0x38f78745b82e6b53762316d8a03d9d7dce0e3dcbb2ee692f46bbb5364734dce2"}]}}


class Check(str, Enum):
    index = "index"
    state = "state"
    identity = "identity"
    log = "log"


class Dataset(str, Enum):
    loans = "loans"
    events = "events"
    payments = "payments"


class ExportFormat(str, Enum):
    csv = "csv"
    json = "json"


class PaymentKind(str, Enum):
    disbursement = "disbursement"
    repayment = "repayment"


# ---------------------------------------------------------------------------------------------- paging


def encode_cursor(key: tuple) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, types: tuple[type, ...]) -> tuple | None:
    """The key a cursor carries; 422 `invalid_cursor` for anything this API did not hand out."""
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(key, list) and len(key) == len(types)
                and all(type(v) is t for v, t in zip(key, types, strict=True))
                and all(0 <= v <= _MAX_KEY for v in key if isinstance(v, int))):
            raise ValueError
    except ValueError:  # also binascii.Error, JSONDecodeError, UnicodeDecodeError
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API returned: start without it") from None
    return tuple(key)


@dataclass(frozen=True)
class Keyset:
    """A stable total order over a table, and how to resume after a row."""

    columns: tuple  # ORM columns, most significant first (one or two)
    types: tuple[type, ...]

    def query(self, query: Select, after: tuple | None, limit: int) -> Select:
        if after is not None:
            first = self.columns[0]
            if len(self.columns) == 1:
                query = query.where(first > after[0])
            else:
                second = self.columns[1]
                query = query.where(or_(first > after[0], and_(first == after[0], second > after[1])))
        return query.order_by(*self.columns).limit(limit + 1)

    def key(self, row: Any) -> tuple:
        return tuple(getattr(row, column.key) for column in self.columns)


LOAN_ORDER = Keyset((Loan.id,), (int,))
EVENT_ORDER = Keyset((ChainEvent.block_number, ChainEvent.log_index), (int, int))
PAYMENT_ORDER = Keyset((Payment.block_number, Payment.log_index), (int, int))
BORROWER_ORDER = Keyset((Borrower.address,), (str,))


def page(session: Session, query: Select, order: Keyset, after: tuple | None, limit: int) -> tuple[list, tuple | None]:
    """Up to `limit` rows after `after`, and the key to resume from (None on the last page)."""
    rows = list(session.scalars(order.query(query, after, limit)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, order.key(rows[-1])


def _next(key: tuple | None) -> str | None:
    return None if key is None else encode_cursor(key)


# ---------------------------------------------------------------------------------------------- rows


def _ctx(request: Request):
    return request.app.state.context


def event_out(row: ChainEvent) -> EventOut:
    return EventOut(id=row.id, contract=row.contract, address=row.address, name=row.name, args=row.args,
                    block_number=row.block_number, block_hash=row.block_hash, block_time=row.block_time,
                    tx_hash=row.tx_hash, log_index=row.log_index, loan_id=row.loan_id, borrower=row.borrower)


def payment_out(row: Payment) -> PaymentOut:
    return PaymentOut(reference=row.reference, kind=row.kind, loan_id=row.loan_id, amount=row.amount,
                      principal=row.principal, interest=row.interest, late_fee=row.late_fee, penalty=row.penalty,
                      paid_at=row.paid_at, tx_hash=row.tx_hash, block_number=row.block_number,
                      log_index=row.log_index)


def _reason_text(raw: str | None) -> str | None:
    if raw is None:
        return None
    return bytes.fromhex(raw.removeprefix("0x")).rstrip(b"\0").decode("utf-8", errors="replace")


def borrowers_out(session: Session, rows: list[Borrower]) -> list[BorrowerOut]:
    """Borrower bodies with their score histories and loan ids: two queries for the whole page."""
    addresses = [r.address for r in rows]
    loans: dict[str, list[int]] = {a: [] for a in addresses}
    for loan_id, borrower in session.execute(select(Loan.id, Loan.borrower).where(Loan.borrower.in_(addresses))
                                             .order_by(Loan.id)):
        loans[borrower].append(loan_id)
    scores: dict[str, list[ScoreOut]] = {a: [] for a in addresses}
    for s in session.scalars(select(ScoreRecord).where(ScoreRecord.borrower.in_(addresses))
                             .order_by(ScoreRecord.block_number, ScoreRecord.log_index)):
        scores[s.borrower].append(ScoreOut(score=s.score, credit_limit=s.credit_limit, model_version=s.model_version,
                                           report_id=s.report_id, block_time=s.block_time,
                                           block_number=s.block_number, tx_hash=s.tx_hash, log_index=s.log_index))
    return [BorrowerOut(address=r.address, registered=r.registered, identity_commitment=r.identity_commitment,
                        kyc_expires_at=r.kyc_expires_at, registered_at=r.registered_at, revoked=r.revoked,
                        revoked_reason=_reason_text(r.revoked_reason), score=r.score, credit_limit=r.credit_limit,
                        model_version=r.model_version, score_updated_at=r.score_updated_at,
                        score_history=scores[r.address], loan_ids=loans[r.address]) for r in rows]


# ---------------------------------------------------------------------------------------------- filters

Cursor = Annotated[str | None, Query(max_length=256, description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"rows per page (1..{MAX_PAGE})")]
LoanId = Annotated[int | None, Query(ge=1, le=_MAX_KEY, description="only this loan")]
BorrowerAddress = Annotated[str | None, Query(description="only this borrower's (an address)")]
Block = Annotated[int | None, Query(ge=0, le=_MAX_KEY)]
Time = Annotated[int | None, Query(ge=0, le=_MAX_KEY, description="unix seconds (block time)")]


def _range(name: str, low: int | None, high: int | None) -> None:
    if low is not None and high is not None and low > high:
        raise ApiError(422, "invalid_range", f"from_{name} {low} is after to_{name} {high}")


def loans_query(status: str | None, borrower: str | None) -> Select:
    query = select(Loan)
    if status is not None:
        if status not in STATUSES:
            raise ApiError(422, "invalid_status", f"status {status!r} is not one of {', '.join(STATUSES)}")
        query = query.where(Loan.status == status)
    if borrower is not None:
        query = query.where(Loan.borrower == checksum_address(borrower))
    return query


def event_names(context) -> set[str]:
    b = context.bindings
    return {item["name"] for name in b.manifest.contracts for item in b.by_name(name).abi if item["type"] == "event"}


def events_query(context, *, loan: int | None = None, borrower: str | None = None, name: str | None = None,
                 from_block: int | None = None, to_block: int | None = None, from_time: int | None = None,
                 to_time: int | None = None) -> Select:
    _range("block", from_block, to_block)
    _range("time", from_time, to_time)
    query = select(ChainEvent)
    if loan is not None:
        query = query.where(ChainEvent.loan_id == loan)
    if borrower is not None:
        address = checksum_address(borrower)
        # A borrower's history: events naming them, and every event of their loans (most loan events
        # carry only the loan id).
        query = query.where(or_(ChainEvent.borrower == address,
                                ChainEvent.loan_id.in_(select(Loan.id).where(Loan.borrower == address))))
    if name is not None:
        known = event_names(context)
        if name not in known:
            raise ApiError(422, "invalid_event_type",
                           f"no event {name!r}; the contracts emit {', '.join(sorted(known))}")
        query = query.where(ChainEvent.name == name)
    if from_block is not None:
        query = query.where(ChainEvent.block_number >= from_block)
    if to_block is not None:
        query = query.where(ChainEvent.block_number <= to_block)
    if from_time is not None:
        query = query.where(ChainEvent.block_time >= from_time)
    if to_time is not None:
        query = query.where(ChainEvent.block_time <= to_time)
    return query


def payments_query(loan: int | None = None, kind: PaymentKind | None = None, borrower: str | None = None) -> Select:
    query = select(Payment)
    if loan is not None:
        query = query.where(Payment.loan_id == loan)
    if kind is not None:
        query = query.where(Payment.kind == kind.value)
    if borrower is not None:
        query = query.where(Payment.loan_id.in_(select(Loan.id).where(Loan.borrower == checksum_address(borrower))))
    return query


# ---------------------------------------------------------------------------------------------- routes

LOAN_LIST_EXAMPLE = {200: {"content": {"application/json": {"example": {"loans": [], "next_cursor": "WzEwMF0"}}}}}


@router.get("/loans", response_model=LoanList, responses={**ERRORS, **LOAN_LIST_EXAMPLE},
            summary="Every loan, by id, with its schedule (filter by status and borrower)")
@cached_read()
def loans(request: Request, _: Auditor, status: Annotated[str | None, Query(description="e.g. Active")] = None,
          borrower: BorrowerAddress = None, cursor: Cursor = None, limit: Limit = 100) -> LoanList:
    query = loans_query(status, borrower).options(selectinload(Loan.schedule))
    after = decode_cursor(cursor, LOAN_ORDER.types)
    with _ctx(request).sessions() as session:
        rows, key = page(session, query, LOAN_ORDER, after, limit)
        return LoanList(loans=[loan_out(r) for r in rows], next_cursor=_next(key))


@router.get("/loans/{loan_id}", response_model=AuditLoanOut, responses=ERRORS,
            summary="One loan with its schedule, payments and every event (block, tx, log index, time)")
@cached_read()
def loan(loan_id: LoanIdPath, request: Request, who: Auditor) -> AuditLoanOut:
    with _ctx(request).sessions() as session:
        row = visible_loan(session, who, loan_id)
        events = session.scalars(select(ChainEvent).where(ChainEvent.loan_id == loan_id)
                                 .order_by(ChainEvent.block_number, ChainEvent.log_index))
        return AuditLoanOut(**loan_out(row).model_dump(), events=[event_out(e) for e in events],
                            payments=[payment_out(p) for p in row.payments])


@router.get("/borrowers", response_model=BorrowerPage, responses=ERRORS,
            summary="Borrowers as the chain knows them (pseudonymous), by address")
def borrowers(request: Request, _: Auditor, revoked: bool | None = None, cursor: Cursor = None,
              limit: Limit = 100) -> BorrowerPage:
    query = select(Borrower)
    if revoked is not None:
        query = query.where(Borrower.revoked == revoked)
    after = decode_cursor(cursor, BORROWER_ORDER.types)
    with _ctx(request).sessions() as session:
        rows, key = page(session, query, BORROWER_ORDER, after, limit)
        return BorrowerPage(borrowers=borrowers_out(session, rows), next_cursor=_next(key))


@router.get("/borrowers/{address}", response_model=BorrowerOut, responses=ERRORS,
            summary="One borrower: commitment, KYC expiry, revocation, score history, loans (no PII)")
def borrower(address: Annotated[str, Path(max_length=64)], request: Request, _: Auditor) -> BorrowerOut:
    address = checksum_address(address)
    with _ctx(request).sessions() as session:
        row = session.get(Borrower, address)
        if row is None:
            raise not_found(f"borrower {address}")
        return borrowers_out(session, [row])[0]


@router.get("/events", response_model=EventPage, responses=ERRORS,
            summary="Every indexed event in chain order (block, log index), filtered")
def events(request: Request, _: Auditor, loan: LoanId = None, borrower: BorrowerAddress = None,
           event_type: Annotated[str | None, Query(alias="type", max_length=64,
                                                   description="event name, e.g. RepaymentApplied")] = None,
           from_block: Block = None, to_block: Block = None, from_time: Time = None, to_time: Time = None,
           cursor: Cursor = None, limit: Limit = 100) -> EventPage:
    context = _ctx(request)
    query = events_query(context, loan=loan, borrower=borrower, name=event_type, from_block=from_block,
                         to_block=to_block, from_time=from_time, to_time=to_time)
    after = decode_cursor(cursor, EVENT_ORDER.types)
    with context.sessions() as session:
        rows, key = page(session, query, EVENT_ORDER, after, limit)
        return EventPage(events=[event_out(r) for r in rows], next_cursor=_next(key))


@router.get("/payments", response_model=PaymentPage, responses=ERRORS,
            summary="Payments confirmed on-chain (disbursements and repayments with their allocation)")
def payments(request: Request, _: Auditor, loan: LoanId = None, kind: PaymentKind | None = None,
             borrower: BorrowerAddress = None, cursor: Cursor = None, limit: Limit = 100) -> PaymentPage:
    query = payments_query(loan, kind, borrower)
    after = decode_cursor(cursor, PAYMENT_ORDER.types)
    with _ctx(request).sessions() as session:
        rows, key = page(session, query, PAYMENT_ORDER, after, limit)
        return PaymentPage(payments=[payment_out(r) for r in rows], next_cursor=_next(key))


@router.get("/report/portfolio", response_model=PortfolioOut, responses=ERRORS,
            summary="Outstanding principal, portfolio-at-risk (1/30/90 days), delinquency buckets, totals by status")
@cached_read(at_chain_head=True)
def portfolio_report(request: Request, _: Auditor,
                     currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$",
                                                           description="needed only if loans use several")] = None,
                     ) -> PortfolioOut:
    context = _ctx(request)
    as_of = context.chain_time()
    indexed = context.indexed_block()
    # The report is a function of the read model (which changes only when the indexer's cursor moves)
    # and of chain time: the last one is reused until either moves.
    key = (indexed, as_of, currency)
    if not hasattr(request.app.state, "last_portfolio"):
        request.app.state.last_portfolio = {}
    last: dict[tuple, PortfolioOut] = request.app.state.last_portfolio
    cached = last.get(key)
    if cached is not None:
        return cached
    with context.sessions() as session:
        code = report_currency(session, currency)
        figures = load_figures(session, code)
    report = portfolio(figures, as_of, indexed_block=indexed, currency=code)
    last.clear()
    last[key] = report
    return report


def _artifacts(context) -> dict[str, dict]:
    """The ABIs the API's bindings already hold, in the shape ledger.verify takes (no recompiling)."""
    b = context.bindings
    return {name: {"abi": b.by_name(name).abi} for name in b.manifest.contracts}


@router.get("/verify/{check}", response_model=VerificationOut, responses=ERRORS,
            summary="Run a verification: index vs chain, state recomputed from events, identity, action log")
def verify(check: Check, request: Request, _: Auditor,
           loan_id: Annotated[int | None, Query(ge=1, le=_MAX_KEY, description="state: only this loan")] = None,
           address: Annotated[str | None, Query(description="identity: the borrower to check")] = None,
           ) -> VerificationOut:
    context = _ctx(request)
    b = context.bindings
    commitment = None
    if check is Check.index:
        with context.sessions() as session:
            result = checks.index_vs_chain(context.w3, b.manifest, session, artifacts=_artifacts(context))
    elif check is Check.state:
        with context.sessions() as session:
            result = checks.recomputed_state(context.w3, b.manifest, session, loan_id, artifacts=_artifacts(context))
            if loan_id is not None and result.ok and session.get(Loan, loan_id) is None:
                raise not_found(f"loan {loan_id}")  # neither the index nor the node knows it
    elif check is Check.identity:
        if address is None:
            raise ApiError(422, "address_required", "the identity check needs ?address=<borrower>")
        borrower = checksum_address(address)
        try:
            opening = context.vault.opening(borrower)
        except RecordNotFound:
            result = checks.VerificationResult("identity", checked=1)
            result.fail(f"{borrower}: the vault holds no KYC record for this address")
        except VaultIntegrityError:
            result = checks.VerificationResult("identity", checked=1)
            result.fail(f"{borrower}: the vault's record does not authenticate (altered or under another key)")
        else:
            commitment = "0x" + opening.commitment.hex()
            # Recomputed from the opened record and salt, not read from the vault's stored column.
            result = checks.identity(context.w3, b.manifest, borrower,
                                     lambda: identity_commitment(opening.record, opening.salt),
                                     artifacts=_artifacts(context))
    else:
        result = checks.verify_action_log(context.sessions, b.anchor)
    return VerificationOut(**result.to_dict(), commitment=commitment)


# ---------------------------------------------------------------------------------------------- export

LOAN_COLUMNS = tuple(name for name in LoanOut.model_fields if name != "schedule")
EVENT_COLUMNS = tuple(EventOut.model_fields)
PAYMENT_COLUMNS = tuple(PaymentOut.model_fields)


@dataclass(frozen=True)
class Export:
    columns: tuple[str, ...]
    order: Keyset
    query: Callable[[], Select]
    row: Callable[[Any], dict[str, Any]]


EXPORTS = {
    Dataset.loans: Export(LOAN_COLUMNS, LOAN_ORDER, lambda: select(Loan),
                          lambda r: {c: getattr(r, c) for c in LOAN_COLUMNS}),
    Dataset.events: Export(EVENT_COLUMNS, EVENT_ORDER, lambda: select(ChainEvent), lambda r: event_out(r).model_dump()),
    Dataset.payments: Export(PAYMENT_COLUMNS, PAYMENT_ORDER, lambda: select(Payment),
                             lambda r: payment_out(r).model_dump()),
}


def export_rows(sessions, spec: Export) -> Iterator[dict[str, Any]]:
    """Every row of the dataset in its stable order, read in batches (one short session each)."""
    after = None
    while True:
        with sessions() as session:
            rows, after = page(session, spec.query(), spec.order, after, EXPORT_BATCH)
            batch = [spec.row(r) for r in rows]
        yield from batch
        if after is None:
            return


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)  # amounts are ints: written as integers, never in exponent form


def _csv(columns: tuple[str, ...], rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for n, row in enumerate(rows, 1):
        writer.writerow([_cell(row[c]) for c in columns])
        if n % EXPORT_BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json_array(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield "["
    for n, row in enumerate(rows):
        yield ("," if n else "") + json.dumps(row, separators=(",", ":"))
    yield "]"


@router.get("/export/{dataset}.{fmt}", response_class=StreamingResponse,
            responses={**ERRORS, 200: {"description": "the whole dataset, in the list routes' order",
                                       "content": {"text/csv": {"example": "id,borrower,status,principal\n"},
                                                   "application/json": {"example": [{"id": 1}]}}}},
            summary="Export loans, events or payments as CSV (header row) or a JSON array; amounts are integers")
def export(dataset: Dataset, fmt: ExportFormat, request: Request, _: Auditor) -> StreamingResponse:
    spec = EXPORTS[dataset]
    rows = export_rows(_ctx(request).sessions, spec)
    headers = {"content-disposition": f'attachment; filename="{dataset.value}.{fmt.value}"'}
    if fmt is ExportFormat.csv:
        return StreamingResponse(_csv(spec.columns, rows), media_type="text/csv; charset=utf-8", headers=headers)
    return StreamingResponse(_json_array(rows), media_type="application/json", headers=headers)

"""The portfolio report: outstanding principal, portfolio-at-risk, delinquency buckets and totals by status.

One query reads every loan's figures (no chain call per loan); days past due are recomputed at the
chain time the caller passes from the read model's next due date (the oldest unpaid installment's due
date in the loan's schedule rows), with the read model's own definition (`days_past_due`), because the
stored `days_past_due` is as of the last indexed block and ages with the clock, not with events.
Money is summed in Python: MinorUnits is text on SQLite, so SQL's SUM would not be exact there.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import ApiError
from ledger.book import RUNNING_NAMES, LoanStatus
from ledger.store.models.chain import Loan
from ledger.store.projection import days_past_due

PAR_DAYS = (1, 30, 90)
# (name, first day, last day or None for open-ended): Fineract-style delinquency ranges.
BUCKETS = (("current", 0, 0), ("1-29", 1, 29), ("30-59", 30, 59), ("60-89", 60, 89), ("90+", 90, None))
STATUSES = tuple(s.solidity_name for s in LoanStatus if s is not LoanStatus.NONE)
RATIO_PLACES = Decimal("0.000001")

# The examples: three loans of 120,000 at 24%, 3 monthly annuity installments. Loan 1 has paid its first
# installment (80,779 outstanding, current); loan 2 has paid nothing and is 35 days past due; loan 3 is repaid.
_EXAMPLE_AT_RISK = [{"days": 1, "count": 1, "outstanding": 120_000, "ratio": 0.597672},
                    {"days": 30, "count": 1, "outstanding": 120_000, "ratio": 0.597672},
                    {"days": 90, "count": 0, "outstanding": 0, "ratio": 0.0}]
_EXAMPLE_BUCKETS = [{"name": "current", "min_days": 0, "max_days": 0, "count": 1, "outstanding": 80_779},
                    {"name": "1-29", "min_days": 1, "max_days": 29, "count": 0, "outstanding": 0},
                    {"name": "30-59", "min_days": 30, "max_days": 59, "count": 1, "outstanding": 120_000},
                    {"name": "60-89", "min_days": 60, "max_days": 89, "count": 0, "outstanding": 0},
                    {"name": "90+", "min_days": 90, "max_days": None, "count": 0, "outstanding": 0}]
_NOTHING = {"count": 0, "principal": 0, "principal_repaid": 0, "interest_paid": 0, "late_fee_paid": 0,
            "penalty_paid": 0, "principal_written_off": 0, "outstanding": 0, "credit_balance": 0, "recovered": 0}
_EXAMPLE_TOTALS = {
    "Active": {**_NOTHING, "count": 2, "principal": 240_000, "principal_repaid": 39_221, "interest_paid": 2_367,
               "outstanding": 200_779},
    "Repaid": {**_NOTHING, "count": 1, "principal": 120_000, "principal_repaid": 120_000, "interest_paid": 4_764},
}
_EXAMPLE_BY_STATUS = [{"status": status, **_EXAMPLE_TOTALS.get(status, _NOTHING)} for status in STATUSES]


class AtRisk(BaseModel):
    days: int = Field(description="loans at least this many days past due")
    count: int
    outstanding: int = Field(description="their outstanding principal, minor units")
    ratio: float = Field(description="outstanding / total outstanding, 6 decimals (0 when nothing is outstanding)")

    model_config = {"json_schema_extra": {"examples": [_EXAMPLE_AT_RISK[1]]}}


class Bucket(BaseModel):
    name: str
    min_days: int = Field(description="days past due, inclusive")
    max_days: int | None = Field(description="days past due, inclusive; null for the open-ended last bucket")
    count: int
    outstanding: int = Field(description="outstanding principal of the loans in the bucket, minor units")

    model_config = {"json_schema_extra": {"examples": [_EXAMPLE_BUCKETS[2]]}}


class StatusTotals(BaseModel):
    status: str
    count: int
    principal: int = Field(description="principal lent (as requested)")
    principal_repaid: int
    interest_paid: int
    late_fee_paid: int
    penalty_paid: int
    principal_written_off: int
    outstanding: int
    credit_balance: int = Field(description="Overpaid: money held for borrowers until it is refunded")
    recovered: int = Field(description="WrittenOff: money recovered after the write-off")

    model_config = {"json_schema_extra": {"examples": [_EXAMPLE_BY_STATUS[STATUSES.index("Active")]]}}


class PortfolioOut(BaseModel):
    as_of: int = Field(description="chain time (unix seconds) days past due are computed at")
    indexed_block: int = Field(description="the last block the read model holds")
    currency: str | None = Field(description="the currency every amount is in; null when there are no loans")
    loans: int
    outstanding_principal: int = Field(description="Active + Defaulted: principal - repaid - written off")
    credit_held: int = Field(description="Overpaid loans' credit balances: owed back to borrowers, not lent")
    recovered: int = Field(description="recoveries on written-off loans")
    portfolio_at_risk: list[AtRisk]
    delinquency: list[Bucket] = Field(description="running loans (Active, Defaulted) by days past due")
    by_status: list[StatusTotals]
    running_statuses: list[str] = Field(
        description="the statuses whose principal is still owed: the loans counted in outstanding_principal, "
                    "portfolio_at_risk and delinquency (clients take the set from here rather than spell it out)")

    model_config = {"json_schema_extra": {"examples": [{
        "as_of": 1_770_681_600, "indexed_block": 152, "currency": "CNY", "loans": 3, "outstanding_principal": 200_779,
        "credit_held": 0, "recovered": 0, "portfolio_at_risk": _EXAMPLE_AT_RISK, "delinquency": _EXAMPLE_BUCKETS, "by_status": _EXAMPLE_BY_STATUS,
        "running_statuses": list(RUNNING_NAMES)}]}}


@dataclass(slots=True)
class LoanFigures:
    """What the report needs of one loan; `next_due_at` is the read model's (from the loan's schedule rows)."""

    status: str
    principal: int
    principal_repaid: int
    interest_paid: int
    late_fee_paid: int
    penalty_paid: int
    principal_written_off: int
    next_due_at: int | None = None
    days_past_due: int = 0
    credit_balance: int = 0
    recovered: int = 0

    @property
    def outstanding(self) -> int:
        if self.status not in RUNNING_NAMES:
            return 0
        return self.principal - self.principal_repaid - self.principal_written_off


_COLUMNS = (Loan.status, Loan.principal, Loan.principal_repaid, Loan.interest_paid, Loan.late_fee_paid,
            Loan.penalty_paid, Loan.principal_written_off, Loan.next_due_at, Loan.credit_balance, Loan.recovered)


def report_currency(session: Session, wanted: str | None) -> str | None:
    """The currency to report in: `wanted`, else the only one the book holds; amounts are never mixed."""
    held = sorted(session.scalars(select(Loan.currency).distinct()))
    if wanted is not None:
        return wanted
    if len(held) > 1:
        raise ApiError(422, "currency_required", f"loans are in several currencies ({', '.join(held)}): "
                                                 "pass ?currency=")
    return held[0] if held else None


def load_figures(session: Session, currency: str | None) -> list[LoanFigures]:
    """Every loan in `currency`, one query."""
    query = select(*_COLUMNS)
    if currency is not None:
        query = query.where(Loan.currency == currency)
    return [LoanFigures(*(value or 0 for value in row[:-3]), next_due_at=row[-3], credit_balance=row[-2] or 0,
                        recovered=row[-1] or 0) for row in session.execute(query)]


def _ratio(part: int, whole: int) -> float:
    if whole == 0:
        return 0.0
    return float((Decimal(part) / Decimal(whole)).quantize(RATIO_PLACES, rounding=ROUND_HALF_UP))


def portfolio(loans: list[LoanFigures], as_of: int, *, indexed_block: int, currency: str | None) -> PortfolioOut:
    """The report over `loans`, with days past due as of `as_of` (chain time)."""
    totals = {s: StatusTotals(status=s, count=0, principal=0, principal_repaid=0, interest_paid=0, late_fee_paid=0,
                              penalty_paid=0, principal_written_off=0, outstanding=0, credit_balance=0, recovered=0)
              for s in STATUSES}
    buckets = [Bucket(name=n, min_days=lo, max_days=hi, count=0, outstanding=0) for n, lo, hi in BUCKETS]
    at_risk = [AtRisk(days=d, count=0, outstanding=0, ratio=0.0) for d in PAR_DAYS]
    outstanding_total = 0
    for loan in loans:
        t = totals[loan.status]
        owed = loan.outstanding
        t.count += 1
        t.principal += loan.principal
        t.principal_repaid += loan.principal_repaid
        t.interest_paid += loan.interest_paid
        t.late_fee_paid += loan.late_fee_paid
        t.penalty_paid += loan.penalty_paid
        t.principal_written_off += loan.principal_written_off
        t.outstanding += owed
        t.credit_balance += loan.credit_balance
        t.recovered += loan.recovered
        if loan.status not in RUNNING_NAMES:
            continue
        loan.days_past_due = days_past_due(loan.next_due_at, as_of)
        outstanding_total += owed
        dpd = loan.days_past_due
        for bucket in buckets:
            if dpd >= bucket.min_days and (bucket.max_days is None or dpd <= bucket.max_days):
                bucket.count += 1
                bucket.outstanding += owed
                break
        for par in at_risk:
            if dpd >= par.days:
                par.count += 1
                par.outstanding += owed
    for par in at_risk:
        par.ratio = _ratio(par.outstanding, outstanding_total)
    return PortfolioOut(as_of=as_of, indexed_block=indexed_block, currency=currency, loans=len(loans),
                        outstanding_principal=outstanding_total,
                        credit_held=sum(loan.credit_balance for loan in loans),
                        recovered=sum(loan.recovered for loan in loans), portfolio_at_risk=at_risk, delinquency=buckets,
                        by_status=list(totals.values()), running_statuses=list(RUNNING_NAMES))


def current_portfolio(context, currency: str | None) -> PortfolioOut:
    """The portfolio as of the chain's time over the read model as indexed now.

    The route that serves it keeps the answer until the indexer's cursor or the chain's head moves
    (api/read_cache.py), so a report is computed once per change, never served stale.
    """
    as_of = context.chain_time()
    indexed = context.indexed_block()
    with context.sessions() as session:
        code = report_currency(session, currency)
        figures = load_figures(session, code)
    return portfolio(figures, as_of, indexed_block=indexed, currency=code)

"""Monthly schedules on the real loan book (issue 15): installment k is due on the disbursement's day of the month
k months later (the month's last day when it is shorter), interest by 30/360 (a twelfth of the annual rate each
month) or actual/365 (each month's actual days), and everything the book does with a due date (what is due, late
charges, payoff, early repayment, reversal, default) on those dates.

The references are computed here, independently of the contracts: due dates with `datetime` and `calendar`, the
annuity with exact fractions (LoanMath's rounding: interest rounded half-up once on the exact balance, principal
rounded on the cumulative amount; on actual days the level payment at a twelfth of the rate, each month's interest
on its days, the last installment absorbing the difference), and interest accrued within a period over its real
length, from the previous due date to its own (28 to 31 days).
"""

from __future__ import annotations

import calendar
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from eth_utils import keccak
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from ledger.errors import ErrorDecoder
from ledger.products import offering
from ledger.typed_data import (
    Amortization,
    DayCount,
    EarlyRepayment,
    Frequency,
    LoanTerms,
)

DAY = 86_400
YEAR = 365 * DAY
REPAID = 6
PRINCIPAL = 900_000  # within the credit limit the driver scores borrowers with
MONTHLY = LoanTerms(PRINCIPAL, b"CNY", 2400, Amortization.ANNUITY, 12, 0, 3 * DAY, 500, 1200, 90 * DAY,
                    frequency=Frequency.MONTHLY, dayCount=DayCount.THIRTY_360)
ACTUAL = replace(MONTHLY, dayCount=DayCount.ACTUAL_365_FIXED)
DAY_COUNTS = pytest.mark.parametrize("terms", [MONTHLY, ACTUAL], ids=["30/360", "actual/365"])


# ---- the references -----------------------------------------------------------------------------------------

def add_months(start: datetime, k: int) -> datetime:
    """The same day of the month and time of day k months after `start`, or that month's last day."""
    index = start.year * 12 + start.month - 1 + k
    year, month = divmod(index, 12)
    return start.replace(year=year, month=month + 1, day=min(start.day, calendar.monthrange(year, month + 1)[1]))


def due_dates(start: datetime, n: int, first: int = 1) -> list[int]:
    return [int(add_months(start, k).timestamp()) for k in range(first, first + n)]


def half_up(x: Fraction) -> int:
    return int((x + Fraction(1, 2)) // 1)


def annuity(principal: int, apr_bps: int, dues: list[int], actual: bool) -> list[tuple[int, int]]:
    """(principal, interest) of each installment due at dues[1:] (dues[0]: the payout): the level payment at the
    monthly rate apr / 12; each month's interest at that rate (30/360) or on its actual days / 365, exactly, then
    rounded; the last installment repays what is left."""
    n = len(dues) - 1
    r = Fraction(apr_bps, 10_000 * 12)
    f = (1 + r) ** n
    payment = principal * r * f / (f - 1)
    balance, before, rows = Fraction(principal), 0, []
    for k in range(1, n + 1):
        interest = balance * (Fraction(apr_bps * (dues[k] - dues[k - 1]), 10_000 * YEAR) if actual else r)
        balance = Fraction(0) if k == n or balance + interest <= payment else balance + interest - payment
        cumulative = principal if k == n else half_up(principal - balance)
        rows.append((cumulative - before, half_up(interest)))
        before = cumulative
    return rows


def accrued(interest: int, start: int, end: int, at: int) -> int:
    """A period's interest accrued from its start to `at`, over its real length."""
    return half_up(Fraction(interest * (at - start), end - start))


def upcoming(now: int, month: int, day: int, *, leap_february: bool | None = None) -> datetime:
    """The first date `month`/`day`, 10:00 UTC, after the chain's `now` (a year or more ahead), whose next
    February is (or is not) a leap one."""
    year = datetime.fromtimestamp(now, UTC).year + 1
    while True:
        february_year = year if month <= 2 else year + 1
        if leap_february is None or calendar.isleap(february_year) == leap_february:
            return datetime(year, month, day, 10, tzinfo=UTC)
        year += 1


# ---- driving the book ---------------------------------------------------------------------------------------

def mine_at(w3, timestamp: int) -> None:
    w3.provider.make_request("evm_mine", [timestamp])


class MonthlyLoan:
    """A monthly loan disbursed at `start`, and the oracle's side of it: payments confirmed at chosen moments."""

    def __init__(self, driver, keys, start: datetime, terms: LoanTerms = MONTHLY, borrower: str = "alice"):
        self.driver, self.keys, self.book, self.terms = driver, keys, driver.stack.book, terms
        self.start, self.disbursed_at, self.count = start, int(start.timestamp()), 0
        mine_at(driver.w3, self.disbursed_at - 3600)
        self.loan_id = driver.approved_loan(keys[borrower], terms)
        mine_at(driver.w3, self.disbursed_at)
        driver.send(self.book.functions.confirmDisbursement(self.loan_id, keccak(text="payout"), terms.principal,
                                                            self.disbursed_at), keys["oracle"])

    def pay(self, amount: int, at: int):
        mine_at(self.driver.w3, at)
        self.count += 1
        fn = self.book.functions.confirmRepayment(self.loan_id, keccak(text=f"pay-{self.count}"), amount, at)
        receipt = self.driver.send(fn, self.keys["oracle"])
        (applied,) = self.book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
        return receipt, applied.args

    def schedule(self) -> list[tuple[int, int, int]]:
        return [tuple(row) for row in self.book.functions.schedule(self.loan_id).call()]

    def due(self, at: int) -> tuple:
        return tuple(self.book.functions.amountDue(self.loan_id, at).call())

    def payoff(self, at: int) -> int:
        return self.book.functions.payoffAmount(self.loan_id, at).call()

    def progress(self) -> tuple:
        return tuple(self.book.functions.progressOf(self.loan_id).call())

    def status(self) -> int:
        return self.book.functions.loanOf(self.loan_id).call()[2]


# ---- due dates and amounts ----------------------------------------------------------------------------------

BOOK_STARTS = [  # (month, day, leap February next): the 29th, 30th and 31st, February in both kinds of year
    (1, 31, False), (1, 29, True), (1, 30, True), (1, 29, False), (12, 31, True),
]


@DAY_COUNTS
@pytest.mark.parametrize("month,day,leap", BOOK_STARTS)
def test_a_monthly_loan_is_due_on_its_day_of_the_month(driver, keys, terms, month, day, leap):
    start = upcoming(driver.now, month, day, leap_february=leap)
    loan = MonthlyLoan(driver, keys, start, terms)
    dues = due_dates(start, 12)
    amounts = annuity(PRINCIPAL, 2400, [loan.disbursed_at, *dues], terms.dayCount == DayCount.ACTUAL_365_FIXED)
    expected = [(at, p, i) for at, (p, i) in zip(dues, amounts)]
    assert loan.schedule() == expected
    # The quote of the same terms from the same start is that schedule, without any state.
    assert [tuple(r) for r in loan.book.functions.quote(terms.as_tuple(), loan.disbursed_at, 0, 0).call()] == expected


def test_the_quote_follows_the_calendar_from_any_day(stack):
    """Every start from 25 January to 5 March of a leap and a non-leap year, and around year and month ends."""
    quote = stack.book.functions.quote
    starts = [datetime(year, 1, 25, 23, 59, tzinfo=UTC) + timedelta(days=d) for year in (2031, 2032) for d in range(40)]
    starts += [datetime(2030, month, day, 0, 0, 1, tzinfo=UTC) for month, day in [(8, 31), (10, 31), (11, 30), (12, 29),
                                                                                    (12, 30), (12, 31), (2, 28)]]
    for start in starts:
        rows = quote(replace(MONTHLY, installments=14).as_tuple(), int(start.timestamp()), 0, 0).call()
        assert [r[0] for r in rows] == due_dates(start, 14), start
    # From installment 3 on (a plan re-based there): the loan's own dates, not the quote's start's plus months.
    start = datetime(2031, 1, 31, 10, tzinfo=UTC)
    rows = quote(replace(MONTHLY, installments=4).as_tuple(), int(start.timestamp()), 2, 0).call()
    assert [r[0] for r in rows] == due_dates(start, 4, first=3)


def test_the_cost_cap_discounts_a_monthly_product_at_a_twelfth_of_the_cap(driver, keys, revert_name):
    """The catalogue's cap on a monthly product (default 24 % a year): a 2 % month, so a loan at exactly 24 % is
    within it and one a basis point dearer is not. On actual days every month is taken as 31 days (the dearest
    calendar): 24 % is then above the cap, and the highest rate within it is 24 % * 30.42 / 31."""
    catalog = driver.stack.catalog
    ok, _, _ = catalog.functions.checkCost(MONTHLY.as_tuple(), 0).call()
    dearer, _, _ = catalog.functions.checkCost(replace(MONTHLY, annualRateBps=2401, penaltyRateBps=1199).as_tuple(), 0).call()
    assert (ok, dearer) == (True, False)
    within = [catalog.functions.checkCost(replace(ACTUAL, annualRateBps=bps).as_tuple(), 0).call()[0]
              for bps in (2400, 2355, 2354)]
    assert within == [False, False, True]  # 2,400 * 365 / 12 / 31 = 2,354.8
    driver.by_two_operators(catalog.functions.createProduct(offering(MONTHLY).as_tuple(catalog)))
    too_dear = offering(replace(MONTHLY, annualRateBps=2401, penaltyRateBps=1199), "dearer").as_tuple(catalog)
    assert revert_name(catalog.functions.createProduct(too_dear), driver.stack.four_eyes.address) == \
        "ProductCatalogCostAboveCap"


# ---- paying on the calendar's dates -------------------------------------------------------------------------

@pytest.fixture(params=[MONTHLY, ACTUAL], ids=["30/360", "actual/365"])
def january_31(driver, keys, request) -> MonthlyLoan:
    """Disbursed on 31 January at 10:00 UTC, before a 28-day February: due 28 February, 31 March, 30 April..."""
    return MonthlyLoan(driver, keys, upcoming(driver.now, 1, 31, leap_february=False), request.param)


def test_an_installment_paid_on_its_date_pays_it_and_nothing_is_due_until_the_next(january_31):
    loan = january_31
    (d1, p1, i1), (d2, p2, i2) = loan.schedule()[:2]
    assert datetime.fromtimestamp(d1, UTC).date() == loan.start.date().replace(month=2, day=28)
    assert loan.due(d1 - 1)[:2] == (0, 0)
    assert loan.due(d1) == (p1, i1, 0, 0, d1)
    _, applied = loan.pay(p1 + i1, d1)
    assert (applied.principal, applied.interest, applied.lateFee, applied.penalty) == (p1, i1, 0, 0)
    assert loan.progress()[0] == 1
    assert loan.due(d2 - 1) == (0, 0, 0, 0, d2)
    assert loan.due(d2) == (p2, i2, 0, 0, d2)


def test_late_charges_run_from_the_calendar_due_date(january_31):
    loan = january_31
    grace = MONTHLY.gracePeriod
    d1, p1, i1 = loan.schedule()[0]
    assert loan.due(d1 + grace)[2:4] == (0, 0)  # late only once grace has ended
    at = d1 + grace + 5 * DAY + 7 * 3600
    fee = half_up(Fraction((p1 + i1) * 500, 10_000))
    penalty = half_up(Fraction((p1 + i1) * 1200 * (at - d1 - grace), 10_000 * YEAR))
    assert loan.due(at) == (p1, i1, fee, penalty, d1)
    _, applied = loan.pay(p1 + i1 + fee + penalty, at)
    assert (applied.principal, applied.interest, applied.lateFee, applied.penalty) == (p1, i1, fee, penalty)
    assert loan.progress()[0] == 1


def test_the_payoff_accrues_interest_over_the_periods_real_length(january_31):
    loan = january_31
    (d1, p1, i1), (d2, _, i2) = loan.schedule()[:2]
    d0 = loan.disbursed_at
    at = d0 + 9 * DAY + 5 * 3600  # in a 28-day period
    assert d1 - d0 == 28 * DAY
    assert loan.payoff(at) == PRINCIPAL + accrued(i1, d0, d1, at)
    loan.pay(p1 + i1, d1)
    at = d1 + 17 * DAY  # in a 31-day period
    assert d2 - d1 == 31 * DAY
    payoff = loan.payoff(at)
    assert payoff == PRINCIPAL - p1 + accrued(i2, d1, d2, at)
    loan.pay(payoff, at)
    assert loan.status() == REPAID


@DAY_COUNTS
@pytest.mark.parametrize("method", list(EarlyRepayment))
def test_early_repayment_keeps_the_monthly_dates(driver, keys, terms, method):
    terms = replace(terms, earlyRepayment=method)
    start = upcoming(driver.now, 1, 31, leap_february=False)
    loan = MonthlyLoan(driver, keys, start, terms)
    original = loan.schedule()
    d0, (d1, p1, i1) = loan.disbursed_at, original[0]
    at = d0 + 10 * DAY
    receipt, applied = loan.pay(accrued(i1, d0, d1, at) + p1 + 250_000, at)
    assert (applied.interest, applied.principal) == (accrued(i1, d0, d1, at), p1 + 250_000)
    (rebased,) = loan.book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)
    assert (rebased.args.rebasedAt, rebased.args.principal) == (1, PRINCIPAL - p1 - 250_000)
    after = loan.schedule()
    n = rebased.args.installments
    assert (n == 11) == (method == EarlyRepayment.REDUCE_INSTALLMENT_AMOUNT) and n <= 11
    assert [row[0] for row in after] == due_dates(start, n, first=2)
    # What an auditor recomputes from the terms and the event (ledger/verify.py): the quote of the re-based plan.
    rebased_terms = replace(terms, principal=rebased.args.principal, installments=n).as_tuple()
    quoted = loan.book.functions.quote(rebased_terms, loan.disbursed_at, 1, rebased.args.paymentRay).call()
    assert [tuple(row) for row in quoted] == after
    # The next installment asks its own interest and the rest of the paid one's 28-day period on the principal left
    # (30/360: a month's interest, the next one's; actual/365: that of 28 days).
    d2, p2, j = after[0]
    left = rebased.args.principal
    month = half_up(Fraction(left * 2400 * (d1 - d0), 10_000 * YEAR)) if terms.dayCount == DayCount.ACTUAL_365_FIXED else j
    assert loan.due(d2)[:2] == (p2, j + month - accrued(month, d0, d1, at))
    # Then on time to the end: the borrower pays less interest than the original schedule asked.
    interest = applied.interest
    for due_at, _, _ in after:
        if loan.status() == REPAID:
            break
        due = loan.due(due_at)
        assert due[2:4] == (0, 0)
        _, paid = loan.pay(due[0] + due[1], due_at)
        interest += paid.interest
    assert loan.status() == REPAID
    assert interest < sum(i for _, _, i in original)


def test_a_reversal_puts_a_monthly_loan_back_on_its_calendar_schedule(january_31, keys):
    loan = january_31
    original = loan.schedule()
    d0, (d1, p1, i1) = loan.disbursed_at, original[0]
    at = d0 + 12 * DAY
    _, a = loan.pay(accrued(i1, d0, d1, at) + p1 + 100_000, at)
    assert loan.schedule() != original
    paid = (a.principal, a.interest, a.lateFee, a.penalty, 0, 0)
    loan.driver.send(loan.book.functions.reverseRepayment(loan.loan_id, a.paymentRef, keccak(text="chargeback"), paid,
                                                          at), keys["oracle"])
    assert loan.schedule() == original
    assert loan.due(d1) == (p1, i1, 0, 0, d1)


def test_default_counts_from_the_calendar_due_date(january_31, keys):
    loan = january_31
    d1 = loan.schedule()[0][0]
    decoder = ErrorDecoder([loan.book.abi])
    try:
        loan.book.functions.declareDefault(loan.loan_id).call({"from": keys["operator"].address})
    except ContractCustomError as exc:
        refused = decoder.from_exception(exc)
    else:
        raise AssertionError("declared in default before its threshold")
    assert refused.name == "LoanBookNotInDefault"
    assert refused.arguments["defaultableAt"] == d1 + MONTHLY.defaultAfter

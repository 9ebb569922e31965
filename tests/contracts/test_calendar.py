"""Calendar and MonthlySchedule (through CalendarHarness) against Python's datetime and plain references."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import numpy_financial as npf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.exceptions import ContractLogicError

from ledger.artifacts import compile_contracts
from ledger.typed_data import LoanTerms

DAY = 86_400
ANNUITY, EQUAL_PRINCIPAL, BULLET = 0, 1, 2
THIRTY_360, ACTUAL_365_FIXED = 0, 1
END_2200 = int(datetime(2200, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def harness(w3):
    artifact = compile_contracts()["CalendarHarness"]
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": w3.eth.accounts[0]}))
    return w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])


def ts(y, m, d, hh=0, mm=0, ss=0) -> int:
    return int(datetime(y, m, d, hh, mm, ss, tzinfo=UTC).timestamp())


def month_length(y: int, m: int) -> int:
    """Days in a month, by datetime: the day before the first of the next month."""
    first_of_next = date(y + m // 12, m % 12 + 1, 1)
    return (first_of_next - timedelta(days=1)).day


def add_months(timestamp: int, k: int) -> int:
    """Reference: same day of the month k months later, clamped to the month's last day, time kept."""
    dt = datetime.fromtimestamp(timestamp, tz=UTC)
    y, m0 = divmod(dt.year * 12 + dt.month - 1 + k, 12)
    return int(dt.replace(year=y, month=m0 + 1, day=min(dt.day, month_length(y, m0 + 1))).timestamp())


# --- the calendar -------------------------------------------------------------------------------------


@pytest.mark.parametrize("year", [1970, 1999, 2000, 2023, 2024, 2100, 2200])
def test_every_month_length(harness, year):
    assert [harness.functions.daysInMonth(year, m).call() for m in range(1, 13)] == [
        month_length(year, m) for m in range(1, 13)]


def test_leap_years():
    # Written out, not derived: 2024 and 2000 are leap years, 2023 and 2100 (a century not divisible by 400) not.
    assert (month_length(2024, 2), month_length(2000, 2), month_length(2023, 2), month_length(2100, 2)) == (29, 29, 28, 28)


def test_leap_years_on_chain(harness):
    february = {y: harness.functions.daysInMonth(y, 2).call() for y in (2000, 2023, 2024, 2100, 2400)}
    assert february == {2000: 29, 2023: 28, 2024: 29, 2100: 28, 2400: 29}


@pytest.mark.parametrize("y,m,d", [(1970, 1, 1), (1972, 2, 29), (2000, 2, 29), (2000, 3, 1), (2024, 12, 31),
                                   (2100, 2, 28), (2100, 3, 1), (2200, 12, 31)])
def test_civil_days_round_trip(harness, y, m, d):
    days = (date(y, m, d) - date(1970, 1, 1)).days
    assert harness.functions.daysFromCivil(y, m, d).call() == days
    assert harness.functions.civilFromDays(days).call() == [y, m, d]


def test_month_end_examples(harness):
    add = harness.functions.addMonths
    assert add(ts(2024, 1, 31, 10), 1).call() == ts(2024, 2, 29, 10)
    assert add(ts(2023, 1, 31, 10), 1).call() == ts(2023, 2, 28, 10)
    assert add(ts(2100, 1, 31), 1).call() == ts(2100, 2, 28)
    assert add(ts(2000, 1, 31), 1).call() == ts(2000, 2, 29)
    # The clamp never accumulates: counted from the disbursement, not from the previous due date.
    assert add(ts(2023, 1, 31, 10), 2).call() == ts(2023, 3, 31, 10)
    assert add(ts(2023, 1, 31, 10), 3).call() == ts(2023, 4, 30, 10)
    assert add(ts(2024, 2, 29), 12).call() == ts(2025, 2, 28)
    assert add(ts(2024, 2, 29), 48).call() == ts(2028, 2, 29)
    assert add(ts(2023, 12, 15, 23, 59, 59), 1).call() == ts(2024, 1, 15, 23, 59, 59)
    assert add(ts(2023, 5, 17, 8), 0).call() == ts(2023, 5, 17, 8)


@pytest.mark.parametrize("year", [1999, 2000, 2023, 2024, 2099, 2100])
@pytest.mark.parametrize("day", [28, 29, 30, 31])
def test_disbursed_on_28th_to_31st_every_month_36_installments(harness, year, day):
    for month in range(1, 13):
        if day > month_length(year, month):
            continue
        start = ts(year, month, day, 13, 45, 7)
        got = harness.functions.addMonthsSeries(start, 36).call()
        assert got == [add_months(start, k) for k in range(1, 37)], (year, month, day)
        assert all(t % DAY == 13 * 3600 + 45 * 60 + 7 for t in got)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(timestamp=st.integers(0, END_2200), k=st.integers(0, 600))
def test_add_months_matches_datetime(harness, timestamp, k):
    assert harness.functions.addMonths(timestamp, k).call() == add_months(timestamp, k)
    d = datetime.fromtimestamp(timestamp, tz=UTC)
    assert harness.functions.civilFromDays(timestamp // DAY).call() == [d.year, d.month, d.day]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.integers(0, END_2200), b=st.integers(0, END_2200))
def test_days_between_matches_datetime(harness, a, b):
    start, end = min(a, b), max(a, b)
    expected = (datetime.fromtimestamp(end, tz=UTC).date() - datetime.fromtimestamp(start, tz=UTC).date()).days
    assert harness.functions.daysBetween(start, end).call() == expected
    assert harness.functions.actual365Fixed(start, end).call() == [expected, 365]


def test_reversed_spans_and_dates_before_1970_are_refused(harness):
    for day_count in (harness.functions.daysBetween, harness.functions.thirtyE360):
        with pytest.raises(ContractLogicError):
            day_count(ts(2024, 1, 2), ts(2024, 1, 1)).call()
    assert harness.functions.daysFromCivil(1970, 1, 1).call() == 0
    with pytest.raises(ContractLogicError):
        harness.functions.daysFromCivil(1969, 12, 31).call()


# --- day counts, hand-computed ------------------------------------------------------------------------


@pytest.mark.parametrize("start,end,days", [
    (ts(2024, 1, 31), ts(2024, 2, 29), 29),  # through a leap February
    (ts(2024, 2, 28), ts(2024, 3, 31), 32),
    (ts(2023, 2, 28), ts(2023, 3, 31), 31),
    (ts(2023, 1, 1), ts(2024, 1, 1), 365),
    (ts(2024, 1, 1), ts(2025, 1, 1), 366),  # still over 365: actual/365 *fixed*
    (ts(2024, 3, 10, 23), ts(2024, 3, 11, 1), 1),  # two hours, one midnight crossed
])
def test_actual_365_fixed_by_hand(harness, start, end, days):
    assert harness.functions.actual365Fixed(start, end).call() == [days, 365]


@pytest.mark.parametrize("start,end,days", [
    (ts(2024, 1, 15), ts(2024, 7, 15), 180),
    (ts(2023, 3, 1), ts(2024, 3, 1), 360),
    (ts(2023, 1, 31), ts(2023, 2, 28), 28),  # D1 31 -> 30: 30 + 28 - 30
    (ts(2023, 2, 28), ts(2023, 3, 31), 32),  # February not adjusted in 30E/360: 30 + 30 - 28
    (ts(2024, 2, 29), ts(2024, 3, 31), 31),  # 30 + 30 - 29
    (ts(2023, 12, 31), ts(2024, 1, 31), 30),  # both 31 -> 30, across a year end
    (ts(2023, 8, 31), ts(2023, 9, 30), 30),
    (ts(2023, 9, 30), ts(2023, 10, 31), 30),
    (ts(2023, 1, 30), ts(2023, 1, 31), 0),  # the 31st counts as the 30th
    (ts(2023, 5, 5), ts(2023, 5, 5), 0),
])
def test_thirty_e_360_by_hand(harness, start, end, days):
    assert harness.functions.thirtyE360(start, end).call() == [days, 360]


# --- monthly schedules --------------------------------------------------------------------------------


def terms(principal, apr_bps, n, amortization):
    # interval (30 days here) is ignored by monthly schedules.
    return LoanTerms(principal, b"CNY", apr_bps, amortization, n, 30 * DAY, 3 * DAY, 500, 1800, 90 * DAY).as_tuple()


def half_up(x: Fraction) -> int:
    return int((x + Fraction(1, 2)) // 1)


def reference(principal, apr_bps, n, amortization, day_count, disbursed_at):
    """(due, principal, interest) rows: exact fractions, rounded half-up where the library rounds.

    30/360: each period is 1/12 of a year. Actual/365 fixed: a period's actual days / 365. Annuity: the
    level payment at annual rate / 12; interest on the exact balance for the period, rounded once (LoanMath's
    rule, under both day counts: prepaying more never costs more); the last installment repays what is left,
    with its own interest.
    """
    dues = [add_months(disbursed_at, k) for k in range(n + 1)]
    dues[0] = disbursed_at

    def rate(k):
        if day_count == THIRTY_360:
            return Fraction(apr_bps, 10_000 * 12)
        return Fraction(apr_bps * (dues[k] - dues[k - 1]), 10_000 * 365 * DAY)

    monthly = Fraction(apr_bps, 10_000 * 12)
    if monthly:
        f = (1 + monthly) ** n
        payment = principal * monthly * f / (f - 1)
    else:
        payment = Fraction(principal, n)
    rows, before, balance = [], 0, Fraction(principal)
    for k in range(1, n + 1):
        if amortization == ANNUITY:
            interest_exact = balance * rate(k)
            if k == n:
                cumulative, interest = principal, half_up(interest_exact)
            else:
                balance = balance + interest_exact - payment
                cumulative = half_up(principal - balance)
                interest = half_up(interest_exact)
        elif amortization == EQUAL_PRINCIPAL:
            cumulative = half_up(Fraction(principal * k, n))
            interest = half_up((principal - before) * rate(k))
        else:
            cumulative = principal if k == n else 0
            interest = half_up(principal * rate(k))
        rows.append((dues[k], cumulative - before, interest))
        before = cumulative
    return rows


def schedule(harness, principal, apr_bps, n, amortization, day_count, disbursed_at):
    got = harness.functions.schedule(terms(principal, apr_bps, n, amortization), day_count, disbursed_at).call()
    return [tuple(row) for row in got]


def test_story_equal_principal_actual_365_from_31_january_2024(harness):
    # 120,000 at 24 %, three months, disbursed 31 January 2024 10:00 UTC: due 29 Feb, 31 Mar, 30 Apr.
    # Interest: 120,000 * 0.24 * 29/365 = 2,288.22; 80,000 * 0.24 * 31/365 = 1,630.68; 40,000 * 0.24 * 30/365 = 789.04.
    rows = schedule(harness, 120_000, 2400, 3, EQUAL_PRINCIPAL, ACTUAL_365_FIXED, ts(2024, 1, 31, 10))
    assert rows == [(ts(2024, 2, 29, 10), 40_000, 2288), (ts(2024, 3, 31, 10), 40_000, 1631),
                    (ts(2024, 4, 30, 10), 40_000, 789)]


def test_story_equal_principal_30_360_charges_every_month_alike(harness):
    # The same loan on 30/360: 2 % a month whatever the month's length: 2,400, 1,600, 800.
    rows = schedule(harness, 120_000, 2400, 3, EQUAL_PRINCIPAL, THIRTY_360, ts(2024, 1, 31, 10))
    assert rows == [(ts(2024, 2, 29, 10), 40_000, 2400), (ts(2024, 3, 31, 10), 40_000, 1600),
                    (ts(2024, 4, 30, 10), 40_000, 800)]


def test_story_annuity_actual_365_last_installment_absorbs(harness):
    # 120,000 at 24 %, three months from 31 January 2023: the level payment at 2 % a month is
    # 120,000 * 0.02 / (1 - 1.02^-3) = 41,610.56 -> 41,611. February has 28 days, March 31, April 30.
    rows = schedule(harness, 120_000, 2400, 3, ANNUITY, ACTUAL_365_FIXED, ts(2023, 1, 31))
    # Feb: interest 120,000 * 0.24 * 28/365 = 2,209.32 -> 2,209; principal 41,610.56 - 2,209.32 = 39,401.25
    # -> 39,401 (rounded on the cumulative amount; the interest is rounded once on the exact balance, as
    # LoanMath does). Balance 80,598.75.
    # Mar: interest 80,598.75 * 0.24 * 31/365 = 1,642.89 -> 1,643; balance 40,631.08, so cumulative principal
    # 79,368.92 -> 79,369: principal 39,968.
    # Apr (the last): the rest, 120,000 - 79,369 = 40,631, with 30 days on 40,631.08: 801.49 -> 801. The
    # short February made this installment 41,432, less than the level 41,611.
    assert rows == [(ts(2023, 2, 28), 39_401, 2209), (ts(2023, 3, 31), 39_968, 1643), (ts(2023, 4, 30), 40_631, 801)]
    assert sum(p for _, p, _ in rows) == 120_000


@pytest.mark.parametrize("day_count", [THIRTY_360, ACTUAL_365_FIXED])
@pytest.mark.parametrize("amortization", [ANNUITY, EQUAL_PRINCIPAL, BULLET])
def test_schedules_match_reference(harness, amortization, day_count):
    rng = random.Random(amortization * 10 + day_count)
    starts = [ts(y, m, d, 9, 30) for y in (2023, 2024, 2100) for m in (1, 3, 12) for d in (28, 29, 30, 31)
              if d <= month_length(y, m)]
    starts += [rng.randint(0, END_2200 - 4 * 366 * DAY) for _ in range(12)]
    for start in starts:
        principal = rng.choice([rng.randint(1, 1000), rng.randint(1, 10**6), rng.randint(1, 10**12)])
        n, apr_bps = rng.randint(1, 36), rng.randint(0, 10_000)
        got = schedule(harness, principal, apr_bps, n, amortization, day_count, start)
        want = reference(principal, apr_bps, n, amortization, day_count, start)
        case = (principal, apr_bps, n, start)
        assert [due for due, _, _ in got] == [due for due, _, _ in want], case
        assert sum(p for _, p, _ in got) == principal, case
        assert all(p >= 0 and i >= 0 for _, p, i in got), case
        if amortization == ANNUITY:
            # The library floors RAY-scaled products: a half-up may land one unit either side.
            assert all(abs(g[1] - w[1]) <= 1 and abs(g[2] - w[2]) <= 1 for g, w in zip(got, want)), (case, got, want)
            # Within 1.5 units of the textbook payment, LoanMath's bound (one from the principal part's two
            # cumulative roundings, half from the interest's); under actual/365 all but the last, which absorbs.
            pmt = -npf.pmt(apr_bps / 120_000, n, principal) if apr_bps else principal / n
            level = got if day_count == THIRTY_360 else got[:-1]
            assert all(abs(p + i - pmt) <= 1.5 + 1e-9 * principal for _, p, i in level), case
        else:
            assert got == want, case


def test_annuity_actual_365_never_gives_negative_principal_when_a_period_costs_more_than_the_payment(harness):
    # At 100 % a year over 60 months the level payment (8.40 % of principal a month) is less than the
    # interest of a 31-day first period (8.49 %): the balance grows, the principal part is 0, not negative.
    rows = schedule(harness, 1_000_000, 10_000, 60, ANNUITY, ACTUAL_365_FIXED, ts(2023, 1, 1))
    assert rows[0][1:] == (0, 84_932)  # 1,000,000 * 1.00 * 31/365 = 84,931.51: all interest, none of it principal
    assert all(p >= 0 and i >= 0 for _, p, i in rows)
    assert sum(p for _, p, _ in rows) == 1_000_000


@pytest.mark.parametrize("amortization", [ANNUITY, EQUAL_PRINCIPAL, BULLET])
def test_a_restored_cursor_gets_its_own_period_whatever_the_anchor_remembers(harness, amortization):
    start = ts(2024, 1, 31, 10)
    rows = schedule(harness, 1_234_567, 2400, 12, amortization, ACTUAL_365_FIXED, start)
    for walk_to, restore_to in [(0, 0), (5, 5), (5, 2), (7, 0), (3, 6), (11, 11)]:
        got = harness.functions.installmentAfterRestore(terms(1_234_567, 2400, 12, amortization), ACTUAL_365_FIXED,
                                                        start, walk_to, restore_to).call()
        assert tuple(got) == rows[restore_to], (walk_to, restore_to)


def test_annuity_30_360_is_loan_math_at_a_twelfth_of_a_year(harness, stack):
    # With interval 365 days / 12 the existing quote is the same schedule, relative due dates aside.
    twelfth = 365 * DAY // 12
    for principal, apr_bps, n in [(120_000, 2400, 3), (987_654_321, 1799, 36), (5, 10_000, 12)]:
        quoted = stack.book.functions.quote(LoanTerms(principal, b"CNY", apr_bps, ANNUITY, n, twelfth, 3 * DAY, 500,
                                                      1800, 90 * DAY).as_tuple(), 0, 0, 0).call()
        monthly = schedule(harness, principal, apr_bps, n, ANNUITY, THIRTY_360, ts(2024, 1, 31))
        assert [(p, i) for _, p, i in quoted] == [(p, i) for _, p, i in monthly]


# --- gas ----------------------------------------------------------------------------------------------


def test_gas_of_add_months_and_one_installment(harness, record_property):
    add_gas = max(harness.functions.addMonthsGas(start, k).call()[1]
                  for start in (ts(2024, 1, 31, 10), ts(2199, 12, 31)) for k in (1, 12, 36))
    first, further, with_seek, anchor, today = {}, {}, {}, 0, {}
    for amortization in (ANNUITY, EQUAL_PRINCIPAL, BULLET):
        today[amortization] = harness.functions.loanMathInstallmentGas(terms(120_000, 2400, 12, amortization), 6).call()
        for day_count in (THIRTY_360, ACTUAL_365_FIXED):
            call = harness.functions.installmentGas(terms(120_000, 2400, 12, amortization), day_count,
                                                    ts(2024, 1, 31, 10), 6, False)
            _, _, first[(amortization, day_count)], further[(amortization, day_count)], anchor_gas = call.call()
            anchor = max(anchor, anchor_gas)
            seek_call = harness.functions.installmentGas(terms(120_000, 2400, 12, amortization), day_count,
                                                         ts(2024, 1, 31, 10), 6, True)
            p, i, with_seek[(amortization, day_count)], _, _ = seek_call.call()
            assert (p, i) == tuple(call.call()[:2])
    extra_first = {key: gas - today[key[0]] for key, gas in first.items()}
    extra_further = {key: gas - today[key[0]] for key, gas in further.items()}
    record_property("add_months_gas", add_gas)
    record_property("installment_gas", {"first": first, "further": further, "seek_then_first": with_seek,
                                        "loan_math_today": today})
    print(f"\naddMonths: {add_gas} gas; anchor (once a transaction): {anchor}; LoanMath.next today: {today};"
          f"\nfirst installment of a walk: {first} (extra {extra_first});"
          f"\nfurther installments: {further} (extra {extra_further});"
          f"\nseek (the period start a repayment needs for accrual) then the first installment: {with_seek}")
    # repay_installment_monthly must stay within 10 % (9,073 gas) of repay_installment (90,732), and a
    # repayment computes about three installments (position: the one due and the next; settlement: one).
    assert add_gas < 2_000 and anchor < 1_000
    assert max(extra_first.values()) < 3_000 and max(extra_further.values()) < 2_000

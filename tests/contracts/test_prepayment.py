"""Early repayment (Prepayment, through PrepaymentHarness) against a plain reference and the fairness property.

The reference below is written from the rules in contracts/libraries/Prepayment.sol with exact fractions
(no RAY, no floors), so it checks the contract's integer maths rather than repeating it.
"""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.artifacts import compile_contracts
from ledger.typed_data import LoanTerms

DAY = 86_400
YEAR = 365 * DAY
ANNUITY, EQUAL_PRINCIPAL, BULLET = 0, 1, 2
REDUCE_INSTALLMENTS, REDUCE_AMOUNT = 0, 1
METHODS = (REDUCE_INSTALLMENTS, REDUCE_AMOUNT)


@pytest.fixture(scope="module")
def harness(w3):
    artifact = compile_contracts()["PrepaymentHarness"]
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": w3.eth.accounts[0]}))
    return w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])


def terms(principal, apr_bps, n, interval, amortization):
    return LoanTerms(principal, b"CNY", apr_bps, amortization, n, interval, 3 * DAY, 500, 1800, 90 * DAY).as_tuple()


def pay(harness, t, paid, elapsed, amount, method) -> dict:
    """The outcome of `amount` (or a list of amounts, one after the other) paid at one moment."""
    amounts = amount if isinstance(amount, list) else [amount]
    names = ("payoff", "closed", "interest", "principal", "settled", "rebased", "installments", "payment_ray",
             "still_asked", "schedule", "gas")
    out = dict(zip(names, harness.functions.pay(t, paid, elapsed, amounts, method).call(), strict=True))
    out["schedule"] = [(p, i) for _, p, i in out["schedule"]]
    return out


def cost_to_close(out: dict) -> int:
    """What the borrower pays in all from these payments on: the payments (up to the payoff) and the rest of
    the schedule they leave, on time."""
    return out["interest"] + out["principal"] + (0 if out["closed"] else out["still_asked"])


# --- the reference --------------------------------------------------------------------------------------


def half_up(x: Fraction) -> int:
    return int((x + Fraction(1, 2)) // 1)


def period_rate(apr_bps, interval) -> Fraction:
    return Fraction(apr_bps * interval, 10_000 * YEAR)


def annuity_payment(principal, rate: Fraction, n) -> Fraction:
    return Fraction(principal, n) if rate == 0 else principal * rate / (1 - (1 + rate) ** -n)


def loan_schedule(principal, n, rate, amortization):
    """LoanMath's schedule (original and re-based plans alike): cumulative half-up principal; annuity interest
    rounded half-up on the exact balance."""
    rows, before, balance = [], 0, Fraction(principal)
    payment = annuity_payment(principal, rate, n)
    for k in range(1, n + 1):
        if amortization == ANNUITY:
            interest = half_up(balance * rate)
            balance = 0 if k == n else balance * (1 + rate) - payment
            cumulative = principal if k == n else half_up(principal - balance)
        elif amortization == EQUAL_PRINCIPAL:
            cumulative = half_up(Fraction(principal * k, n))
            interest = half_up((principal - before) * rate)
        else:
            cumulative = principal if k == n else 0
            interest = half_up(principal * rate)
        rows.append((cumulative - before, interest))
        before = cumulative
    return rows


def accrued(interest, elapsed, interval) -> int:
    return interest if elapsed >= interval else half_up(Fraction(interest * elapsed, interval))


def reference_pay(principal, apr_bps, n, interval, amortization, paid, elapsed, amount, method):
    rate = period_rate(apr_bps, interval)
    rows = loan_schedule(principal, n, rate, amortization)
    outstanding = principal - sum(p for p, _ in rows[:paid])
    due_interest = accrued(rows[paid][1], elapsed, interval)
    payoff = due_interest + outstanding
    if amount >= payoff:
        return {"payoff": payoff, "closed": True, "interest": due_interest, "principal": outstanding}
    interest = min(amount, due_interest)
    principal_part = amount - interest
    out = {"payoff": payoff, "closed": False, "interest": interest, "principal": principal_part}
    if principal_part == 0:
        return {**out, "settled": interest, "rebased": False, "schedule": rows[paid:]}
    left, remaining = outstanding - principal_part, n - paid
    count = remaining
    if method == REDUCE_INSTALLMENTS and amortization == EQUAL_PRINCIPAL:
        count = max(1, min(remaining, -(-left * n // principal)))
    elif method == REDUCE_INSTALLMENTS and amortization == ANNUITY:
        level = annuity_payment(principal, rate, n)
        count = next((m for m in range(1, remaining + 1) if annuity_payment(left, rate, m) <= level), remaining)
    schedule = loan_schedule(left, count, rate, amortization)
    settled = min(schedule[0][1], accrued(schedule[0][1], elapsed, interval))
    return {**out, "settled": settled, "rebased": True, "schedule": schedule}


def check_against_reference(harness, principal, apr_bps, n, interval, amortization, paid, elapsed, amount, method):
    got = pay(harness, terms(principal, apr_bps, n, interval, amortization), paid, elapsed, amount, method)
    want = reference_pay(principal, apr_bps, n, interval, amortization, paid, elapsed, amount, method)
    assert {k: got[k] for k in want} == want
    if not want["closed"]:
        assert got["still_asked"] == sum(p + i for p, i in want["schedule"]) - want["settled"]
    return got


# --- worked cases ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_the_issue_example_costs_a_unit_under_the_payoff_what_the_payoff_costs(harness, method):
    # 120,000 at 24 %, three 30-day installments, at day 10: 120,789 closes the loan. Paid oldest first at
    # full scheduled interest (the book today), 120,788 settles all three installments in the end.
    t = terms(120_000, 2400, 3, 30 * DAY, ANNUITY)
    today = pay(harness, t, 0, 10 * DAY, 0, method)
    assert today["payoff"] == 120_789
    # The issue's 124,764 was the schedule under LoanMath's former annuity rounding; interest rounded on the exact
    # balance makes it one unit more.
    assert sum(p + i for p, i in today["schedule"]) == 124_765
    out = check_against_reference(harness, 120_000, 2400, 3, 30 * DAY, ANNUITY, 0, 10 * DAY, 120_788, method)
    # 789 of interest to day 10, 119,999 of principal; the unit left costs no interest at 1.97 % a period.
    assert (out["interest"], out["principal"]) == (789, 119_999)
    assert cost_to_close(out) == 120_789
    assert out["installments"] == (1 if method == REDUCE_INSTALLMENTS else 3)


def test_equal_principal_both_methods_written_out(harness):
    # 90,000 at 12 % in three 30-day installments, the first paid; 15 days into the second period the borrower
    # pays 40,000. Period rate 0.12 * 30/365. Interest of installment 2 on 60,000: 591.78 -> 592, half of it
    # accrued: 296. Principal prepaid: 39,704, leaving 20,296.
    t = terms(90_000, 1200, 3, 30 * DAY, EQUAL_PRINCIPAL)
    shorter = pay(harness, t, 1, 15 * DAY, 40_000, REDUCE_INSTALLMENTS)
    smaller = pay(harness, t, 1, 15 * DAY, 40_000, REDUCE_AMOUNT)
    for out in (shorter, smaller):
        assert (out["interest"], out["principal"], out["rebased"]) == (296, 39_704, True)
    # Principal parts of 30,000 kept: ceil(20,296 / 30,000) = one installment, 20,296 with 200.18 -> 200 of
    # interest, half of which is settled (the first half-period's interest was paid on 60,000).
    assert shorter["schedule"] == [(20_296, 200)]
    assert (shorter["settled"], shorter["still_asked"]) == (100, 20_396)
    # Two installments kept: 10,148 each, interest 200 then 10,148 * r = 100.09 -> 100.
    assert smaller["schedule"] == [(10_148, 200), (10_148, 100)]
    assert (smaller["settled"], smaller["still_asked"]) == (100, 20_496)


def test_bullet_prepayment_makes_the_bullet_smaller(harness):
    # 50,000 at 18 %, four 30-day periods, two paid; 10 days into the third the borrower pays 20,000.
    # Interest a period on 50,000: 739.73 -> 740; accrued 740/3 = 246.67 -> 247; principal 19,753.
    for method in METHODS:
        out = check_against_reference(harness, 50_000, 1800, 4, 30 * DAY, BULLET, 2, 10 * DAY, 20_000, method)
        assert out["installments"] == 2
        # 30,247 left: 447.49 -> 447 a period; a third of the current period's settled: 149.
        assert out["schedule"] == [(0, 447), (30_247, 447)]
        assert out["settled"] == 149


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("amortization", [ANNUITY, EQUAL_PRINCIPAL, BULLET])
def test_twelve_month_loan_against_reference(harness, amortization, method):
    # 120,000 at 24 % over twelve 30-day periods, three paid, 20 days in: 30,000 paid.
    out = check_against_reference(harness, 120_000, 2400, 12, 30 * DAY, amortization, 3, 20 * DAY, 30_000, method)
    assert sum(p for p, _ in out["schedule"]) == 120_000 - sum(
        p for p, _ in loan_schedule(120_000, 12, period_rate(2400, 30 * DAY), amortization)[:3]) - out["principal"]
    if method == REDUCE_INSTALLMENTS and amortization != BULLET:
        assert out["installments"] < 9
    else:
        assert out["installments"] == 9


def test_annuity_reduce_installments_keeps_the_payment(harness):
    t = terms(120_000, 2400, 12, 30 * DAY, ANNUITY)
    level = pay(harness, t, 0, 0, 0, REDUCE_INSTALLMENTS)["payment_ray"]
    out = pay(harness, t, 3, 20 * DAY, 30_000, REDUCE_INSTALLMENTS)
    left = sum(p for p, _ in out["schedule"])
    _, one_fewer = harness.functions.rebase(t, left, out["installments"] - 1, REDUCE_AMOUNT).call()
    # The fewest installments within the level payment: one fewer would need more than it.
    assert out["installments"] < 9
    assert out["payment_ray"] <= level < one_fewer
    assert all(abs(p + i - Fraction(out["payment_ray"], 10**27)) < Fraction(3, 2) for p, i in out["schedule"][:-1])


def test_paying_no_more_than_the_interest_to_date_changes_no_schedule(harness):
    t = terms(120_000, 2400, 3, 30 * DAY, ANNUITY)
    before = pay(harness, t, 1, 15 * DAY, 0, REDUCE_AMOUNT)
    out = pay(harness, t, 1, 15 * DAY, 500, REDUCE_AMOUNT)
    assert (out["interest"], out["principal"], out["rebased"], out["settled"]) == (500, 0, False, 500)
    assert out["schedule"] == before["schedule"]
    assert cost_to_close(out) == cost_to_close(before)


def test_random_states_against_reference(harness):
    rng = random.Random(20261130)
    for _ in range(40):
        amortization, method = rng.choice([ANNUITY, EQUAL_PRINCIPAL, BULLET]), rng.choice(METHODS)
        principal = rng.choice([rng.randint(1, 2_000), rng.randint(2_000, 10**7)])
        n, interval = rng.randint(1, 36), rng.choice([7, 14, 30]) * DAY
        apr_bps, paid = rng.randint(0, 3600), rng.randint(0, n - 1)
        elapsed = rng.randint(0, interval)
        payoff = pay(harness, terms(principal, apr_bps, n, interval, amortization), paid, elapsed, 0, method)["payoff"]
        amount = rng.randint(1, payoff)
        check_against_reference(harness, principal, apr_bps, n, interval, amortization, paid, elapsed, amount, method)


# --- fairness: paying more never costs more ---------------------------------------------------------------

FAIRNESS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def loan_states(draw, amortizations=(ANNUITY, EQUAL_PRINCIPAL, BULLET)):
    """A loan some installments into its schedule, a moment in the current period, and a method."""
    n = draw(st.integers(1, 24))
    interval = draw(st.sampled_from([7 * DAY, 14 * DAY, 30 * DAY, YEAR // 12]))
    return {
        "principal": draw(st.one_of(st.integers(1, 500), st.integers(500, 10**6), st.integers(10**6, 10**12))),
        "apr_bps": draw(st.one_of(st.sampled_from([0, 1200, 2400, 3600]), st.integers(0, 10_000))),
        "n": n,
        "interval": interval,
        "amortization": draw(st.sampled_from(amortizations)),
        "paid": draw(st.integers(0, n - 1)),
        "elapsed": draw(st.integers(0, interval)),
        "method": draw(st.sampled_from(METHODS)),
    }


def outcome(harness, s, amount):
    t = terms(s["principal"], s["apr_bps"], s["n"], s["interval"], s["amortization"])
    return pay(harness, t, s["paid"], s["elapsed"], amount, s["method"])


def two_payments(data, payoff):
    """a < b, both below the payoff most of the time; b may reach it or pass it."""
    a = data.draw(st.one_of(st.integers(1, max(1, payoff - 1)), st.integers(1, min(max(payoff, 1), 50))), label="a")
    b = data.draw(st.one_of(st.integers(a + 1, a + 3), st.integers(a + 1, payoff + 10)), label="b")
    return a, b


def assert_fair(harness, s, a, b):
    payoff = outcome(harness, s, 0)["payoff"]
    cost_a = cost_to_close(outcome(harness, s, a))
    cost_b = cost_to_close(outcome(harness, s, b))
    at_once = cost_to_close(outcome(harness, s, payoff))
    assert at_once == payoff
    assert cost_b <= cost_a, (cost_a, cost_b)
    # Closing at once is what paying more ends at: no payment below the payoff costs less in all.
    assert payoff <= min(cost_a, cost_b)


@FAIRNESS
@given(s=loan_states(), data=st.data())
def test_paying_more_never_costs_more(harness, s, data):
    payoff = outcome(harness, s, 0)["payoff"]
    a, b = two_payments(data, payoff)
    assert_fair(harness, s, a, b)


def test_the_annuity_rounding_gap_is_closed(harness):
    # Found with LoanMath's former annuity rounding (the rounded level payment less the principal part): 636
    # at 24 % in three 30-day installments, 2,282,646 s in, 11 units of interest to date. Paying 11 left the
    # original schedule (660 in all), paying 12 re-based it with interest rounded on the exact balance (661).
    # With one rule for both, paying more costs no more.
    s = {"principal": 636, "apr_bps": 2400, "n": 3, "interval": 30 * DAY, "amortization": ANNUITY, "paid": 0,
         "elapsed": 2_282_646, "method": REDUCE_AMOUNT}
    costs = [cost_to_close(outcome(harness, s, x)) for x in (11, 12)]
    assert costs[1] <= costs[0]


@FAIRNESS
@given(s=loan_states(), data=st.data())
def test_two_payments_at_one_moment_leave_what_their_sum_would(harness, s, data):
    # Paying 300 and then 200 at the same moment is paying 500: a payment split by the rail (or by the
    # borrower) neither costs more nor shortens the schedule less.
    payoff = outcome(harness, s, 0)["payoff"]
    first = data.draw(st.integers(1, max(1, payoff)), label="first")
    second = data.draw(st.integers(1, max(1, payoff)), label="second")
    split = outcome(harness, s, [first, second])
    whole = outcome(harness, s, first + second)
    keys = ("closed", "interest", "principal", "settled", "installments", "schedule", "still_asked")
    assert {k: split[k] for k in keys} == {k: whole[k] for k in keys}


def test_interest_paid_ahead_of_the_accrual_stays_settled(harness):
    # 120,000 at 24 %, three 30-day installments. Installment 1's interest is 2,367; suppose 2,000 of it was
    # paid (a partial payment under the old allocation, or replayed by a reversal) and, at day 10 (789
    # accrued), 20,000 more arrives: none of it is interest, all of it principal, and the 2,000 - 789 paid
    # ahead still counts against the re-based installment's interest (its accrual to day 10 on 100,000, plus
    # the 1,211 ahead).
    t = terms(120_000, 2400, 3, 30 * DAY, ANNUITY)
    interest, principal, settled, first = harness.functions.prepayWithInterestSettled(
        t, 0, 10 * DAY, 2_000, 20_000, REDUCE_AMOUNT).call()
    assert (interest, principal) == (0, 20_000)
    assert first == half_up(100_000 * period_rate(2400, 30 * DAY))  # 1,972.60 -> 1,973
    assert settled == min(first, half_up(Fraction(first, 3)) + 2_000 - 789) == 1_869
    # Without the earlier 2,000, the same 20,000 pays the 789 accrued and 19,211 of principal.
    assert harness.functions.prepayWithInterestSettled(t, 0, 10 * DAY, 0, 20_000, REDUCE_AMOUNT).call()[:2] == [789, 19_211]

"""Re-based schedules (Prepayment.rebase, through PrepaymentHarness) against a plain reference.

The reference below is written from the rules in contracts/libraries/Prepayment.sol with exact fractions
(no RAY, no floors), so it checks the contract's integer maths rather than repeating it. What the loan book
does around a re-base (the current installment paid ahead of its date, the interest carried into the next, and
paying more never costing more) is tested on the real book in test_early_repayment.py.
"""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
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


def rebase(harness, t, left, remaining, method) -> dict:
    """The plan `left` principal over `remaining` installments is re-based on: its count, payment and rows."""
    installments, payment_ray, rows = harness.functions.rebase(t, left, remaining, method).call()
    return {"installments": installments, "payment_ray": payment_ray, "schedule": [(p, i) for _, p, i in rows]}


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


def reference_rebase(principal, apr_bps, n, interval, amortization, left, remaining, method):
    """The schedule of `left` principal over the installments the method keeps of `remaining`."""
    rate = period_rate(apr_bps, interval)
    count = remaining
    if method == REDUCE_INSTALLMENTS and amortization == EQUAL_PRINCIPAL:
        count = max(1, min(remaining, -(-left * n // principal)))
    elif method == REDUCE_INSTALLMENTS and amortization == ANNUITY:
        level = annuity_payment(principal, rate, n)
        count = next((m for m in range(1, remaining + 1) if annuity_payment(left, rate, m) <= level), remaining)
    return loan_schedule(left, count, rate, amortization)


def outstanding_after(principal, apr_bps, n, interval, amortization, paid) -> int:
    rows = loan_schedule(principal, n, period_rate(apr_bps, interval), amortization)
    return principal - sum(p for p, _ in rows[:paid])


def check_against_reference(harness, principal, apr_bps, n, interval, amortization, left, remaining, method):
    got = rebase(harness, terms(principal, apr_bps, n, interval, amortization), left, remaining, method)
    want = reference_rebase(principal, apr_bps, n, interval, amortization, left, remaining, method)
    assert got["schedule"] == want
    assert got["installments"] == len(want)
    return got


def total(plan: dict) -> int:
    return sum(p + i for p, i in plan["schedule"])


# --- worked cases ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_the_issue_example_leaves_one_unit_that_costs_no_interest(harness, method):
    # 120,000 at 24 %, three 30-day installments, at day 10: 120,788, a unit under the payoff, pays the first
    # installment ahead of its date and prepays all but one unit of principal (test_early_repayment.py). The two
    # installments after it are re-based on that unit: one installment (the payment kept) or two (smaller), and
    # at 1.97 % a period it bears no interest.
    out = check_against_reference(harness, 120_000, 2400, 3, 30 * DAY, ANNUITY, 1, 2, method)
    assert out["installments"] == (1 if method == REDUCE_INSTALLMENTS else 2)
    assert total(out) == 1


def test_equal_principal_both_methods_written_out(harness):
    # 90,000 at 12 % in three 30-day installments, the first paid (60,000 owed); a prepayment leaves 20,296 over
    # the two installments left. Period rate 0.12 * 30/365.
    t = terms(90_000, 1200, 3, 30 * DAY, EQUAL_PRINCIPAL)
    shorter = rebase(harness, t, 20_296, 2, REDUCE_INSTALLMENTS)
    smaller = rebase(harness, t, 20_296, 2, REDUCE_AMOUNT)
    # Principal parts of 30,000 kept: ceil(20,296 / 30,000) = one installment, 20,296 with 200.18 -> 200 of
    # interest.
    assert shorter["schedule"] == [(20_296, 200)]
    # Two installments kept: 10,148 each, interest 200 then 10,148 * r = 100.09 -> 100.
    assert smaller["schedule"] == [(10_148, 200), (10_148, 100)]


def test_bullet_prepayment_makes_the_bullet_smaller(harness):
    # 50,000 at 18 %, four 30-day periods, two paid; a prepayment leaves 30,247 over the two left. Either method
    # keeps both (a bullet has no principal installment to drop): 30,247 * r = 447.49 -> 447 a period.
    for method in METHODS:
        out = check_against_reference(harness, 50_000, 1800, 4, 30 * DAY, BULLET, 30_247, 2, method)
        assert out["installments"] == 2
        assert out["schedule"] == [(0, 447), (30_247, 447)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("amortization", [ANNUITY, EQUAL_PRINCIPAL, BULLET])
def test_twelve_month_loan_against_reference(harness, amortization, method):
    # 120,000 at 24 % over twelve 30-day periods, three paid, then 30,000 of principal prepaid.
    left = outstanding_after(120_000, 2400, 12, 30 * DAY, amortization, 3) - 30_000
    out = check_against_reference(harness, 120_000, 2400, 12, 30 * DAY, amortization, left, 9, method)
    assert sum(p for p, _ in out["schedule"]) == left
    if method == REDUCE_INSTALLMENTS and amortization != BULLET:
        assert out["installments"] < 9
    else:
        assert out["installments"] == 9


def test_annuity_reduce_installments_keeps_the_payment(harness):
    t = terms(120_000, 2400, 12, 30 * DAY, ANNUITY)
    level = rebase(harness, t, 120_000, 12, REDUCE_AMOUNT)["payment_ray"]  # the original plan's
    left = outstanding_after(120_000, 2400, 12, 30 * DAY, ANNUITY, 3) - 30_000
    out = rebase(harness, t, left, 9, REDUCE_INSTALLMENTS)
    one_fewer = rebase(harness, t, left, out["installments"] - 1, REDUCE_AMOUNT)["payment_ray"]
    # The fewest installments within the level payment: one fewer would need more than it.
    assert out["installments"] < 9
    assert out["payment_ray"] <= level < one_fewer
    assert all(abs(p + i - Fraction(out["payment_ray"], 10**27)) < Fraction(3, 2) for p, i in out["schedule"][:-1])


def test_random_states_against_reference(harness):
    rng = random.Random(20261130)
    for _ in range(40):
        amortization, method = rng.choice([ANNUITY, EQUAL_PRINCIPAL, BULLET]), rng.choice(METHODS)
        principal = rng.choice([rng.randint(1, 2_000), rng.randint(2_000, 10**7)])
        n, interval = rng.randint(1, 36), rng.choice([7, 14, 30]) * DAY
        apr_bps, paid = rng.randint(0, 3600), rng.randint(0, n - 1)
        outstanding = outstanding_after(principal, apr_bps, n, interval, amortization, paid)
        left = rng.randint(1, max(1, outstanding))
        check_against_reference(harness, principal, apr_bps, n, interval, amortization, left, n - paid, method)
        # Re-based on the original principal over all the installments: the original plan.
        check_against_reference(harness, principal, apr_bps, n, interval, amortization, principal, n, REDUCE_AMOUNT)


@pytest.mark.parametrize("amortization", [ANNUITY, EQUAL_PRINCIPAL, BULLET])
def test_current_interest_is_the_next_installments_and_leaves_the_cursor(harness, amortization):
    # The book asks currentInterest for the installment it is on, on the original plan and on re-based ones; the
    # walk after it still passes that installment.
    rng = random.Random(amortization)
    for left, remaining in ((120_000, 12), (61_234, 9), (7, 5)):
        t = terms(120_000, 2400, 12, 30 * DAY, amortization)
        want = reference_rebase(120_000, 2400, 12, 30 * DAY, amortization, left, remaining, REDUCE_AMOUNT)
        paid = rng.randrange(remaining)
        interest, walked = harness.functions.currentInterest(t, left, remaining, REDUCE_AMOUNT, paid).call()
        assert interest == walked == want[paid][1]


# --- one rounding rule: less principal never leaves more to pay -----------------------------------------


def test_the_annuity_rounding_gap_is_closed(harness):
    # Found with LoanMath's former annuity rounding (the rounded level payment less the principal part): 636 at
    # 24 % in three 30-day installments cost 660 in all on the original schedule, and re-based on the same
    # principal with interest rounded on the exact balance, 661: a unit of principal prepaid could leave more to
    # pay. With one rule for both, the plan re-based on the original principal is the original plan, and one
    # unit less leaves at least a unit less to pay.
    t = terms(636, 2400, 3, 30 * DAY, ANNUITY)
    original = loan_schedule(636, 3, period_rate(2400, 30 * DAY), ANNUITY)
    same = rebase(harness, t, 636, 3, REDUCE_AMOUNT)
    assert same["schedule"] == original
    assert total(rebase(harness, t, 635, 3, REDUCE_AMOUNT)) + 1 <= total(same)


@st.composite
def plans(draw):
    """A loan's terms, installments paid, the principal left after a prepayment, and a method."""
    n = draw(st.integers(1, 24))
    interval = draw(st.sampled_from([7 * DAY, 14 * DAY, 30 * DAY, YEAR // 12]))
    principal = draw(st.one_of(st.integers(2, 500), st.integers(500, 10**6), st.integers(10**6, 10**12)))
    amortization = draw(st.sampled_from([ANNUITY, EQUAL_PRINCIPAL, BULLET]))
    apr_bps = draw(st.one_of(st.sampled_from([0, 1200, 2400, 3600]), st.integers(0, 10_000)))
    paid = draw(st.integers(0, n - 1))
    outstanding = outstanding_after(principal, apr_bps, n, interval, amortization, paid)
    assume(outstanding >= 2)
    return {
        "terms": terms(principal, apr_bps, n, interval, amortization),
        "remaining": n - paid,
        "left": draw(st.integers(2, max(2, outstanding))),
        "method": draw(st.sampled_from(METHODS)),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=plans())
def test_a_unit_less_principal_leaves_at_least_a_unit_less_to_pay(harness, s):
    # What the book's fairness rests on: prepaying one more unit never leaves more interest to pay.
    more = rebase(harness, s["terms"], s["left"], s["remaining"], s["method"])
    less = rebase(harness, s["terms"], s["left"] - 1, s["remaining"], s["method"])
    assert total(less) + 1 <= total(more), (more, less)

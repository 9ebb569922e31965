"""The contract's quote against the textbook formula and a plain Python reference."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy_financial as npf
import pytest

from ledger.typed_data import LoanTerms

DAY = 86_400
YEAR = 365 * DAY
ANNUITY, EQUAL_PRINCIPAL, BULLET = 0, 1, 2


def terms(principal, apr_bps, n, interval_days, amortization):
    return LoanTerms(principal, b"CNY", apr_bps, amortization, n, interval_days * DAY, 3 * DAY, 500, 1800,
                     90 * DAY).as_tuple()


def half_up(x: Fraction) -> int:
    return int((x + Fraction(1, 2)) // 1)


def reference(principal, apr_bps, n, interval, amortization):
    """Plain reference for equal-principal and bullet: cumulative half-up principal, half-up interest."""
    rate = Fraction(apr_bps * interval, 10_000 * YEAR)
    rows, before = [], 0
    for k in range(1, n + 1):
        if amortization == EQUAL_PRINCIPAL:
            cumulative = half_up(Fraction(principal * k, n))
            interest = half_up((principal - before) * rate)
        else:
            cumulative = principal if k == n else 0
            interest = half_up(principal * rate)
        rows.append((k * interval, cumulative - before, interest))
        before = cumulative
    return rows


def test_annuity_matches_pmt_over_200_random_products(stack):
    rng = random.Random(20261122)
    for _ in range(200):
        principal = rng.choice([rng.randint(1, 1000), rng.randint(1, 10**6), rng.randint(1, 10**12)])
        n = rng.randint(1, 360)
        apr_bps = rng.randint(0, 10_000)
        interval_days = rng.choice([7, 14, 30])
        schedule = stack.book.functions.quote(terms(principal, apr_bps, n, interval_days, ANNUITY), 0, 0, 0).call()
        rate = apr_bps * interval_days * DAY / (10_000 * YEAR)
        payment = -npf.pmt(rate, n, principal) if rate else principal / n
        assert len(schedule) == n
        assert sum(p for _, p, _ in schedule) == principal
        for k, (due, p, i) in enumerate(schedule, start=1):
            assert due == k * interval_days * DAY
            assert p >= 0 and i >= 0
            # 1.5: LoanMath rounds each installment's interest once on the exact balance (one unit from the principal
            # part's two cumulative roundings, half a unit from the interest), so that prepaying more never costs more.
            assert abs(p + i - payment) <= 1.5 + 1e-6 * payment, (principal, n, apr_bps, k, p, i, payment)


@pytest.mark.parametrize("amortization", [EQUAL_PRINCIPAL, BULLET])
def test_equal_principal_and_bullet_match_reference(stack, amortization):
    rng = random.Random(amortization)
    for _ in range(60):
        principal, n, apr_bps = rng.randint(1, 10**12), rng.randint(1, 120), rng.randint(0, 10_000)
        interval_days = rng.choice([7, 30])
        got = stack.book.functions.quote(terms(principal, apr_bps, n, interval_days, amortization), 0, 0, 0).call()
        assert [tuple(row) for row in got] == reference(principal, apr_bps, n, interval_days * DAY, amortization)


def test_small_principal_never_gives_negative_parts(stack):
    schedule = stack.book.functions.quote(terms(3, 1200, 5, 30, EQUAL_PRINCIPAL), 0, 0, 0).call()
    assert [p for _, p, _ in schedule] == [1, 0, 1, 0, 1]

"""Credit limits: from the score, capped by declared income, moved by behaviour on the ledger.

The policy (amounts in minor units; 100 minor units = 1 CNY):

| score     | limit, as months of declared income | absolute cap |
|-----------|-------------------------------------|--------------|
| below 450 | 0 (declined)                        | 0            |
| 450-519   | 0.5                                 | 2,000 CNY    |
| 520-579   | 1                                   | 5,000 CNY    |
| 580-639   | 2                                   | 10,000 CNY   |
| 640 and up| 3                                   | 20,000 CNY   |

Behaviour: each installment paid on time adds 5% (at most +50%); each installment paid late takes 20%
off (at most -100%); a default freezes the limit at zero. The result never exceeds 1.5 times the band's
absolute cap. Integer maths throughout, rounding down: a limit is never rounded up in the borrower's favour
by arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

MINOR_PER_UNIT = 100


@dataclass(frozen=True)
class Band:
    min_score: int
    income_tenths: int  # months of income, in tenths (5 = half a month)
    cap: int  # minor units


BANDS = (
    Band(640, 30, 20_000 * MINOR_PER_UNIT),
    Band(580, 20, 10_000 * MINOR_PER_UNIT),
    Band(520, 10, 5_000 * MINOR_PER_UNIT),
    Band(450, 5, 2_000 * MINOR_PER_UNIT),
)
ON_TIME_BONUS_PCT, MAX_BONUS_PCT = 5, 50
LATE_PENALTY_PCT = 20


@dataclass(frozen=True)
class RepaymentHistory:
    """What the ledger says about a borrower's past installments."""

    on_time: int = 0
    late: int = 0
    defaulted: bool = False


def band_for(score: int) -> Band | None:
    return next((band for band in BANDS if score >= band.min_score), None)


def credit_limit(score: int, monthly_income: int, history: RepaymentHistory = RepaymentHistory()) -> int:
    """The limit in minor units for a score, a declared monthly income (minor units) and a history."""
    if monthly_income < 0 or history.on_time < 0 or history.late < 0:
        raise ValueError("income and installment counts cannot be negative")
    band = band_for(score)
    if band is None or history.defaulted:
        return 0
    base = min(monthly_income * band.income_tenths // 10, band.cap)
    adjustment = min(history.on_time * ON_TIME_BONUS_PCT, MAX_BONUS_PCT) - history.late * LATE_PENALTY_PCT
    adjusted = base * max(100 + adjustment, 0) // 100
    return min(adjusted, band.cap * 3 // 2)

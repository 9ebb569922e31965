// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ILoanBook} from "../interfaces/ILoanBook.sol";

/**
 * @title Loan maths
 * @notice The schedule, interest, late fee and penalty as pure functions. Integer arithmetic only.
 *
 * Rounding rules (each a choice; all are half-up to the minor unit):
 * - The period rate is annualRateBps / 10_000 * interval / 365 days (actual/365 on seconds). A monthly
 *   product's terms carry interval 0 (its due dates come from the calendar: MonthlySchedule): its plan's
 *   interval is MONTH, 365 days / 12, which makes the period rate annualRateBps / 10_000 / 12 exactly
 *   (30/360: every month is 1/12 of the year).
 * - Principal parts are rounded on the *cumulative* scheduled principal, so they sum exactly to the
 *   principal and the last installment absorbs the remainder.
 * - Annuity: the schedule walks the exact (RAY) balance with the exact level payment
 *   A = P*r / (1 - (1+r)^-n); each installment's interest is its period's interest on that exact
 *   balance, rounded half-up once, and its principal part is the cumulative rounding above. Every
 *   installment is therefore within 1.5 minor units of the textbook payment (one unit from the two
 *   cumulative roundings of its principal part, half a unit from its interest), however long the loan.
 *   Why not round A and let interest be what it leaves after principal (installments within one unit)?
 *   Because a prepayment re-bases the schedule (libraries/Prepayment.sol), and the borrower's interest
 *   still to pay must never rise when the principal left falls: n installments of round(A) total in steps
 *   of n units, so one more unit prepaid can leave that total unchanged and cost the borrower the unit
 *   (at 2 % a period, 999 and 998 over three installments both round to 346). Interest rounded on
 *   the balance has no such steps; every schedule (quotes, the book, the catalogue's cost check,
 *   re-based plans) uses this one rule.
 * - Equal principal and bullet: interest is the rounded period interest on the scheduled balance.
 */
library LoanMath {
    uint256 internal constant RAY = 1e27;
    uint256 internal constant BPS = 10_000;
    uint256 internal constant YEAR = 365 days;
    /// @notice A monthly schedule's period under 30/360, a twelfth of YEAR (2,628,000 s): terms with interval 0.
    uint256 internal constant MONTH = YEAR / 12;

    /// @notice Constants of one product, derived once from its terms.
    struct Plan {
        uint256 principal;
        uint256 installments;
        uint256 interval;
        uint256 annualRateBps;
        ILoanBook.Amortization amortization;
        uint256 periodRateRay; // exact period rate, RAY-scaled (annuity only)
        uint256 paymentRay; // exact level payment, RAY-scaled (annuity only)
    }

    /// @notice Where a walk through the schedule stands: after `paid` installments.
    struct Cursor {
        uint256 paid; // installments already passed
        uint256 principalBefore; // scheduled principal of those installments
        uint256 balanceRay; // annuity: exact scheduled balance after them, RAY-scaled
    }

    /// @notice The constants of a product, computing the annuity payment (an rpow: do it once per loan).
    function plan(ILoanBook.LoanTerms memory terms) internal pure returns (Plan memory p) {
        p = planWithPayment(terms, 0);
        if (terms.amortization == ILoanBook.Amortization.Annuity) {
            p.paymentRay = annuityPaymentRay(terms.principal, p.periodRateRay, terms.installments);
        }
    }

    /**
     * @notice The constants of a product whose annuity payment is already known (stored at application).
     * @dev Interval 0 is a monthly product (Frequency.Monthly, 30/360): its period is MONTH.
     */
    function planWithPayment(ILoanBook.LoanTerms memory terms, uint256 paymentRay) internal pure returns (Plan memory p) {
        p.principal = terms.principal;
        p.installments = terms.installments;
        uint256 interval = terms.interval == 0 ? MONTH : terms.interval;
        p.interval = interval;
        p.annualRateBps = terms.annualRateBps;
        p.amortization = terms.amortization;
        p.periodRateRay = Math.mulDiv(terms.annualRateBps * interval, RAY, BPS * YEAR);
        p.paymentRay = paymentRay;
    }

    /// @notice The cursor before the first installment.
    function start(Plan memory p) internal pure returns (Cursor memory) {
        return Cursor({paid: 0, principalBefore: 0, balanceRay: p.principal * RAY});
    }

    /**
     * @notice The cursor after `paid` installments, given the stored exact annuity balance.
     * @dev Uses the same rounding as `next`, so a restored cursor equals a walked one.
     */
    function restore(Plan memory p, uint256 paid, uint256 balanceRay) internal pure returns (Cursor memory) {
        return Cursor({paid: paid, principalBefore: scheduledPrincipal(p, paid, balanceRay), balanceRay: balanceRay});
    }

    /**
     * @notice Principal scheduled in the first `k` installments, rounded half-up on the cumulative amount.
     * @param balanceRay annuity only: the exact scheduled balance after `k` installments
     */
    function scheduledPrincipal(Plan memory p, uint256 k, uint256 balanceRay) internal pure returns (uint256) {
        if (k >= p.installments) return p.principal;
        if (p.amortization == ILoanBook.Amortization.Annuity) {
            uint256 scheduledRay = p.principal * RAY;
            // The exact balance falls with every installment (the payment exceeds interest on P), so
            // this is non-decreasing in k and principal parts are never negative.
            return balanceRay >= scheduledRay ? 0 : divHalfUp(scheduledRay - balanceRay, RAY);
        }
        if (p.amortization == ILoanBook.Amortization.EqualPrincipal) return divHalfUp(p.principal * k, p.installments);
        return 0;
    }

    /**
     * @notice The exact annuity payment P*r*f/(f-1), f = (1+r)^n, RAY-scaled.
     * @dev mulDiv keeps full precision where P*r*f would overflow 256 bits.
     */
    function annuityPaymentRay(uint256 principal, uint256 periodRateRay, uint256 n) internal pure returns (uint256) {
        if (periodRateRay == 0) return Math.mulDiv(principal, RAY, n);
        uint256 f = rpow(RAY + periodRateRay, n);
        return Math.mulDiv(principal * periodRateRay, f, f - RAY);
    }

    /// @notice x^n for RAY-scaled x, by squaring; each product is floored (error ~n/1e27 relative).
    function rpow(uint256 x, uint256 n) internal pure returns (uint256 z) {
        z = RAY;
        while (n > 0) {
            if (n & 1 == 1) z = Math.mulDiv(z, x, RAY);
            n >>= 1;
            // No square after the last bit: it is not needed and could overflow for extreme rates.
            if (n > 0) x = Math.mulDiv(x, x, RAY);
        }
    }

    /// @notice Round-half-up division.
    function divHalfUp(uint256 a, uint256 b) internal pure returns (uint256) {
        return (a + b / 2) / b;
    }

    /// @notice Period interest on `balance`, rounded half-up.
    function periodInterest(Plan memory p, uint256 balance) internal pure returns (uint256) {
        return divHalfUp(balance * p.annualRateBps * p.interval, BPS * YEAR);
    }

    /**
     * @notice The next installment after `c`, and `c` moved past it.
     * @return principalPart principal of installment `c.paid + 1`
     * @return interestPart interest of installment `c.paid + 1`
     */
    function next(Plan memory p, Cursor memory c) internal pure returns (uint256 principalPart, uint256 interestPart) {
        uint256 k = c.paid + 1;
        uint256 interestRay;
        if (p.amortization == ILoanBook.Amortization.Annuity) {
            interestRay = Math.mulDiv(c.balanceRay, p.periodRateRay, RAY);
            uint256 grown = c.balanceRay + interestRay;
            c.balanceRay = (k >= p.installments || grown <= p.paymentRay) ? 0 : grown - p.paymentRay;
        }
        uint256 cumulative = scheduledPrincipal(p, k, c.balanceRay);
        principalPart = cumulative - c.principalBefore;
        if (p.amortization == ILoanBook.Amortization.Annuity) {
            interestPart = divHalfUp(interestRay, RAY); // rounded once, on the exact balance (see the header)
        } else if (p.amortization == ILoanBook.Amortization.EqualPrincipal) {
            interestPart = periodInterest(p, p.principal - c.principalBefore);
        } else {
            interestPart = periodInterest(p, p.principal);
        }
        c.paid = k;
        c.principalBefore = cumulative;
    }

    /// @notice Interest of a period accrued after `elapsed` of its `interval` seconds, half-up.
    function accruedInterest(uint256 periodInterestAmount, uint256 elapsed, uint256 interval)
        internal
        pure
        returns (uint256)
    {
        if (elapsed >= interval) return periodInterestAmount;
        return divHalfUp(periodInterestAmount * elapsed, interval);
    }

    /// @notice Simple penalty interest on `overdue` for `elapsed` seconds at an annual rate, half-up.
    function penalty(uint256 overdue, uint256 penaltyRateBps, uint256 elapsed) internal pure returns (uint256) {
        return divHalfUp(overdue * penaltyRateBps * elapsed, BPS * YEAR);
    }

    /// @notice One-time late fee on an overdue installment amount, half-up.
    function lateFee(uint256 overdue, uint256 lateFeeBps) internal pure returns (uint256) {
        return divHalfUp(overdue * lateFeeBps, BPS);
    }
}

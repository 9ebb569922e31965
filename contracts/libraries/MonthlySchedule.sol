// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ILoanBook} from "../interfaces/ILoanBook.sol";
import {Calendar} from "./Calendar.sol";
import {LoanMath} from "./LoanMath.sol";

/**
 * @title Monthly schedules
 * @notice Installments due on the disbursement's day of the month, with interest by a day-count
 * convention. Built on LoanMath's Plan and Cursor and its rounding: half-up to the minor unit,
 * principal rounded on the cumulative amount so the parts sum exactly to the principal.
 *
 * Due dates: installment k is due at Calendar.addMonths(disbursedAt, k), the same day of the month
 * and time of day k months after disbursement, or the month's last day when it is shorter.
 *
 * Day counts, as a period's share of the annual rate:
 * - Thirty360: every monthly period is one month of 30 days in a 360-day year, 1/12 of the year,
 *   whatever its real length (Apache Fineract's "30 days in month, 360 days in year": interest of a
 *   regular monthly period is the same every month, FINERACT-2816). Note this is a whole-month count,
 *   not Calendar.thirtyE360 of the due dates: with month-end clamping that would give 28 days for
 *   31 January to 28 February and 32 for 28 February to 31 March. It is LoanMath exactly, with the
 *   interval 365 days / 12 (2,628,000 s), which makes LoanMath's period rate annualRate / 12 with no
 *   rounding: the rate is annualRateBps * interval / 365 days.
 * - Actual365Fixed: a period's interest is its balance * annualRate * actual days / 365.
 *
 * The annuity under Actual365Fixed (periods of 28 to 31 days cannot all have one level payment that
 * charges actual-day interest and repays exactly): the level payment A is the textbook payment at the
 * period rate annualRate / 12, as under Thirty360. The exact balance grows by its interest for the
 * period's actual days and falls by A; each installment's interest is that interest rounded half-up
 * once, and its principal the cumulative rounding of the balance: LoanMath's annuity rule (see its
 * header: interest rounded on the exact balance, so that a prepayment never costs the borrower more),
 * so each installment but the last is within 1.5 minor units of A. The last installment (or an
 * earlier one, should the exact balance be cleared sooner) absorbs the difference: it repays all
 * remaining principal with interest for its own actual days, so it may be a little more or less than A.
 * A re-based plan (Prepayment.rebase) keeps the rate, so its level payment is again at annualRate / 12. References: Apache Fineract keeps
 * a regular monthly period's interest the same under 30/360 and charges the actual days between due
 * dates under actual day counts (FINERACT-2816, "Monthly Repayment Due Date Strategy"; FINERACT-2197 for
 * its progressive, fixed-EMI schedules); Mambu's loan products put the principal and interest
 * remainder into the last repayment (roundingRepaymentScheduleMethod
 * ROUND_PRINCIPAL_AND_INTEREST_REMAINDER_INTO_LAST_REPAYMENT, docs.mambu.com, loan product schema).
 */
library MonthlySchedule {
    /// @notice The interval that makes LoanMath's period rate exactly annualRate / 12 (30/360 month).
    uint256 internal constant MONTH = LoanMath.MONTH;

    /// @notice The constants of a monthly product (`terms.interval` is ignored), with its level payment.
    function plan(ILoanBook.LoanTerms memory terms) internal pure returns (LoanMath.Plan memory p) {
        p = planWithPayment(terms, 0);
        if (p.amortization == ILoanBook.Amortization.Annuity) {
            p.paymentRay = LoanMath.annuityPaymentRay(p.principal, p.periodRateRay, p.installments);
        }
    }

    /// @notice The constants of a monthly product whose annuity payment is already known.
    function planWithPayment(ILoanBook.LoanTerms memory terms, uint256 paymentRay)
        internal
        pure
        returns (LoanMath.Plan memory p)
    {
        p = LoanMath.planWithPayment(terms, paymentRay);
        p.interval = MONTH;
        // MONTH / YEAR is exactly 1/12, so this is annualRateBps * RAY / (10_000 * 12) with one floor.
        p.periodRateRay = Math.mulDiv(uint256(terms.annualRateBps) * MONTH, LoanMath.RAY, LoanMath.BPS * LoanMath.YEAR);
    }

    /// @notice The disbursement date, split into its civil date once: every due date is computed from it.
    struct Anchor {
        uint256 year;
        uint256 month;
        uint256 day;
        uint256 timeOfDay; // seconds after midnight UTC
        // The last due date `next` computed, and its installment: the next period's start, so a walk
        // through the schedule converts one date per installment, not two.
        uint256 lastK;
        uint256 lastDue;
    }

    /// @notice The anchor of a schedule disbursed at `disbursedAt` (do it once per transaction).
    function anchor(uint256 disbursedAt) internal pure returns (Anchor memory a) {
        (a.year, a.month, a.day) = Calendar.civilFromDays(disbursedAt / Calendar.DAY);
        a.timeOfDay = disbursedAt % Calendar.DAY;
        a.lastDue = disbursedAt; // installment 0 is due at disbursement
    }

    /// @notice Due date of installment `k` (1-based; 0 gives the disbursement itself).
    function dueAt(Anchor memory a, uint256 k) internal pure returns (uint256) {
        if (k == a.lastK) return a.lastDue;
        return Calendar.addMonthsToDate(a.year, a.month, a.day, a.timeOfDay, k);
    }

    /**
     * @notice Start of the period after `paid` installments (the due date of installment `paid`), which
     * the anchor remembers: call it after restoring a cursor, and the walk's first `next` needs no
     * second date conversion (a repayment's accrual needs this start anyway).
     */
    function seek(Anchor memory a, uint256 paid) internal pure returns (uint256 periodStart) {
        periodStart = dueAt(a, paid);
        a.lastK = paid;
        a.lastDue = periodStart;
    }

    /**
     * @notice The next installment after `c`, and `c` moved past it (and `a` remembers its due date).
     * @return due due date of installment `c.paid + 1`
     * @return principalPart its principal
     * @return interestPart its interest
     */
    function next(LoanMath.Plan memory p, LoanMath.Cursor memory c, ILoanBook.DayCount dayCount, Anchor memory a)
        internal
        pure
        returns (uint256 due, uint256 principalPart, uint256 interestPart)
    {
        due = dueAt(a, c.paid + 1);
        if (dayCount == ILoanBook.DayCount.Thirty360) {
            (principalPart, interestPart) = LoanMath.next(p, c);
        } else {
            uint256 periodStart = dueAt(a, c.paid);
            // Both ends share the time of day, so this is whole days of seconds: actual days * 1 day.
            (principalPart, interestPart) = nextActual(p, c, due - periodStart);
        }
        a.lastK = c.paid; // `c` has moved past the installment just computed
        a.lastDue = due;
    }

    /**
     * @notice One installment under actual/365 fixed, its period being `length` seconds long (whole days: both
     * ends share the time of day), and `c` moved past it.
     */
    function nextActual(LoanMath.Plan memory p, LoanMath.Cursor memory c, uint256 length)
        internal
        pure
        returns (uint256 principalPart, uint256 interestPart)
    {
        uint256 k = c.paid + 1;
        uint256 cumulative;
        if (p.amortization == ILoanBook.Amortization.Annuity) {
            uint256 rateRay = Math.mulDiv(p.annualRateBps * length, LoanMath.RAY, LoanMath.BPS * LoanMath.YEAR);
            uint256 interestRay = Math.mulDiv(c.balanceRay, rateRay, LoanMath.RAY);
            uint256 grown = c.balanceRay + interestRay;
            // The closing installment (all remaining principal) or a level one; rounded once, on the exact balance.
            c.balanceRay = (k >= p.installments || grown <= p.paymentRay) ? 0 : grown - p.paymentRay;
            cumulative = LoanMath.scheduledPrincipal(p, k, c.balanceRay);
            // A long period at a very high rate can cost more than A (the balance grows): no negative
            // principal part, the unpaid interest stays in the exact balance. (The catalogue refuses a
            // product whose A does not cover a 31-day month's interest, so the book never meets this.)
            if (cumulative < c.principalBefore) cumulative = c.principalBefore;
            interestPart = LoanMath.divHalfUp(interestRay, LoanMath.RAY);
        } else {
            cumulative = LoanMath.scheduledPrincipal(p, k, 0);
            uint256 balance = p.amortization == ILoanBook.Amortization.EqualPrincipal
                ? p.principal - c.principalBefore
                : p.principal;
            interestPart = LoanMath.divHalfUp(balance * p.annualRateBps * length, LoanMath.BPS * LoanMath.YEAR);
        }
        principalPart = cumulative - c.principalBefore;
        c.paid = k;
        c.principalBefore = cumulative;
    }
}

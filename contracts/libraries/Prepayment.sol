// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ILoanBook} from "../interfaces/ILoanBook.sol";
import {LoanMath} from "./LoanMath.sol";

/**
 * @title Early repayment
 * @notice What an amount paid ahead of schedule does: the interest accrued to date on the principal
 * outstanding, then principal, and the rest of the schedule re-based on what is left (Apache Fineract's
 * "advance payments adjustment", Mambu's prepayment recalculation). Integer arithmetic only.
 *
 * A re-based schedule is a LoanMath.Plan of its own: principal = the principal outstanding after the
 * prepayment, installments = how many are left, paymentRay = its exact level payment (annuity). Its
 * installment j is the loan's installment `base + j`, where `base` is the number of installments paid
 * when it was re-based, and keeps that installment's due date. So the book stores three small numbers
 * beside the payment it already has (see `rebase`), and walks the re-based plan with LoanMath.next.
 *
 * Methods (ILoanBook.EarlyRepayment):
 * - ReduceInstallmentAmount: the number of installments left stays. Annuity: a new level payment on the
 *   principal left over the installments left; equal principal: the principal left spread equally over
 *   them; bullet: the bullet is smaller.
 * - ReduceInstallments: the installment amount stays and the schedule gets shorter. Annuity: the fewest
 *   installments whose exact level payment is at most the original one (then that payment, so the last
 *   installment is not a stub); equal principal: the fewest whose principal part is at most the original
 *   one, ceil(left * n / P), the left principal spread equally over them; bullet: a bullet has no
 *   principal installment to drop, so this is ReduceInstallmentAmount. Measured against the loan's
 *   original plan, not the last re-based one, so that two prepayments at one moment leave what their sum
 *   would (a re-based payment is a little under the original: measured against it, each prepayment would
 *   shorten the schedule a little less).
 *
 * The loan book uses `rebase` only: a payment ahead of schedule first pays the current installment (the
 * interest accrued to date, then its principal; covering both pays it ahead of its date), and only what it
 * leaves beyond that is prepaid, re-basing the installments after the current one (LoanBook._payAhead).
 * `prepay` is the earlier rule, kept for this library's own tests (PrepaymentHarness): it applies the whole
 * amount to the interest to date and then principal, and re-bases from the current installment, which
 * stays in the schedule, due on its date, asking only its interest for the rest of the period (the part
 * for the time elapsed counts as settled, `Prepaid.settledInterest`). The book no longer works so: a
 * borrower paying their installment a day early would still owe one the next day.
 *
 * Rounding: LoanMath's, unchanged (a re-based plan is walked with LoanMath.next). Its annuity rule (interest
 * rounded once on the exact balance) is what makes the fairness below exact: see LoanMath's header.
 *
 * Fairness, as tests/contracts/test_prepayment.py (`prepay`) and tests/contracts/test_early_repayment.py
 * (the loan book, around the installment-covering threshold too) check it: for payments a < b at one
 * moment, closing the loan after b (b, then the schedule on time) never costs more than after a, and never
 * less than the payoff; and (`prepay`) a and then b at one moment leave what a + b would.
 *
 * Preconditions (the book's): everything due is settled first, so `elapsed` is within the current period;
 * `amount` is below the payoff (at the payoff the book closes the loan instead).
 */
library Prepayment {
    /// @notice A payment ahead of schedule, split, and the plan it leaves.
    struct Prepaid {
        uint256 interestPart; // interest accrued to date, paid
        uint256 principalPart; // principal prepaid
        uint256 settledInterest; // interest of the current installment counting as settled afterwards
        bool rebased; // principal was prepaid: `plan` is new, re-based at the current installment
        LoanMath.Plan plan; // the plan from the current installment on (unchanged unless `rebased`)
    }

    /**
     * @notice Applies `amount`, paid `elapsed` seconds into the current period (nothing being overdue),
     * to the interest accrued to date and then to principal, and re-bases the plan on what is left.
     * @param original the loan's original plan (ReduceInstallments keeps its installment amount)
     * @param plan the loan's plan now: `original`, or the one a previous prepayment left
     * @param current the cursor of `plan` after the installments already paid (its next is the current one)
     * @param outstanding the principal outstanding before this payment (partly paid installments included)
     * @param interestSettled interest of the current installment already paid or settled
     * @param elapsed seconds since the current period started (at most its interval)
     * @param amount what is paid beyond everything due; below the payoff (the caller closes the loan at it)
     * @param method the product's early-repayment method
     */
    function prepay(
        LoanMath.Plan memory original,
        LoanMath.Plan memory plan,
        LoanMath.Cursor memory current,
        uint256 outstanding,
        uint256 interestSettled,
        uint256 elapsed,
        uint256 amount,
        ILoanBook.EarlyRepayment method
    ) internal pure returns (Prepaid memory r) {
        uint256 accrued = LoanMath.accruedInterest(currentInterest(plan, current), elapsed, plan.interval);
        r.interestPart = accrued > interestSettled ? Math.min(amount, accrued - interestSettled) : 0;
        r.principalPart = amount - r.interestPart;
        r.plan = plan;
        if (r.principalPart == 0) {
            r.settledInterest = interestSettled + r.interestPart;
            return r;
        }
        r.rebased = true;
        r.plan = rebase(original, outstanding - r.principalPart, plan.installments - current.paid, method);
        uint256 first = currentInterest(r.plan, LoanMath.start(r.plan));
        // Interest paid beyond the accrual (a partial payment of the installment earlier on) stays settled.
        uint256 ahead = interestSettled + r.interestPart - accrued;
        r.settledInterest = Math.min(first, LoanMath.accruedInterest(first, elapsed, plan.interval) + ahead);
    }

    /**
     * @notice The plan of `remaining` installments left after a prepayment leaves `outstanding` principal.
     * @dev The book stores `outstanding`, the returned `installments` and the installment count it was
     * re-based at, and overwrites its stored payment with the returned `paymentRay` (annuity).
     * @param original the loan's original plan: its rate, interval, amortization and (ReduceInstallments)
     * the installment amount to keep
     */
    function rebase(
        LoanMath.Plan memory original,
        uint256 outstanding,
        uint256 remaining,
        ILoanBook.EarlyRepayment method
    ) internal pure returns (LoanMath.Plan memory q) {
        q = LoanMath.Plan({
            principal: outstanding,
            installments: remaining,
            interval: original.interval,
            annualRateBps: original.annualRateBps,
            amortization: original.amortization,
            periodRateRay: original.periodRateRay,
            paymentRay: 0
        });
        if (method == ILoanBook.EarlyRepayment.ReduceInstallments) {
            q.installments = _shortestTerm(original, outstanding, remaining);
        }
        if (q.amortization == ILoanBook.Amortization.Annuity) {
            q.paymentRay = LoanMath.annuityPaymentRay(outstanding, q.periodRateRay, q.installments);
        }
    }

    /// @notice The interest of the installment after `c`, `c` left where it is.
    function currentInterest(LoanMath.Plan memory p, LoanMath.Cursor memory c)
        internal
        pure
        returns (uint256 interestPart)
    {
        LoanMath.Cursor memory walk = LoanMath.Cursor(c.paid, c.principalBefore, c.balanceRay);
        (, interestPart) = LoanMath.next(p, walk);
    }

    /**
     * @dev ReduceInstallments: the fewest installments, at most `remaining` and at least one, that keep the
     * installment amount within the original one.
     */
    function _shortestTerm(LoanMath.Plan memory original, uint256 outstanding, uint256 remaining)
        private
        pure
        returns (uint256)
    {
        if (original.amortization == ILoanBook.Amortization.EqualPrincipal) {
            // Principal part at most principal / installments: n >= outstanding * installments / principal.
            return Math.max(1, Math.min(remaining, Math.ceilDiv(outstanding * original.installments, original.principal)));
        }
        if (original.amortization == ILoanBook.Amortization.Bullet) return remaining;
        // The exact payment falls as the term grows: binary search for the first term within the payment.
        // `remaining` stands when none is (rounding can put the unchanged balance a hair above it).
        uint256 lo = 1;
        uint256 hi = remaining;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (LoanMath.annuityPaymentRay(outstanding, original.periodRateRay, mid) <= original.paymentRay) hi = mid;
            else lo = mid + 1;
        }
        return lo;
    }
}

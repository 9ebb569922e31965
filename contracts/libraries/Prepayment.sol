// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ILoanBook} from "../interfaces/ILoanBook.sol";
import {LoanMath} from "./LoanMath.sol";

/**
 * @title Early repayment
 * @notice The schedule left when principal is prepaid, re-based by the product's method (Apache Fineract's
 * "advance payments adjustment", Mambu's prepayment recalculation). Integer arithmetic only.
 *
 * What the loan book does with it: a payment beyond what is due pays the current installment ahead of its
 * date (the interest accrued to date on the principal owed, then its principal), and what it leaves prepays
 * principal; the installments after the current one are then `rebase`'s plan of the principal left over the
 * installments left, keeping their due dates. The rule in full, with the interest of the rest of the period
 * carried into the next installment, is documented at LoanBook._settleInstallments, _payCurrent and
 * _payAhead, LoanBookBase._interestAhead, and in docs/contracts.md ("Early repayment"). `currentInterest`
 * is the interest of the installment the book is on, in the original plan or a re-based one.
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
 *   original plan, not the last re-based one: a re-based payment is a little under the original, and
 *   measured against it each further prepayment would shorten the schedule a little less.
 *
 * Rounding: LoanMath's, one rule for original and re-based plans alike (a re-based plan is walked with
 * LoanMath.next; annuity interest is rounded once on the exact balance, see LoanMath's header). So a plan
 * re-based on the original principal over all the installments is the original plan, and re-basing on one
 * unit less principal leaves at least that unit less to pay: the book's fairness (paying more never costs
 * more, tests/contracts/test_early_repayment.py) rests on it.
 */
library Prepayment {
    /**
     * @notice The plan of `remaining` installments left after a prepayment leaves `outstanding` principal.
     * @dev The book stores `outstanding`, the returned `installments` and the installment count it was
     * re-based at, and overwrites its stored payment with the returned `paymentRay` (annuity).
     * @param original the loan's original plan: its rate, interval, amortization and (ReduceInstallments)
     * the installment amount to keep
     * @param outstanding the principal left, at most the original principal
     * @param remaining the installments left, at least one
     * @param method the product's early-repayment method
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

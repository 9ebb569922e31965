// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ILoanBook} from "../interfaces/ILoanBook.sol";
import {IProductCatalog} from "../interfaces/IProductCatalog.sol";
import {LoanMath} from "../libraries/LoanMath.sol";
import {Prepayment} from "../libraries/Prepayment.sol";

/**
 * @title Early-repayment test harness
 * @notice Exposes Prepayment as external functions for the tests, on a loan state the tests describe:
 * its terms, how many installments were paid on schedule, and how far into the current period a payment
 * is made (nothing else paid or overdue). Test-only: deployed by tests/contracts/test_prepayment.py, never
 * by ledger.deploy.
 */
contract PrepaymentHarness {
    /// @notice A payment made ahead of schedule and what it leaves.
    struct Outcome {
        uint256 payoff; // what closes the loan at that moment: interest accrued to date plus principal
        bool closed; // the payment reached the payoff (the loan closes; nothing more is asked)
        uint256 interestPart;
        uint256 principalPart;
        uint256 settledInterest; // of the current installment, after the payment
        bool rebased;
        uint256 installments; // of the plan from the current installment on
        uint256 paymentRay; // its exact level payment (annuity)
        uint256 stillAsked; // what that plan then asks, on schedule: its installments less settledInterest
        ILoanBook.Installment[] schedule; // its installments; dueAt is the loan's installment number
        uint256 gasUsed; // of Prepayment.prepay
    }

    /**
     * @notice Pays `amount` `elapsed` seconds into installment `paid + 1`'s period of a loan with `terms`.
     * @param onRebasedPlan the loan walks its schedule as a re-based plan (Prepayment.next) from the start,
     * as one re-based at disbursement would; otherwise on LoanMath's original plan
     */
    function pay(
        ILoanBook.LoanTerms memory terms,
        uint256 paid,
        uint256 elapsed,
        uint256 amount,
        IProductCatalog.EarlyRepayment method,
        bool onRebasedPlan
    ) external view returns (Outcome memory o) {
        LoanMath.Plan memory plan = LoanMath.plan(terms);
        LoanMath.Cursor memory c = LoanMath.start(plan);
        for (uint256 k = 0; k < paid; ++k) {
            if (onRebasedPlan) Prepayment.next(plan, c);
            else LoanMath.next(plan, c);
        }
        uint256 outstanding = plan.principal - c.principalBefore;
        uint256 accrued =
            LoanMath.accruedInterest(Prepayment.currentInterest(plan, c, onRebasedPlan), elapsed, plan.interval);
        o.payoff = accrued + outstanding;
        if (amount >= o.payoff) {
            o.closed = true;
            o.interestPart = accrued;
            o.principalPart = outstanding;
            o.schedule = new ILoanBook.Installment[](0);
            return o;
        }
        uint256 before = gasleft();
        Prepayment.Prepaid memory r =
            Prepayment.prepay(plan, c, onRebasedPlan, outstanding, 0, elapsed, amount, method);
        o.gasUsed = before - gasleft();
        o.interestPart = r.interestPart;
        o.principalPart = r.principalPart;
        o.settledInterest = r.settledInterest;
        o.rebased = r.rebased;
        // The plan from the current installment on, and the cursor on it.
        LoanMath.Cursor memory at = r.rebased ? LoanMath.start(r.plan) : c;
        bool walksRebased = r.rebased || onRebasedPlan;
        o.installments = r.plan.installments - at.paid;
        o.paymentRay = r.plan.paymentRay;
        o.schedule = new ILoanBook.Installment[](o.installments);
        for (uint256 k = 0; k < o.installments; ++k) {
            (uint256 p, uint256 i) = walksRebased ? Prepayment.next(r.plan, at) : LoanMath.next(r.plan, at);
            o.schedule[k] = ILoanBook.Installment(uint40(paid + k + 1), uint96(p), uint96(i));
            o.stillAsked += p + i;
        }
        o.stillAsked -= o.settledInterest;
    }

    /// @notice Prepayment.rebase of `terms`' original plan.
    function rebase(
        ILoanBook.LoanTerms memory terms,
        uint256 outstanding,
        uint256 remaining,
        IProductCatalog.EarlyRepayment method
    ) external pure returns (uint256 installments, uint256 paymentRay) {
        LoanMath.Plan memory q = Prepayment.rebase(LoanMath.plan(terms), outstanding, remaining, method);
        return (q.installments, q.paymentRay);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ILoanBook} from "../interfaces/ILoanBook.sol";
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
    /// @notice Payments made ahead of schedule and what they leave.
    struct Outcome {
        uint256 payoff; // what closed the loan before the payments: interest accrued to date plus principal
        bool closed; // a payment reached the payoff then (the loan closes; nothing more is asked)
        uint256 interestPart;
        uint256 principalPart;
        uint256 settledInterest; // of the current installment, after the payments
        bool rebased;
        uint256 installments; // of the plan from the current installment on
        uint256 paymentRay; // its exact level payment (annuity)
        uint256 stillAsked; // what that plan then asks, on schedule: its installments less settledInterest
        ILoanBook.Installment[] schedule; // its installments; dueAt is the loan's installment number
        uint256 gasUsed; // of the last Prepayment.prepay
    }

    /// @dev Where the loan stands between payments made at one moment.
    struct State {
        LoanMath.Plan plan;
        LoanMath.Cursor cursor;
        uint256 outstanding;
        uint256 settled;
    }

    /**
     * @notice Pays `amounts` one after the other, all `elapsed` seconds into installment `paid + 1`'s period
     * of a loan with `terms`; the outcome sums their parts and describes the plan the last one leaves.
     */
    function pay(
        ILoanBook.LoanTerms memory terms,
        uint256 paid,
        uint256 elapsed,
        uint256[] memory amounts,
        ILoanBook.EarlyRepayment method
    ) external view returns (Outcome memory o) {
        LoanMath.Plan memory original = LoanMath.plan(terms);
        State memory s;
        s.plan = original;
        s.cursor = LoanMath.start(original);
        for (uint256 k = 0; k < paid; ++k) {
            LoanMath.next(original, s.cursor);
        }
        s.outstanding = original.principal - s.cursor.principalBefore;
        o.payoff = _payoff(s, elapsed);
        o.schedule = new ILoanBook.Installment[](0);
        for (uint256 k = 0; k < amounts.length; ++k) {
            uint256 payoff = _payoff(s, elapsed);
            if (amounts[k] >= payoff) {
                o.closed = true;
                o.interestPart += payoff - s.outstanding;
                o.principalPart += s.outstanding;
                return o;
            }
            uint256 before = gasleft();
            Prepayment.Prepaid memory r = Prepayment.prepay(
                original, s.plan, s.cursor, s.outstanding, s.settled, elapsed, amounts[k], method
            );
            o.gasUsed = before - gasleft();
            o.interestPart += r.interestPart;
            o.principalPart += r.principalPart;
            o.rebased = o.rebased || r.rebased;
            s.settled = r.settledInterest;
            s.outstanding -= r.principalPart;
            if (r.rebased) {
                s.plan = r.plan;
                s.cursor = LoanMath.start(r.plan);
            }
        }
        o.settledInterest = s.settled;
        o.installments = s.plan.installments - s.cursor.paid;
        o.paymentRay = s.plan.paymentRay;
        o.schedule = new ILoanBook.Installment[](o.installments);
        for (uint256 k = 0; k < o.installments; ++k) {
            (uint256 p, uint256 i) = LoanMath.next(s.plan, s.cursor);
            o.schedule[k] = ILoanBook.Installment(uint40(paid + k + 1), uint96(p), uint96(i));
            o.stillAsked += p + i;
        }
        o.stillAsked -= o.settledInterest;
    }

    /**
     * @notice Prepayment.prepay on `terms`' original plan after `paid` installments, with `interestSettled` of
     * the current installment's interest already paid (by a partial payment the old allocation made).
     */
    function prepayWithInterestSettled(
        ILoanBook.LoanTerms memory terms,
        uint256 paid,
        uint256 elapsed,
        uint256 interestSettled,
        uint256 amount,
        ILoanBook.EarlyRepayment method
    ) external pure returns (uint256 interestPart, uint256 principalPart, uint256 settledInterest, uint256 firstInterest) {
        LoanMath.Plan memory original = LoanMath.plan(terms);
        LoanMath.Cursor memory c = LoanMath.start(original);
        for (uint256 k = 0; k < paid; ++k) {
            LoanMath.next(original, c);
        }
        Prepayment.Prepaid memory r = Prepayment.prepay(
            original, original, c, original.principal - c.principalBefore, interestSettled, elapsed, amount, method
        );
        firstInterest = Prepayment.currentInterest(r.plan, r.rebased ? LoanMath.start(r.plan) : c);
        return (r.interestPart, r.principalPart, r.settledInterest, firstInterest);
    }

    /// @notice Prepayment.rebase of `terms`' original plan.
    function rebase(
        ILoanBook.LoanTerms memory terms,
        uint256 outstanding,
        uint256 remaining,
        ILoanBook.EarlyRepayment method
    ) external pure returns (uint256 installments, uint256 paymentRay) {
        LoanMath.Plan memory q = Prepayment.rebase(LoanMath.plan(terms), outstanding, remaining, method);
        return (q.installments, q.paymentRay);
    }

    /// @dev What closes the loan now: the current period's interest to date not yet settled, and principal.
    function _payoff(State memory s, uint256 elapsed) private pure returns (uint256) {
        uint256 accrued = LoanMath.accruedInterest(
            Prepayment.currentInterest(s.plan, s.cursor), elapsed, s.plan.interval
        );
        return (accrued > s.settled ? accrued - s.settled : 0) + s.outstanding;
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ILoanBook} from "../interfaces/ILoanBook.sol";
import {LoanMath} from "../libraries/LoanMath.sol";
import {Prepayment} from "../libraries/Prepayment.sol";

/**
 * @title Early-repayment test harness
 * @notice Exposes Prepayment as external functions for the tests, on the plan of a loan with the terms the
 * tests give. Test-only: deployed by tests/contracts/test_prepayment.py, never by ledger.deploy.
 */
contract PrepaymentHarness {
    /**
     * @notice Prepayment.rebase of `terms`' original plan: `outstanding` principal left over `remaining`
     * installments, and the installments of the plan it gives, walked with LoanMath.next (dueAt: their
     * number in that plan, from 1).
     */
    function rebase(
        ILoanBook.LoanTerms memory terms,
        uint256 outstanding,
        uint256 remaining,
        ILoanBook.EarlyRepayment method
    ) external pure returns (uint256 installments, uint256 paymentRay, ILoanBook.Installment[] memory schedule) {
        LoanMath.Plan memory q = Prepayment.rebase(LoanMath.plan(terms), outstanding, remaining, method);
        LoanMath.Cursor memory c = LoanMath.start(q);
        schedule = new ILoanBook.Installment[](q.installments);
        for (uint256 k = 0; k < q.installments; ++k) {
            (uint256 p, uint256 i) = LoanMath.next(q, c);
            schedule[k] = ILoanBook.Installment(uint40(k + 1), uint96(p), uint96(i));
        }
        return (q.installments, q.paymentRay, schedule);
    }

    /**
     * @notice Prepayment.currentInterest on the plan `rebase` gives, after `paid` of its installments, and
     * the interest of the installment LoanMath.next then walks past: the same one, as the cursor stays.
     */
    function currentInterest(
        ILoanBook.LoanTerms memory terms,
        uint256 outstanding,
        uint256 remaining,
        ILoanBook.EarlyRepayment method,
        uint256 paid
    ) external pure returns (uint256 interest, uint256 walkedInterest) {
        LoanMath.Plan memory q = Prepayment.rebase(LoanMath.plan(terms), outstanding, remaining, method);
        LoanMath.Cursor memory c = LoanMath.start(q);
        for (uint256 k = 0; k < paid; ++k) {
            LoanMath.next(q, c);
        }
        interest = Prepayment.currentInterest(q, c);
        (, walkedInterest) = LoanMath.next(q, c);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ILoanBook} from "../interfaces/ILoanBook.sol";
import {Calendar} from "../libraries/Calendar.sol";
import {LoanMath} from "../libraries/LoanMath.sol";
import {MonthlySchedule} from "../libraries/MonthlySchedule.sol";

/**
 * @title Calendar test harness
 * @notice Exposes Calendar and MonthlySchedule as external functions for the tests, and measures their
 * gas. Test-only: deployed by tests/contracts/test_calendar.py, never by ledger.deploy.
 */
contract CalendarHarness {
    /// @notice Calendar.daysFromCivil.
    function daysFromCivil(uint256 year, uint256 month, uint256 day) external pure returns (uint256) {
        return Calendar.daysFromCivil(year, month, day);
    }

    /// @notice Calendar.civilFromDays.
    function civilFromDays(uint256 daysSinceEpoch) external pure returns (uint256, uint256, uint256) {
        return Calendar.civilFromDays(daysSinceEpoch);
    }

    /// @notice Calendar.daysInMonth.
    function daysInMonth(uint256 year, uint256 month) external pure returns (uint256) {
        return Calendar.daysInMonth(year, month);
    }

    /// @notice Calendar.addMonths.
    function addMonths(uint256 timestamp, uint256 k) external pure returns (uint256) {
        return Calendar.addMonths(timestamp, k);
    }

    /// @notice Calendar.addMonths for k = 1..n, each from `timestamp`.
    function addMonthsSeries(uint256 timestamp, uint256 n) external pure returns (uint256[] memory dates) {
        dates = new uint256[](n);
        for (uint256 k = 1; k <= n; ++k) {
            dates[k - 1] = Calendar.addMonths(timestamp, k);
        }
    }

    /// @notice Calendar.daysBetween.
    function daysBetween(uint256 start, uint256 end) external pure returns (uint256) {
        return Calendar.daysBetween(start, end);
    }

    /// @notice Calendar.actual365Fixed.
    function actual365Fixed(uint256 start, uint256 end) external pure returns (uint256, uint256) {
        return Calendar.actual365Fixed(start, end);
    }

    /// @notice Calendar.thirtyE360.
    function thirtyE360(uint256 start, uint256 end) external pure returns (uint256, uint256) {
        return Calendar.thirtyE360(start, end);
    }

    /// @notice The whole monthly schedule of `terms` disbursed at `disbursedAt`, due dates absolute.
    function schedule(ILoanBook.LoanTerms memory terms, ILoanBook.DayCount dayCount, uint256 disbursedAt)
        external
        pure
        returns (ILoanBook.Installment[] memory items)
    {
        LoanMath.Plan memory p = MonthlySchedule.plan(terms);
        LoanMath.Cursor memory c = LoanMath.start(p);
        MonthlySchedule.Anchor memory a = MonthlySchedule.anchor(disbursedAt);
        items = new ILoanBook.Installment[](p.installments);
        for (uint256 k = 0; k < p.installments; ++k) {
            (uint256 due, uint256 principalPart, uint256 interestPart) = MonthlySchedule.next(p, c, dayCount, a);
            items[k] = ILoanBook.Installment(uint40(due), uint96(principalPart), uint96(interestPart));
        }
    }

    /**
     * @notice Installment `restoreTo + 1`, computed after walking the anchor on to `walkTo`: the anchor's
     * remembered due date must not leak into a cursor restored elsewhere.
     */
    function installmentAfterRestore(
        ILoanBook.LoanTerms memory terms,
        ILoanBook.DayCount dayCount,
        uint256 disbursedAt,
        uint256 walkTo,
        uint256 restoreTo
    ) external pure returns (uint256 due, uint256 principalPart, uint256 interestPart) {
        LoanMath.Plan memory p = MonthlySchedule.plan(terms);
        // The stored balance after `restoreTo` installments, from a walk with its own anchor.
        LoanMath.Cursor memory stored = LoanMath.start(p);
        MonthlySchedule.Anchor memory own = MonthlySchedule.anchor(disbursedAt);
        for (uint256 i = 0; i < restoreTo; ++i) {
            MonthlySchedule.next(p, stored, dayCount, own);
        }
        LoanMath.Cursor memory c = LoanMath.start(p);
        MonthlySchedule.Anchor memory a = MonthlySchedule.anchor(disbursedAt);
        for (uint256 i = 0; i < walkTo; ++i) {
            MonthlySchedule.next(p, c, dayCount, a);
        }
        return MonthlySchedule.next(p, LoanMath.restore(p, restoreTo, stored.balanceRay), dayCount, a);
    }

    /// @notice Gas of one Calendar.addMonths, measured around the call.
    function addMonthsGas(uint256 timestamp, uint256 k) external view returns (uint256 result, uint256 gasUsed) {
        uint256 before = gasleft();
        result = Calendar.addMonths(timestamp, k);
        gasUsed = before - gasleft();
    }

    /**
     * @notice Gas of computing installment `k` the way a repayment would: the cursor restored from the
     * stored exact balance (walked here, unmeasured), then MonthlySchedule.next. `firstGas` is the
     * first installment of a transaction (a fresh anchor: both ends of the period converted), `nextGas`
     * one further on in the same walk (the period's start remembered by the anchor). With `seekFirst`,
     * `firstGas` includes MonthlySchedule.seek before it. The anchor itself, once a transaction, is
     * `anchorGas`.
     */
    function installmentGas(
        ILoanBook.LoanTerms memory terms,
        ILoanBook.DayCount dayCount,
        uint256 disbursedAt,
        uint256 k,
        bool seekFirst
    ) external view returns (uint256 principalPart, uint256 interestPart, uint256 firstGas, uint256 nextGas, uint256 anchorGas) {
        LoanMath.Plan memory p = MonthlySchedule.plan(terms);
        LoanMath.Cursor memory c = LoanMath.start(p);
        MonthlySchedule.Anchor memory walked = MonthlySchedule.anchor(disbursedAt);
        for (uint256 i = 1; i < k; ++i) {
            MonthlySchedule.next(p, c, dayCount, walked);
        }
        LoanMath.Cursor memory restored = LoanMath.restore(p, c.paid, c.balanceRay);
        uint256 before = gasleft();
        MonthlySchedule.Anchor memory a = MonthlySchedule.anchor(disbursedAt);
        anchorGas = before - gasleft();
        before = gasleft();
        if (seekFirst) MonthlySchedule.seek(a, restored.paid);
        (, principalPart, interestPart) = MonthlySchedule.next(p, restored, dayCount, a);
        firstGas = before - gasleft();
        before = gasleft();
        MonthlySchedule.next(p, restored, dayCount, a);
        nextGas = before - gasleft();
    }

    /// @notice Gas of one LoanMath.next, for comparison: what an installment costs today.
    function loanMathInstallmentGas(ILoanBook.LoanTerms memory terms, uint256 k) external view returns (uint256 gasUsed) {
        LoanMath.Plan memory p = LoanMath.plan(terms);
        LoanMath.Cursor memory c = LoanMath.start(p);
        for (uint256 i = 1; i < k; ++i) {
            LoanMath.next(p, c);
        }
        LoanMath.Cursor memory restored = LoanMath.restore(p, c.paid, c.balanceRay);
        uint256 before = gasleft();
        LoanMath.next(p, restored);
        gasUsed = before - gasleft();
    }
}

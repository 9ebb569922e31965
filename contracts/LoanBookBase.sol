// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ILoanBook} from "./interfaces/ILoanBook.sol";
import {LoanMath} from "./libraries/LoanMath.sol";
import {Calendar} from "./libraries/Calendar.sol";
import {MonthlySchedule} from "./libraries/MonthlySchedule.sol";
import {LoanLedgerRoles} from "./LoanLedgerRoles.sol";

/**
 * @title Loan book storage and shared rules
 * @notice The loan book's state, and the rules both its halves apply: LoanBook (the lending path) and
 * LoanBookExtension (cancellation, money back, default, views), which LoanBook runs on this same storage by
 * delegatecall. One layout, inherited by both, in the same order: neither declares state of its own.
 *
 * The book is split because all of it no longer fits one contract (EIP-170's 24,576 bytes). Compound's Comet
 * does the same with CometExt: the paths every loan takes stay in the main contract, where a call costs
 * nothing extra; the rest costs a delegatecall (about 2,700 gas).
 */
abstract contract LoanBookBase is ILoanBook, LoanLedgerRoles, EIP712, Nonces {
    using SafeCast for uint256;

    bytes32 internal constant _LOAN_APPLICATION_TYPEHASH = keccak256(
        "LoanApplication(address borrower,uint256 productId,uint32 productVersion,uint96 principal,uint16 installments,uint256 nonce,uint256 deadline)"
    );
    bytes32 internal constant _CANCEL_LOAN_TYPEHASH =
        keccak256("CancelLoan(uint256 loanId,uint256 nonce,uint256 deadline)");

    // Entry kinds, hashed into each entry so that a payout and a repayment can never be taken for each other.
    uint8 internal constant _DISBURSEMENT = 1;
    uint8 internal constant _REPAYMENT = 2;
    bytes32 internal constant _REVERSED = bytes32(uint256(1)); // an entry undone by a reversal: used, never again
    bytes32 internal constant _FINAL = bytes32(uint256(2)); // a reference that cannot be reversed (refunds, reversals)

    /// @dev Packed so that a repayment without charges reads five slots and rewrites one of the record
    /// (slot 3) besides the annuity balance, and never turns a zero slot non-zero (20,000 gas each):
    /// disbursement sets `accruedAt` in slot 3 and `disbursedAt` in slot 4 before any repayment.
    /// The narrow fields hold what they must: principal is capped at _MAX_PRINCIPAL (< 2^50), a rate
    /// at the uint16 cap over the longest interval is under 6.6 times the principal a period, so the
    /// interest of 720 installments and late fees on all of them stay under 4.8e18 (< 2^64) and the
    /// exact annuity payment (at most principal * (1 + rate) * 1e27) under 2^143. SafeCast reverts
    /// rather than wrap if anything ever outgrows its field.
    struct LoanRecord {
        LoanTerms terms; // slots 0-1: a repayment reads slot 0 only
        address borrower; // slot 2
        LoanStatus status;
        uint64 penaltyUnpaid;
        // A monthly loan charging the actual days of each month (terms.dayCount Actual365Fixed), copied here at
        // application: a repayment reads this slot anyway, and the terms' second slot would cost it 2,100 gas.
        bool actualDays;
        // The product let the automatic policy approve it (its flag, and the principal within its limit) at
        // application: approval reads this slot anyway.
        bool autoApprovable;
        uint40 accruedAt; // slot 3: charges are accrued up to here
        uint16 paidInstallments; // installments fully paid
        // Interest of installment paidInstallments + 1 paid or settled: it asks its scheduled interest less this.
        // Negative: interest carried into it, the rest of the previous period on the principal left when that
        // period's installment was paid ahead of its date (see LoanBook._settleInstallments).
        int64 currentInterestSettled;
        uint64 principalRepaid;
        uint64 interestPaid;
        uint40 disbursedAt; // slot 4
        uint64 lateFeeUnpaid;
        uint152 paymentRay; // exact annuity payment, RAY-scaled: fixed at application, replaced by a re-base
        uint128 lateFeePaid; // slot 5
        uint128 penaltyPaid;
        uint160 balanceRay; // slot 6: exact scheduled annuity balance after paidInstallments (< 2^143)
        // A prepayment re-bases the plan (libraries/Prepayment.sol): installment rebasedAt + j of the loan is
        // installment j of a plan of rebasedPrincipal over rebasedInstallments, whose exact payment replaces
        // paymentRay. rebasedInstallments = 0: never re-based (or re-based, then undone by a reversal).
        uint16 rebasedAt; // installments paid when the plan was last re-based
        uint16 rebasedInstallments;
        uint64 rebasedPrincipal;
        uint96 creditBalance; // slot 7, written only by overpayments, refunds and recoveries
        uint96 recovered;
    }

    struct Position {
        uint256 newLateFee;
        uint256 newPenalty;
        uint256 dueInterest;
        uint256 duePrincipal;
        uint256 accruedInterest;
        uint256 oldestDueAt;
    }

    /**
     * @dev Where a loan's due dates come from: installment k is due `k * interval` seconds after disbursement,
     * or, for a monthly loan (interval 0 in its terms), on the disbursement's day of the month k months later
     * (Calendar.addMonths of the disbursement: anchored on it, never chained month to month). Built once per call
     * from fields a repayment reads anyway (slots 0 and 4): telling the two apart costs no storage read. A
     * monthly loan's disbursement is split into its civil date once, and the last two dates computed are kept:
     * a repayment asks for the same one or two several times (about 200 gas each).
     */
    struct DueDates {
        uint256 startsAt; // the disbursement (installment 0)
        uint256 interval; // 0: monthly; the rest is for monthly loans only
        bool actualDays; // interest on each month's actual days / 365 (else 30/360: a twelfth of the year)
        uint256 year;
        uint256 month;
        uint256 day;
        uint256 timeOfDay; // seconds after midnight UTC
        uint256 lastNumber; // the last date computed, and the one before it
        uint256 lastDue;
        uint256 otherNumber;
        uint256 otherDue;
    }

    uint256 internal _loanCount;
    mapping(uint256 loanId => LoanRecord) internal _loans;
    mapping(bytes32 paymentRef => bytes32 entry) internal _entries;
    mapping(address borrower => mapping(bytes3 currency => uint256)) internal _exposure;
    /// @dev Above this principal an approval needs FourEyes (ILoanBookExtension.payoutThreshold).
    uint96 internal _payoutThreshold;

    /// @dev A loan's hardship reschedule offer (LoanBookExtension.offerReschedule): one open at a time, a new one
    /// replaces it; `offerId` counts the loan's offers, so a borrower's acceptance names the one they saw.
    struct RescheduleOffer {
        uint16 installments;
        uint40 expiresAt;
        uint32 offerId;
        bool open;
        uint16 accepted; // reschedules accepted on the loan
    }

    /// @dev Appended after every earlier field: the layout both halves share only grows at its end.
    mapping(uint256 loanId => RescheduleOffer) internal _rescheduleOffers;

    /// @notice The automatic approval policy: approves only loans their product made autoApprovable.
    bytes32 public constant POLICY_ROLE = keccak256("POLICY_ROLE");

    /**
     * @param admin receives DEFAULT_ADMIN_ROLE (the extension's own, never used, storage: address(0))
     * @param trustedForwarder_ the LoanLedgerForwarder; the extension must trust the book's, since its code reads
     * the signer from the calls the book delegates to it (an immutable: part of the code, not of the storage)
     */
    constructor(address admin, address trustedForwarder_)
        LoanLedgerRoles(admin, trustedForwarder_)
        EIP712("LoanLedger LoanBook", "1")
    {}

    /// @dev What a written-off borrower still owes at `asOf`: the payoff the schedule gives, less recoveries.
    function _stillOwed(LoanRecord storage loan, uint40 asOf) internal view returns (uint256) {
        Position memory pos =
            _position(loan, _planOf(loan), _dueDatesOf(loan), asOf > loan.accruedAt ? asOf : loan.accruedAt);
        uint256 payoff = _payoff(loan, pos);
        return payoff > loan.recovered ? payoff - loan.recovered : 0;
    }

    /**
     * @dev Walks unpaid installments due by `asOf` (and the first one not yet due) without changing
     * state. Charges accrue on each installment's amount unpaid since the last accrual, which is
     * constant in between because only confirmations change it.
     */
    function _position(LoanRecord storage loan, LoanMath.Plan memory plan, DueDates memory dates, uint256 asOf)
        internal
        view
        returns (Position memory pos)
    {
        uint256 base = loan.rebasedAt;
        LoanMath.Cursor memory cursor = _cursorOf(loan, plan, base);
        int256 settled = loan.currentInterestSettled;
        uint256 paidPrincipal = _principalPaidOnCurrent(loan, plan, cursor);
        uint256 accruedAt = loan.accruedAt;
        uint256 grace = loan.terms.gracePeriod;
        while (cursor.paid < plan.installments) {
            // Installment k of the plan is the loan's installment base + k, due on that one's date.
            uint256 number = base + cursor.paid + 1;
            uint256 dueAt = _dueAt(dates, number);
            uint256 scheduled = plan.principal - cursor.principalBefore;
            (uint256 p, uint256 i) = _next(plan, cursor, dates, number);
            uint256 asked = _interestAsked(i, settled);
            if (pos.oldestDueAt == 0) pos.oldestDueAt = dueAt;
            if (dueAt > asOf) {
                // Accrued to date: what it asks less the interest of the time still to run on the principal owed.
                uint256 ahead = _interestAhead(plan, i, scheduled, scheduled - paidPrincipal, dates, number, asOf);
                pos.accruedInterest = asked > ahead ? asked - ahead : 0;
                break;
            }
            uint256 unpaid = asked + p - paidPrincipal;
            pos.dueInterest += asked;
            pos.duePrincipal += p - paidPrincipal;
            uint256 lateFrom = dueAt + grace;
            if (lateFrom < asOf) {
                if (lateFrom >= accruedAt) pos.newLateFee += LoanMath.lateFee(unpaid, loan.terms.lateFeeBps);
                uint256 from = lateFrom > accruedAt ? lateFrom : accruedAt;
                pos.newPenalty += LoanMath.penalty(unpaid, loan.terms.penaltyRateBps, asOf - from);
            }
            settled = 0;
            paidPrincipal = 0;
        }
    }

    /// @dev The interest an installment asks: its scheduled interest less what is settled (see LoanRecord).
    function _interestAsked(uint256 interest, int256 settled) internal pure returns (uint256) {
        int256 asked = int256(interest) - settled;
        return asked > 0 ? uint256(asked) : 0;
    }

    /**
     * @dev Interest from `asOf` to the due date of the loan's installment `number`, not yet due, on
     * `outstanding`, the principal still owed on the loan before that installment is paid: for each whole
     * period, and the rest of the one `asOf` is in (the complement of LoanMath.accruedInterest, so that with
     * nothing paid ahead the interest accrued to date is exactly the payoff's). A period's interest on
     * `outstanding` is the installment's `interest` while `scheduled`, the principal the schedule owes over its
     * period, is all owed, and the period interest on `outstanding`, never above `interest`, once some is paid
     * ahead: monotone in `outstanding`, so that paying more principal ahead never leaves more interest to pay.
     * A period accrues over its real length, from the previous due date to its own: a monthly one 28 to 31 days.
     */
    function _interestAhead(
        LoanMath.Plan memory plan,
        uint256 interest,
        uint256 scheduled,
        uint256 outstanding,
        DueDates memory dates,
        uint256 number,
        uint256 asOf
    ) internal pure returns (uint256) {
        uint256 end = _dueAt(dates, number);
        if (end <= asOf) return 0;
        uint256 perPeriod = outstanding == scheduled
            ? interest
            : _min(interest, _periodInterest(plan, dates, outstanding, number));
        uint256 interval = dates.interval;
        if (interval != 0) {
            uint256 whole = (end - asOf - 1) / interval; // whole periods after the one asOf is in
            uint256 intoPeriod = interval * (whole + 1) - (end - asOf); // seconds of that one elapsed, < interval
            return whole * perPeriod + perPeriod - LoanMath.accruedInterest(perPeriod, intoPeriod, interval);
        }
        uint256 start = _dueAt(dates, number - 1);
        if (start <= asOf) return perPeriod - LoanMath.accruedInterest(perPeriod, asOf - start, end - start);
        // Paid ahead of earlier dates too: each earlier period asks its own interest on `outstanding` (its actual
        // days', or the same twelfth of a year), back to the one holding asOf. Installment 0 is due at
        // disbursement, at or before any asOf, so the walk stops there at the latest.
        uint256 ahead = perPeriod;
        while (true) {
            end = start;
            --number;
            start = _dueAt(dates, number - 1);
            uint256 earlier = dates.actualDays ? _periodInterest(plan, dates, outstanding, number) : perPeriod;
            if (start <= asOf) return ahead + earlier - LoanMath.accruedInterest(earlier, asOf - start, end - start);
            ahead += earlier;
        }
    }

    /**
     * @dev The next installment of `plan` after `cursor`, the loan's installment `number`, and `cursor` moved past
     * it: LoanMath's, or on a monthly loan by actual days the interest of that month's days (MonthlySchedule).
     */
    function _next(LoanMath.Plan memory plan, LoanMath.Cursor memory cursor, DueDates memory dates, uint256 number)
        internal
        pure
        returns (uint256, uint256)
    {
        if (!dates.actualDays) return LoanMath.next(plan, cursor);
        return MonthlySchedule.nextActual(plan, cursor, _dueAt(dates, number) - _dueAt(dates, number - 1));
    }

    /// @dev The interest of the loan's installment `number`'s period on `balance`, rounded half-up.
    function _periodInterest(LoanMath.Plan memory plan, DueDates memory dates, uint256 balance, uint256 number)
        internal
        pure
        returns (uint256)
    {
        if (!dates.actualDays) return LoanMath.periodInterest(plan, balance);
        uint256 length = _dueAt(dates, number) - _dueAt(dates, number - 1);
        return LoanMath.divHalfUp(balance * plan.annualRateBps * length, LoanMath.BPS * LoanMath.YEAR);
    }

    /// @dev The loan's due dates (see DueDates); before disbursement, those of a disbursement at time 0.
    function _dueDatesOf(LoanRecord storage loan) internal view returns (DueDates memory dates) {
        dates = _dueDates(loan.disbursedAt, loan.terms.interval);
        if (dates.interval == 0) dates.actualDays = loan.actualDays;
    }

    /// @dev Due dates of a schedule starting at `startsAt` with `interval` seconds between installments (0: monthly).
    function _dueDates(uint256 startsAt, uint256 interval) internal pure returns (DueDates memory dates) {
        dates.startsAt = startsAt;
        dates.interval = interval;
        if (interval == 0) {
            (dates.year, dates.month, dates.day) = Calendar.civilFromDays(startsAt / Calendar.DAY);
            dates.timeOfDay = startsAt % Calendar.DAY;
            (dates.lastDue, dates.otherDue) = (startsAt, startsAt); // installment 0, both
        }
    }

    /// @dev Due date of the loan's installment `number` (0: the disbursement).
    function _dueAt(DueDates memory dates, uint256 number) internal pure returns (uint256 dueAt) {
        if (dates.interval != 0) return dates.startsAt + number * dates.interval;
        if (number == dates.lastNumber) return dates.lastDue;
        if (number == dates.otherNumber) return dates.otherDue;
        dueAt = Calendar.addMonthsToDate(dates.year, dates.month, dates.day, dates.timeOfDay, number);
        (dates.otherNumber, dates.otherDue) = (dates.lastNumber, dates.lastDue);
        (dates.lastNumber, dates.lastDue) = (number, dueAt);
    }

    function _payoff(LoanRecord storage loan, Position memory pos) internal view returns (uint256) {
        return uint256(loan.lateFeeUnpaid) + loan.penaltyUnpaid + pos.newLateFee + pos.newPenalty + pos.dueInterest
            + pos.accruedInterest + (loan.terms.principal - loan.principalRepaid);
    }

    /// @dev The plan installments are walked on now: the original, or the one the last prepayment left.
    function _planOf(LoanRecord storage loan) internal view returns (LoanMath.Plan memory plan) {
        plan = LoanMath.planWithPayment(_termsOf(loan), loan.paymentRay);
        uint256 installments = loan.rebasedInstallments;
        if (installments != 0) {
            plan.principal = loan.rebasedPrincipal;
            plan.installments = installments;
        }
    }

    /// @dev The cursor of `plan` (re-based at `base`) after the installments paid.
    function _cursorOf(LoanRecord storage loan, LoanMath.Plan memory plan, uint256 base)
        internal
        view
        returns (LoanMath.Cursor memory)
    {
        return LoanMath.restore(plan, loan.paidInstallments - base, loan.balanceRay);
    }

    /// @dev Principal paid on the installment after `cursor`: what was repaid beyond the principal before the
    /// plan (`terms.principal - plan.principal`, prepaid) and the plan's installments already passed.
    function _principalPaidOnCurrent(LoanRecord storage loan, LoanMath.Plan memory plan, LoanMath.Cursor memory cursor)
        internal
        view
        returns (uint256)
    {
        return uint256(loan.principalRepaid) + plan.principal - loan.terms.principal - cursor.principalBefore;
    }

    /// @dev The terms' first slot only: the plan needs nothing from the second, and copying the whole
    /// struct would cost each payment a cold storage read (2,100 gas).
    function _termsOf(LoanRecord storage loan) internal view returns (LoanTerms memory terms) {
        LoanTerms storage t = loan.terms;
        terms = LoanTerms({
            principal: t.principal,
            currency: t.currency,
            annualRateBps: t.annualRateBps,
            amortization: t.amortization,
            installments: t.installments,
            interval: t.interval,
            gracePeriod: t.gracePeriod,
            lateFeeBps: t.lateFeeBps,
            penaltyRateBps: t.penaltyRateBps,
            defaultAfter: 0,
            serviceFee: 0,
            productId: 0,
            productVersion: 0,
            frequency: Frequency.FixedInterval,
            dayCount: DayCount.Actual365Fixed,
            earlyRepayment: EarlyRepayment.ReduceInstallments
        });
    }

    /// @dev The caller writes the reference's entry once the payment is known to apply.
    function _checkUnused(bytes32 paymentRef) internal view {
        if (paymentRef == bytes32(0)) revert LoanBookEmptyPaymentRef();
        if (_entries[paymentRef] != bytes32(0)) revert LoanBookDuplicatePayment(paymentRef);
    }

    function _checkTime(uint40 paidAt) internal view {
        // slither-disable-next-line timestamp -- rejects confirmations dated in the future
        if (paidAt == 0 || paidAt > block.timestamp) revert LoanBookInvalidPaymentTime(paidAt);
    }

    function _signedBy(address signer, bytes32 structHash, bytes calldata signature) internal view returns (bool) {
        return SignatureChecker.isValidSignatureNow(signer, _hashTypedDataV4(structHash), signature);
    }

    /// @dev Only on the failure path: tell a replay of the previous request from a bad signature.
    function _revertReplayOrInvalid(address borrower, uint256 nonce, bytes32 previousStructHash, bytes calldata signature)
        internal
        view
    {
        if (nonce > 0 && _signedBy(borrower, previousStructHash, signature)) revert LoanBookRequestReplayed(borrower, nonce - 1);
        revert LoanBookInvalidSignature(borrower);
    }

    function _loan(uint256 loanId) internal view returns (LoanRecord storage loan) {
        loan = _loans[loanId];
        if (loan.status == LoanStatus.None) revert LoanBookUnknownLoan(loanId);
    }

    function _loanIn(uint256 loanId, LoanStatus expected) internal view returns (LoanRecord storage loan) {
        loan = _loan(loanId);
        if (loan.status != expected) revert LoanBookInvalidStatus(loanId, loan.status);
    }

    function _min(uint256 a, uint256 b) internal pure returns (uint256) {
        return a < b ? a : b;
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ILoanBookExtension} from "./interfaces/ILoanBookExtension.sol";
import {IProductCatalog} from "./interfaces/IProductCatalog.sol";
import {LoanMath} from "./libraries/LoanMath.sol";
import {LoanBookBase} from "./LoanBookBase.sol";

/**
 * @title Loan book extension
 * @notice Cancellation, money back (credit refunds, reversals), default and write-off, and the views: the loan
 * book's less-travelled half. LoanBook creates it and delegates to it every call it does not implement itself,
 * so this code runs on the book's storage, with the book's roles and pause. Called at its own address it has an
 * empty book and no role holders.
 */
/// @dev The book's catalogue: an immutable of LoanBook's code, so the extension asks the book (itself) for it.
interface IBookCatalog {
    function catalog() external view returns (IProductCatalog);
}

contract LoanBookExtension is LoanBookBase, ILoanBookExtension {
    using SafeCast for uint256;
    using SafeCast for int256;

    bytes32 private constant _RESCHEDULE_ACCEPTANCE_TYPEHASH = keccak256(
        "RescheduleAcceptance(uint256 loanId,uint32 offerId,uint16 installments,uint40 expiresAt,uint256 nonce,uint256 deadline)"
    );

    /// @dev A hardship reschedule worked out now (`_reschedule`): what an acceptance writes and reports.
    struct Reschedule {
        uint256 base; // the new schedule's first installment is the loan's base + 1, the first due after now
        uint256 outstanding; // the principal re-based
        int256 settled; // the first new installment's settled interest: negative carries the overdue interest
        uint256 carried; // interest overdue now, carried into the first new installment
        LoanMath.Plan plan; // the new schedule
        Position pos; // late charges accrued up to now, still owed
        DueDates dates;
    }

    /// @param trustedForwarder_ the book's forwarder (see LoanBookBase)
    constructor(address trustedForwarder_) LoanBookBase(address(0), trustedForwarder_) {}

    /// @inheritdoc ILoanBookExtension
    function cancel(uint256 loanId) external whenNotPaused {
        LoanRecord storage loan = _loan(loanId);
        address caller = _msgSender();
        if (caller != loan.borrower) revert LoanBookNotBorrower(loanId, caller);
        _cancel(loanId, loan);
    }

    /// @inheritdoc ILoanBookExtension
    function cancelWithSignature(uint256 loanId, uint256 deadline, bytes calldata signature) external whenNotPaused {
        // slither-disable-next-line timestamp -- a signature deadline, coarse by nature
        if (block.timestamp > deadline) revert LoanBookExpiredRequest(deadline, block.timestamp);
        LoanRecord storage loan = _loan(loanId);
        address borrower = loan.borrower;
        uint256 nonce = _useNonce(borrower);
        if (!_signedBy(borrower, keccak256(abi.encode(_CANCEL_LOAN_TYPEHASH, loanId, nonce, deadline)), signature)) {
            _revertReplayOrInvalid(borrower, nonce, keccak256(abi.encode(_CANCEL_LOAN_TYPEHASH, loanId, nonce - 1, deadline)), signature);
        }
        _cancel(loanId, loan);
    }

    /// @inheritdoc ILoanBookExtension
    function confirmCreditRefund(uint256 loanId, bytes32 refundRef, uint96 amount, uint40 refundedAt)
        external
        onlyRole(ORACLE_ROLE)
        whenNotPaused
    {
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Overpaid);
        _checkUnused(refundRef);
        if (amount == 0) revert LoanBookZeroAmount();
        _checkTime(refundedAt);
        uint96 balance = loan.creditBalance;
        if (amount > balance) revert LoanBookCreditExceeded(loanId, amount, balance);
        balance -= amount;
        loan.creditBalance = balance;
        _entries[refundRef] = _FINAL;
        emit CreditRefunded(loanId, refundRef, amount, balance, refundedAt, _msgSender());
        if (balance == 0) {
            loan.status = LoanStatus.Repaid;
            emit LoanRepaid(loanId, loan.borrower, loan.principalRepaid, loan.interestPaid);
        }
    }

    /// @inheritdoc ILoanBookExtension
    function reverseRepayment(
        uint256 loanId,
        bytes32 paymentRef,
        bytes32 reversalRef,
        Allocation calldata paid,
        uint40 reversedAt
    ) external onlyRole(ORACLE_ROLE) whenNotPaused {
        LoanRecord storage loan = _loan(loanId);
        if (_entries[paymentRef] != keccak256(abi.encode(_REPAYMENT, loanId, paid))) revert LoanBookUnknownEntry(paymentRef);
        _checkUnused(reversalRef);
        _checkTime(reversedAt);
        _entries[paymentRef] = _REVERSED;
        _entries[reversalRef] = _FINAL;
        LoanStatus status = loan.status;
        if (paid.recovery != 0) {
            loan.recovered -= paid.recovery; // the entry proves it was added: it cannot underflow
        } else {
            // Money already written off would come back into the exposure twice: an operator's case.
            if (status == LoanStatus.WrittenOff) revert LoanBookInvalidStatus(loanId, status);
            uint96 balance = loan.creditBalance;
            if (paid.credit > balance) revert LoanBookCreditExceeded(loanId, paid.credit, balance);
            // Credit is what the last payment left over; undoing an earlier one must not leave it beside a debt.
            if (paid.credit == 0 && balance != 0) revert LoanBookCreditHeld(loanId, balance);
            // A reversal re-allocates on the original plan: a rescheduled loan's is gone (an operator's case).
            if (_rescheduleOffers[loanId].accepted != 0) revert LoanBookRescheduled(loanId);
            loan.creditBalance = balance - paid.credit;
            _restore(loan, paid);
            if (status == LoanStatus.Repaid || status == LoanStatus.Overpaid) {
                status = LoanStatus.Active;
                loan.status = status;
            }
        }
        uint96 amount = paid.principal + paid.interest + paid.lateFee + paid.penalty + paid.credit + paid.recovery;
        emit RepaymentReversed(
            loanId,
            paymentRef,
            reversalRef,
            amount,
            paid,
            loan.principalRepaid,
            loan.interestPaid,
            loan.paidInstallments,
            status,
            reversedAt,
            _msgSender()
        );
    }

    /// @inheritdoc ILoanBookExtension
    function reverseDisbursement(uint256 loanId, bytes32 paymentRef, bytes32 reversalRef, uint40 reversedAt)
        external
        onlyRole(ORACLE_ROLE)
        whenNotPaused
    {
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Active);
        uint96 amount = loan.terms.principal - loan.terms.serviceFee;
        if (_entries[paymentRef] != keccak256(abi.encode(_DISBURSEMENT, loanId, amount))) {
            revert LoanBookUnknownEntry(paymentRef);
        }
        if (loan.principalRepaid != 0 || loan.interestPaid != 0 || loan.currentInterestSettled != 0 || loan.lateFeePaid != 0
                || loan.penaltyPaid != 0) revert LoanBookDisbursementInUse(loanId);
        _checkUnused(reversalRef);
        _checkTime(reversedAt);
        _entries[paymentRef] = _REVERSED;
        _entries[reversalRef] = _FINAL;
        // Back to the state approval left: the exposure still counts the approved principal.
        loan.status = LoanStatus.Approved;
        loan.disbursedAt = 0;
        loan.accruedAt = 0;
        loan.balanceRay = 0;
        loan.paidInstallments = 0;
        loan.lateFeeUnpaid = 0;
        loan.penaltyUnpaid = 0;
        emit DisbursementReversed(loanId, paymentRef, reversalRef, amount, reversedAt, _msgSender());
    }

    /// @inheritdoc ILoanBookExtension
    function declareDefault(uint256 loanId) external whenNotPaused {
        address caller = _msgSender();
        if (!hasRole(OPERATOR_ROLE, caller) && !hasRole(ORACLE_ROLE, caller)) revert LoanBookUnauthorizedDefault(caller);
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Active);
        uint40 oldestDueAt = _oldestDueAt(loan);
        uint256 defaultableAt = uint256(oldestDueAt) + loan.terms.defaultAfter;
        // slither-disable-next-line timestamp -- the threshold is days; miner drift is irrelevant
        if (block.timestamp <= defaultableAt) revert LoanBookNotInDefault(loanId, defaultableAt.toUint40());
        loan.status = LoanStatus.Defaulted;
        emit LoanDefaulted(loanId, loan.borrower, oldestDueAt, uint40(block.timestamp), caller);
    }

    /// @inheritdoc ILoanBookExtension
    function writeOff(uint256 loanId) external onlyRole(FOUR_EYES_ROLE) whenNotPaused {
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Defaulted);
        uint96 remaining = loan.terms.principal - loan.principalRepaid;
        _exposure[loan.borrower][loan.terms.currency] -= remaining;
        loan.status = LoanStatus.WrittenOff;
        emit LoanWrittenOff(loanId, loan.borrower, remaining, _msgSender());
    }

    /// @inheritdoc ILoanBookExtension
    function setPayoutThreshold(uint96 threshold) external onlyRole(DEFAULT_ADMIN_ROLE) {
        emit PayoutThresholdChanged(_payoutThreshold, threshold, _msgSender());
        _payoutThreshold = threshold;
    }

    /// @inheritdoc ILoanBookExtension
    function payoutThreshold() external view returns (uint96) {
        return _payoutThreshold;
    }

    /// @inheritdoc ILoanBookExtension
    function quote(LoanTerms calldata terms, uint40 startsAt, uint16 passed, uint152 paymentRay)
        external
        pure
        returns (Installment[] memory)
    {
        DueDates memory dates = _dueDates(startsAt, terms.interval);
        dates.actualDays = terms.frequency == Frequency.Monthly && terms.dayCount == DayCount.Actual365Fixed;
        LoanMath.Plan memory plan = paymentRay == 0 ? LoanMath.plan(terms) : LoanMath.planWithPayment(terms, paymentRay);
        return _scheduleOf(plan, passed, dates);
    }

    /// @inheritdoc ILoanBookExtension
    function schedule(uint256 loanId) external view returns (Installment[] memory) {
        LoanRecord storage loan = _loan(loanId);
        // Re-based: the installments of the plan the last prepayment left (the ones before it are paid).
        return _scheduleOf(_planOf(loan), loan.rebasedAt, _dueDatesOf(loan));
    }

    /// @inheritdoc ILoanBookExtension
    function amountDue(uint256 loanId, uint40 asOf) external view returns (AmountDue memory due) {
        LoanRecord storage loan = _loan(loanId);
        if (loan.status != LoanStatus.Active && loan.status != LoanStatus.Defaulted) return due;
        Position memory pos =
            _position(loan, _planOf(loan), _dueDatesOf(loan), asOf > loan.accruedAt ? asOf : loan.accruedAt);
        due.principal = pos.duePrincipal.toUint96();
        due.interest = pos.dueInterest.toUint96();
        due.lateFee = SafeCast.toUint96(loan.lateFeeUnpaid + pos.newLateFee);
        due.penalty = SafeCast.toUint96(loan.penaltyUnpaid + pos.newPenalty);
        due.oldestDueAt = pos.oldestDueAt.toUint40();
    }

    /// @inheritdoc ILoanBookExtension
    function payoffAmount(uint256 loanId, uint40 asOf) external view returns (uint96) {
        LoanRecord storage loan = _loan(loanId);
        if (loan.status == LoanStatus.WrittenOff) return _stillOwed(loan, asOf).toUint96();
        if (loan.status != LoanStatus.Active && loan.status != LoanStatus.Defaulted) return 0;
        Position memory pos =
            _position(loan, _planOf(loan), _dueDatesOf(loan), asOf > loan.accruedAt ? asOf : loan.accruedAt);
        return _payoff(loan, pos).toUint96();
    }

    /// @inheritdoc ILoanBookExtension
    function outstandingPrincipal(address borrower, bytes3 currency) external view returns (uint256) {
        return _exposure[borrower][currency];
    }

    /// @inheritdoc ILoanBookExtension
    function loanOf(uint256 loanId)
        external
        view
        returns (LoanTerms memory terms, address borrower, LoanStatus status, uint40 disbursedAt)
    {
        LoanRecord storage loan = _loan(loanId);
        return (loan.terms, loan.borrower, loan.status, loan.disbursedAt);
    }

    /// @inheritdoc ILoanBookExtension
    function progressOf(uint256 loanId) external view returns (LoanProgress memory) {
        LoanRecord storage loan = _loan(loanId);
        return LoanProgress({
            paidInstallments: loan.paidInstallments,
            accruedAt: loan.accruedAt,
            principalRepaid: loan.principalRepaid,
            interestPaid: loan.interestPaid,
            lateFeePaid: uint96(loan.lateFeePaid),
            penaltyPaid: uint96(loan.penaltyPaid),
            lateFeeUnpaid: loan.lateFeeUnpaid,
            penaltyUnpaid: loan.penaltyUnpaid,
            creditBalance: loan.creditBalance,
            recovered: loan.recovered
        });
    }

    /// @inheritdoc ILoanBookExtension
    function isPaymentReferenceUsed(bytes32 paymentRef) external view returns (bool) {
        return _entries[paymentRef] != bytes32(0);
    }

    // ------------------------------------------------------------------ hardship reschedule

    /// @inheritdoc ILoanBookExtension
    function requestReschedule(uint256 loanId, uint16 installments) external whenNotPaused {
        LoanRecord storage loan = _loan(loanId);
        address caller = _msgSender();
        if (caller != loan.borrower) revert LoanBookNotBorrower(loanId, caller);
        if (loan.status != LoanStatus.Active) revert LoanBookInvalidStatus(loanId, loan.status);
        emit RescheduleRequested(loanId, caller, installments);
    }

    /// @inheritdoc ILoanBookExtension
    function offerReschedule(uint256 loanId, uint16 installments, uint40 expiresAt)
        external
        onlyRole(OPERATOR_ROLE)
        whenNotPaused
        returns (uint32 offerId)
    {
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Active);
        // slither-disable-next-line timestamp -- an offer's expiry, coarse by nature
        if (expiresAt <= block.timestamp) revert LoanBookExpiredRequest(expiresAt, block.timestamp);
        Reschedule memory r = _reschedule(loanId, loan, installments);
        RescheduleOffer storage offer = _rescheduleOffers[loanId];
        offerId = offer.offerId + 1;
        offer.installments = installments;
        offer.expiresAt = expiresAt;
        offer.offerId = offerId;
        offer.open = true;
        uint256 amount = _nextAmount(r.plan, LoanMath.start(r.plan), r.dates, r.base + 1);
        emit RescheduleOffered(loanId, offerId, installments, amount.toUint96(), expiresAt, _msgSender());
    }

    /// @inheritdoc ILoanBookExtension
    function acceptReschedule(uint256 loanId) external whenNotPaused {
        LoanRecord storage loan = _loan(loanId);
        address caller = _msgSender();
        if (caller != loan.borrower) revert LoanBookNotBorrower(loanId, caller);
        _acceptReschedule(loanId, loan);
    }

    /// @inheritdoc ILoanBookExtension
    function acceptRescheduleWithSignature(uint256 loanId, uint256 deadline, bytes calldata signature)
        external
        whenNotPaused
    {
        // slither-disable-next-line timestamp -- a signature deadline, coarse by nature
        if (block.timestamp > deadline) revert LoanBookExpiredRequest(deadline, block.timestamp);
        LoanRecord storage loan = _loan(loanId);
        address borrower = loan.borrower;
        RescheduleOffer storage offer = _rescheduleOffers[loanId];
        uint256 nonce = _useNonce(borrower);
        // Over the stored offer: a signature for any other offer (altered, or replaced since) does not match it.
        if (!_signedBy(borrower, _acceptanceHash(loanId, offer, nonce, deadline), signature)) {
            if (nonce == 0) revert LoanBookInvalidSignature(borrower);
            // An accepted offer is kept (closed): its acceptance replayed is recognised as such.
            _revertReplayOrInvalid(borrower, nonce, _acceptanceHash(loanId, offer, nonce - 1, deadline), signature);
        }
        _acceptReschedule(loanId, loan);
    }

    /// @inheritdoc ILoanBookExtension
    function rescheduleOfferOf(uint256 loanId)
        external
        view
        returns (uint32 offerId, uint16 installments, uint40 expiresAt, bool open, uint16 accepted)
    {
        RescheduleOffer storage offer = _rescheduleOffers[loanId];
        return (offer.offerId, offer.installments, offer.expiresAt, offer.open, offer.accepted);
    }

    /**
     * @dev Re-bases the loan on the open offer, worked out again now (the outstanding principal may have changed
     * since the offer): late charges accrued so far are stored (they stay owed), interest overdue is carried into
     * the first new installment (Fineract's re-amortization default: overdue interest moves to the first
     * installment after it, overdue charges stay as they are; nothing is capitalised), and the installments still
     * owed become the new plan of the outstanding principal, its first installment due on the loan's next due date.
     */
    function _acceptReschedule(uint256 loanId, LoanRecord storage loan) private {
        RescheduleOffer storage offer = _rescheduleOffers[loanId];
        if (!offer.open) revert LoanBookNoRescheduleOffer(loanId);
        uint40 expiresAt = offer.expiresAt;
        // slither-disable-next-line timestamp -- an offer's expiry, coarse by nature
        if (block.timestamp > expiresAt) revert LoanBookRescheduleOfferExpired(loanId, expiresAt);
        LoanStatus status = loan.status;
        if (status != LoanStatus.Active) revert LoanBookInvalidStatus(loanId, status);
        uint16 installments = offer.installments;
        Reschedule memory r = _reschedule(loanId, loan, installments);
        offer.open = false;
        ++offer.accepted;
        ScheduleSummary memory previous = _summaryNow(loan, r.dates);

        uint40 asOf = uint40(block.timestamp > loan.accruedAt ? block.timestamp : loan.accruedAt);
        if (r.pos.newLateFee != 0 || r.pos.newPenalty != 0) {
            loan.lateFeeUnpaid = SafeCast.toUint64(loan.lateFeeUnpaid + r.pos.newLateFee);
            loan.penaltyUnpaid = SafeCast.toUint64(loan.penaltyUnpaid + r.pos.newPenalty);
            emit LateChargesAccrued(loanId, r.pos.newLateFee.toUint96(), r.pos.newPenalty.toUint96(), loan.accruedAt, asOf);
        }
        loan.accruedAt = asOf;

        uint16 base = r.base.toUint16();
        loan.terms.installments = (r.base + installments).toUint16();
        loan.paidInstallments = base; // the installments overdue are folded into the new plan
        loan.rebasedAt = base;
        loan.rebasedInstallments = installments;
        loan.rebasedPrincipal = r.outstanding.toUint64();
        loan.paymentRay = r.plan.paymentRay.toUint152();
        loan.balanceRay = uint160(r.outstanding * LoanMath.RAY); // under the principal's, which fits
        loan.currentInterestSettled = r.settled.toInt64();
        ScheduleSummary memory current = ScheduleSummary({
            installments: installments,
            installmentAmount: _nextAmount(r.plan, LoanMath.start(r.plan), r.dates, r.base + 1).toUint96(),
            nextDueAt: _dueAt(r.dates, r.base + 1).toUint40()
        });
        emit RescheduleAccepted(
            loanId,
            offer.offerId,
            loan.borrower,
            previous,
            current,
            base,
            loan.rebasedPrincipal,
            loan.paymentRay,
            r.carried.toUint96(),
            _msgSender()
        );
    }

    /**
     * @dev The reschedule of `loan` over `installments` now, checked against its product: a longer term than the
     * installments left (so a lower installment), within the product's longest term counted from disbursement, and
     * the new schedule within the catalogue's all-in cost cap today (the catalogue's own check, on the principal
     * outstanding, with no fee: a reschedule charges none).
     */
    function _reschedule(uint256 loanId, LoanRecord storage loan, uint16 installments)
        private
        view
        returns (Reschedule memory r)
    {
        r.dates = _dueDatesOf(loan);
        uint256 asOf = block.timestamp > loan.accruedAt ? block.timestamp : loan.accruedAt;
        uint256 paid = loan.paidInstallments;
        // The first installment the new plan replaces is the first due after now (or the first unpaid, if later).
        uint256 base = paid;
        if (r.dates.interval != 0) {
            uint256 elapsed = (asOf - r.dates.startsAt) / r.dates.interval;
            if (elapsed > base) base = elapsed;
        } else {
            while (_dueAt(r.dates, base + 1) <= asOf) ++base;
        }
        r.base = base;
        LoanTerms memory terms = loan.terms;
        IProductCatalog catalog = IBookCatalog(address(this)).catalog();
        uint256 longest = catalog.product(terms.productId, terms.productVersion).maxInstallments;
        uint256 left = terms.installments > base ? terms.installments - base : 0;
        uint256 most = longest > base ? longest - base : 0;
        if (installments <= left || installments > most) {
            revert LoanBookRescheduleOutsideProduct(loanId, installments, uint16(left + 1), uint16(most));
        }
        r.pos = _position(loan, _planOf(loan), r.dates, asOf);
        if (base > paid) {
            r.carried = r.pos.dueInterest;
            r.settled = -r.carried.toInt256();
        } else {
            r.settled = loan.currentInterestSettled;
        }
        r.outstanding = terms.principal - loan.principalRepaid;
        terms.principal = r.outstanding.toUint96();
        terms.installments = installments;
        terms.serviceFee = 0;
        r.plan = LoanMath.plan(terms);
        (bool ok, uint256 presentValue,) = catalog.checkCost(terms, 0);
        if (!ok) revert LoanBookRescheduleAboveCap(loanId, presentValue, r.outstanding);
    }

    /// @dev The loan's schedule as it stands: installments left, the next one's scheduled amount, its due date.
    function _summaryNow(LoanRecord storage loan, DueDates memory dates) private view returns (ScheduleSummary memory s) {
        uint256 paid = loan.paidInstallments;
        LoanMath.Plan memory plan = _planOf(loan);
        LoanMath.Cursor memory cursor = _cursorOf(loan, plan, loan.rebasedAt);
        s.installments = uint16(loan.terms.installments - paid);
        if (cursor.paid < plan.installments) s.installmentAmount = _nextAmount(plan, cursor, dates, paid + 1).toUint96();
        s.nextDueAt = _dueAt(dates, paid + 1).toUint40();
    }

    /// @dev Principal and interest scheduled for the installment after `cursor` (the loan's `number`), cursor kept.
    function _nextAmount(LoanMath.Plan memory plan, LoanMath.Cursor memory cursor, DueDates memory dates, uint256 number)
        private
        pure
        returns (uint256)
    {
        LoanMath.Cursor memory walk = LoanMath.Cursor(cursor.paid, cursor.principalBefore, cursor.balanceRay);
        (uint256 p, uint256 i) = _next(plan, walk, dates, number);
        return p + i;
    }

    function _acceptanceHash(uint256 loanId, RescheduleOffer storage offer, uint256 nonce, uint256 deadline)
        private
        view
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                _RESCHEDULE_ACCEPTANCE_TYPEHASH, loanId, offer.offerId, offer.installments, offer.expiresAt, nonce, deadline
            )
        );
    }

    // ------------------------------------------------------------------ internals

    /**
     * @dev Undoes a repayment's allocation: its charges are unpaid again, and the money left paid towards
     * the schedule is re-allocated from the first installment, oldest first, interest before principal (as
     * if those payments had been one), which re-ages the loan. An early payoff's unaccrued interest is due
     * again: the payoff it rewarded did not happen. So is a prepayment's re-based schedule: the re-allocation
     * runs on the loan's original plan, and the loan is left on it.
     */
    function _restore(LoanRecord storage loan, Allocation calldata paid) private {
        loan.lateFeeUnpaid = SafeCast.toUint64(uint256(loan.lateFeeUnpaid) + paid.lateFee);
        loan.penaltyUnpaid = SafeCast.toUint64(uint256(loan.penaltyUnpaid) + paid.penalty);
        loan.lateFeePaid -= paid.lateFee;
        loan.penaltyPaid -= paid.penalty;
        uint256 left = uint256(loan.principalRepaid) + loan.interestPaid - paid.principal - paid.interest;
        LoanMath.Plan memory plan = LoanMath.plan(_termsOf(loan));
        LoanMath.Cursor memory cursor = LoanMath.start(plan);
        DueDates memory dates = _dueDatesOf(loan);
        uint256 paidInstallments;
        uint256 balanceRay = cursor.balanceRay;
        uint256 principal;
        uint256 interest;
        uint256 currentInterest;
        while (left > 0 && cursor.paid < plan.installments) {
            (uint256 p, uint256 i) = _next(plan, cursor, dates, cursor.paid + 1);
            if (left < p + i) {
                currentInterest = _min(left, i);
                principal += left - currentInterest;
                interest += currentInterest;
                break;
            }
            left -= p + i;
            principal += p;
            interest += i;
            paidInstallments = cursor.paid;
            balanceRay = cursor.balanceRay;
        }
        _exposure[loan.borrower][loan.terms.currency] += loan.principalRepaid - principal;
        loan.principalRepaid = principal.toUint64();
        loan.interestPaid = interest.toUint64();
        loan.paidInstallments = uint16(paidInstallments);
        loan.balanceRay = uint160(balanceRay);
        loan.rebasedAt = 0;
        loan.rebasedInstallments = 0;
        loan.rebasedPrincipal = 0;
        loan.paymentRay = uint152(plan.paymentRay); // fits: it did at application
        loan.currentInterestSettled = SafeCast.toInt64(SafeCast.toInt256(currentInterest));
    }

    function _oldestDueAt(LoanRecord storage loan) private view returns (uint40) {
        return _dueAt(_dueDatesOf(loan), uint256(loan.paidInstallments) + 1).toUint40();
    }

    /// @dev `plan`'s installments, its first being the loan's installment `base + 1`, on `dates`.
    function _scheduleOf(LoanMath.Plan memory plan, uint256 base, DueDates memory dates)
        private
        pure
        returns (Installment[] memory items)
    {
        items = new Installment[](plan.installments);
        LoanMath.Cursor memory cursor = LoanMath.start(plan);
        for (uint256 k = 0; k < plan.installments; ++k) {
            uint256 dueAt = _dueAt(dates, base + k + 1);
            (uint256 p, uint256 i) = _next(plan, cursor, dates, base + k + 1);
            items[k] = Installment({dueAt: dueAt.toUint40(), principal: p.toUint96(), interest: i.toUint96()});
        }
    }

    function _cancel(uint256 loanId, LoanRecord storage loan) private {
        LoanStatus status = loan.status;
        if (status == LoanStatus.Approved) {
            _exposure[loan.borrower][loan.terms.currency] -= loan.terms.principal;
        } else if (status != LoanStatus.Requested) {
            revert LoanBookInvalidStatus(loanId, status);
        }
        loan.status = LoanStatus.Cancelled;
        emit LoanCancelled(loanId, loan.borrower, _msgSender());
    }
}

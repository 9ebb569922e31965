// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IBorrowerRegistry} from "./interfaces/IBorrowerRegistry.sol";
import {ICreditOracle} from "./interfaces/ICreditOracle.sol";
import {ILoanBookCore} from "./interfaces/ILoanBookCore.sol";
import {IProductCatalog} from "./interfaces/IProductCatalog.sol";
import {LoanMath} from "./libraries/LoanMath.sol";
import {Prepayment} from "./libraries/Prepayment.sol";
import {LoanBookBase} from "./LoanBookBase.sol";
import {LoanBookExtension} from "./LoanBookExtension.sol";

/**
 * @title Loan book
 * @notice Holds every loan's terms, state and money movements, and enforces them. The terms come from the
 * product catalogue: a borrower signs for a product version, a principal and a number of installments, and
 * the book copies the version's terms (so the lender sets the price, within the catalogue's cost cap).
 *
 * Allocation of a repayment (Fineract's standard order): penalty interest, then late fees, then
 * installments due oldest first, each one's interest before its principal. Then the current installment,
 * not yet due: the interest accrued to date on the principal owed, then its principal; a payment covering
 * both pays it ahead of its date (nothing more is due before the next installment's date, which asks the
 * interest of the rest of the period on the principal left besides its own), and what is left beyond it
 * is early repayment (libraries/Prepayment.sol): principal, and the installments after the current one
 * are re-based by the loan's method (fewer installments, or smaller ones) and emitted (ScheduleRebased). Paying exactly the payoff amount closes
 * the loan with only the current period's interest accrued to date; paying more than that closes it too, and
 * the rest is held as the borrower's credit (the loan is Overpaid) until the rail refunds it. A payment
 * on a written-off loan is a recovery. Charges accrue at each confirmation, on the amounts unpaid since
 * the previous one.
 *
 * Every received payment leaves an entry: its reference maps to a hash of where the money went, so a
 * reversal (a chargeback, a bounced payout) can name the parts it undoes and have them checked here
 * without the book storing them (a repayment writes one slot, as a used-reference flag would).
 */
contract LoanBook is LoanBookBase, ILoanBookCore {
    using SafeCast for uint256;
    using SafeCast for int256;

    IBorrowerRegistry public immutable registry;
    ICreditOracle public immutable creditOracle;
    IProductCatalog public immutable catalog;
    /// @notice The currency the credit oracle's limits are in: loans in any other have no limit to be checked
    /// against, and are refused at application.
    bytes3 public immutable creditLimitCurrency;
    /// @notice The code of the book's other half (ILoanBookExtension), created with the book.
    address public immutable extension;

    /**
     * @param admin receives DEFAULT_ADMIN_ROLE
     * @param trustedForwarder_ the LoanLedgerForwarder (signed decisions act for their signer); the extension
     * trusts it too
     * @param registry_ the borrower registry consulted at application and approval
     * @param creditOracle_ the credit oracle consulted at approval
     * @param catalog_ the product catalogue the terms come from
     * @param creditLimitCurrency_ the currency of the credit oracle's limits (ISO 4217)
     * @param payoutThreshold_ the principal above which an approval needs FourEyes
     */
    constructor(
        address admin,
        address trustedForwarder_,
        IBorrowerRegistry registry_,
        ICreditOracle creditOracle_,
        IProductCatalog catalog_,
        bytes3 creditLimitCurrency_,
        uint96 payoutThreshold_
    ) LoanBookBase(admin, trustedForwarder_) {
        extension = address(new LoanBookExtension(trustedForwarder_));
        registry = registry_;
        creditOracle = creditOracle_;
        catalog = catalog_;
        creditLimitCurrency = creditLimitCurrency_;
        _payoutThreshold = payoutThreshold_;
        emit PayoutThresholdChanged(0, payoutThreshold_, admin);
    }

    /**
     * @notice Every call the book does not implement runs the extension's code on the book's storage.
     * @dev Not payable: the book takes no ether. Memory-safe (it uses memory past the free-memory pointer only as
     * scratch, and ends the call): OpenZeppelin's Proxy assembly is not marked so, and a single unmarked block
     * turns off via-IR's memory optimisations for the whole contract (about 3,100 gas a repayment).
     */
    fallback() external {
        address target = extension;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, 0, calldatasize())
            let ok := delegatecall(gas(), target, ptr, calldatasize(), 0, 0)
            returndatacopy(ptr, 0, returndatasize())
            if iszero(ok) { revert(ptr, returndatasize()) }
            return(ptr, returndatasize())
        }
    }

    // ------------------------------------------------------------------ application

    /// @inheritdoc ILoanBookCore
    function requestLoan(Application calldata application, address borrower, uint256 deadline, bytes calldata signature)
        external
        whenNotPaused
        returns (uint256 loanId)
    {
        // slither-disable-next-line timestamp -- a signature deadline, coarse by nature
        if (block.timestamp > deadline) revert LoanBookExpiredRequest(deadline, block.timestamp);
        if (!registry.isEligible(borrower)) revert LoanBookBorrowerNotEligible(borrower);
        (LoanTerms memory terms, bool autoApprovable) = catalog.termsFor(
            application.productId, application.productVersion, application.principal, application.installments
        );
        if (terms.currency != creditLimitCurrency) revert LoanBookNoCreditLimit(terms.currency, creditLimitCurrency);

        uint256 nonce = _useNonce(borrower);
        if (!_signedBy(borrower, _applicationHash(application, borrower, nonce, deadline), signature)) {
            // A first request has no previous nonce to be a replay of (and `nonce - 1` would underflow).
            if (nonce == 0) revert LoanBookInvalidSignature(borrower);
            _revertReplayOrInvalid(borrower, nonce, _applicationHash(application, borrower, nonce - 1, deadline), signature);
        }

        loanId = ++_loanCount;
        LoanRecord storage loan = _loans[loanId];
        loan.terms = terms;
        loan.borrower = borrower;
        loan.status = LoanStatus.Requested;
        if (terms.frequency == Frequency.Monthly && terms.dayCount == DayCount.Actual365Fixed) loan.actualDays = true;
        if (autoApprovable) loan.autoApprovable = true;
        if (terms.amortization == Amortization.Annuity) loan.paymentRay = LoanMath.plan(terms).paymentRay.toUint152();
        emit LoanRequested(loanId, borrower, terms, autoApprovable, nonce, _msgSender());
    }

    /// @inheritdoc ILoanBookCore
    function approve(uint256 loanId) external whenNotPaused {
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Requested);
        _checkApprover(loanId, loan);
        address borrower = loan.borrower;
        if (!registry.isEligible(borrower)) revert LoanBookBorrowerNotEligible(borrower);
        ICreditOracle.CreditScore memory score = creditOracle.scoreOf(borrower);
        if (!creditOracle.isFresh(borrower)) revert LoanBookStaleScore(borrower, score.updatedAt);
        // Approved-but-undisbursed loans count too, so a limit cannot be exceeded by stacking approvals.
        bytes3 currency = loan.terms.currency;
        uint256 exposureAfter = _exposure[borrower][currency] + loan.terms.principal;
        // The limit is the identity's, not the wallet's: loans of wallets it was recovered from still count (the
        // registry links each recovered wallet to the one before; one link per recovery, so the walk is short).
        uint256 identityExposure = exposureAfter;
        for (address previous = registry.predecessorOf(borrower); previous != address(0);) {
            identityExposure += _exposure[previous][currency];
            // slither-disable-next-line calls-loop -- the registry is this book's own immutable, trusted contract
            previous = registry.predecessorOf(previous);
        }
        if (identityExposure > score.creditLimit) {
            revert LoanBookCreditLimitExceeded(borrower, identityExposure, score.creditLimit);
        }
        _exposure[borrower][currency] = exposureAfter;
        loan.status = LoanStatus.Approved;
        emit LoanApproved(loanId, borrower, score.score, score.creditLimit, exposureAfter, _msgSender());
    }

    /// @inheritdoc ILoanBookCore
    function reject(uint256 loanId, bytes32 reason) external whenNotPaused {
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Requested);
        _checkRejecter(loanId, loan);
        loan.status = LoanStatus.Rejected;
        emit LoanRejected(loanId, loan.borrower, reason, _msgSender());
    }

    // ------------------------------------------------------------------ payments

    /// @inheritdoc ILoanBookCore
    function confirmDisbursement(uint256 loanId, bytes32 paymentRef, uint96 amount, uint40 paidAt)
        external
        onlyRole(ORACLE_ROLE)
        whenNotPaused
    {
        _disburse(loanId, paymentRef, amount, paidAt);
    }

    /// @inheritdoc ILoanBookCore
    function confirmRepayment(uint256 loanId, bytes32 paymentRef, uint96 amount, uint40 paidAt)
        external
        onlyRole(ORACLE_ROLE)
        whenNotPaused
    {
        _repay(loanId, paymentRef, amount, paidAt);
    }

    /// @inheritdoc ILoanBookCore
    function confirmDisbursements(PaymentConfirmation[] calldata items)
        external
        onlyRole(ORACLE_ROLE)
        whenNotPaused
        returns (bool[] memory applied)
    {
        return _applyBatch(items, this.applyDisbursementItem.selector);
    }

    /// @inheritdoc ILoanBookCore
    function confirmRepayments(PaymentConfirmation[] calldata items)
        external
        onlyRole(ORACLE_ROLE)
        whenNotPaused
        returns (bool[] memory applied)
    {
        return _applyBatch(items, this.applyRepaymentItem.selector);
    }

    /**
     * @notice One batch item; callable only by this contract, so a failing item reverts alone.
     * @param item the confirmation
     */
    function applyDisbursementItem(PaymentConfirmation calldata item) external {
        if (msg.sender != address(this)) revert LoanBookOnlySelf();
        _disburse(item.loanId, item.paymentRef, item.amount, item.paidAt);
    }

    /**
     * @notice One batch item; callable only by this contract, so a failing item reverts alone.
     * @param item the confirmation
     */
    function applyRepaymentItem(PaymentConfirmation calldata item) external {
        if (msg.sender != address(this)) revert LoanBookOnlySelf();
        _repay(item.loanId, item.paymentRef, item.amount, item.paidAt);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ILoanBookCore
    function loanCount() external view returns (uint256) {
        return _loanCount;
    }

    /// @notice The EIP-712 domain separator borrowers sign under.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------ internals


    function _disburse(uint256 loanId, bytes32 paymentRef, uint96 amount, uint40 paidAt) private {
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Approved);
        _checkUnused(paymentRef);
        uint96 principal = loan.terms.principal;
        uint96 payout = principal - loan.terms.serviceFee;
        if (amount != payout) revert LoanBookDisbursementMismatch(amount, payout);
        _checkTime(paidAt);
        _entries[paymentRef] = keccak256(abi.encode(_DISBURSEMENT, loanId, amount));
        loan.status = LoanStatus.Active;
        loan.disbursedAt = paidAt;
        loan.accruedAt = paidAt;
        if (loan.terms.amortization == Amortization.Annuity) loan.balanceRay = uint160(uint256(principal) * LoanMath.RAY);
        emit LoanDisbursed(loanId, loan.borrower, paymentRef, amount, paidAt, _msgSender());
    }

    function _repay(uint256 loanId, bytes32 paymentRef, uint96 amount, uint40 paidAt) private {
        LoanRecord storage loan = _loan(loanId);
        LoanStatus status = loan.status;
        if (status == LoanStatus.WrittenOff) {
            _recover(loanId, loan, paymentRef, amount, paidAt);
            return;
        }
        if (status != LoanStatus.Active && status != LoanStatus.Defaulted) revert LoanBookInvalidStatus(loanId, status);
        _checkUnused(paymentRef);
        if (amount == 0) revert LoanBookZeroAmount();
        // slither-disable-next-line timestamp -- rejects confirmations dated in the future
        if (paidAt > block.timestamp || paidAt < loan.disbursedAt) revert LoanBookInvalidPaymentTime(paidAt);

        // A confirmation older than the last accrual is applied at the last accrual: time never runs back.
        uint40 asOf = paidAt > loan.accruedAt ? paidAt : loan.accruedAt;
        LoanMath.Plan memory plan = _planOf(loan);
        DueDates memory dates = _dueDatesOf(loan);
        Position memory pos = _position(loan, plan, dates, asOf);
        // Before accruing: `_payoff` adds the position's new charges to the stored unpaid ones, and
        // accruing moves them into storage, so after it they would count twice.
        uint256 payoff = _payoff(loan, pos);
        _accrueCharges(loanId, loan, pos, asOf);

        // Beyond the payoff: the loan closes, and the rest is the borrower's until refunded.
        uint256 credit = amount > payoff ? amount - payoff : 0;
        uint256 left = amount - credit;
        uint256 penaltyPart = _min(left, loan.penaltyUnpaid);
        left -= penaltyPart;
        uint256 lateFeePart = _min(left, loan.lateFeeUnpaid);
        left -= lateFeePart;
        if (penaltyPart != 0 || lateFeePart != 0) {
            // Both parts fit: each is at most its stored counterpart.
            loan.penaltyUnpaid -= uint64(penaltyPart);
            loan.lateFeeUnpaid -= uint64(lateFeePart);
            loan.penaltyPaid += uint128(penaltyPart);
            loan.lateFeePaid += uint128(lateFeePart);
        }

        uint256 principalPart;
        uint256 interestPart;
        if (amount >= payoff) {
            principalPart = loan.terms.principal - loan.principalRepaid;
            interestPart = left - principalPart;
            loan.paidInstallments = loan.terms.installments;
            loan.currentInterestSettled = 0;
            loan.balanceRay = 0;
            loan.status = credit == 0 ? LoanStatus.Repaid : LoanStatus.Overpaid;
        } else {
            Current memory c = Current(loanId, paymentRef, dates, 0, asOf, loan.currentInterestSettled, 0);
            (principalPart, interestPart) = _settleInstallments(loan, plan, c, left);
        }
        loan.principalRepaid += principalPart.toUint64();
        loan.interestPaid += interestPart.toUint64();
        _exposure[loan.borrower][loan.terms.currency] -= principalPart;

        _entries[paymentRef] =
            keccak256(abi.encode(_REPAYMENT, loanId, principalPart, interestPart, lateFeePart, penaltyPart, credit, 0));

        emit RepaymentApplied(
            loanId,
            paymentRef,
            (amount - credit).toUint96(),
            principalPart.toUint96(),
            interestPart.toUint96(),
            lateFeePart.toUint96(),
            penaltyPart.toUint96(),
            paidAt,
            loan.paidInstallments,
            _msgSender()
        );
        if (credit != 0) {
            loan.creditBalance = credit.toUint96(); // a running loan holds no credit: this is all of it
            emit OverpaymentHeld(loanId, paymentRef, credit.toUint96(), credit.toUint96());
        } else if (loan.status == LoanStatus.Repaid) {
            emit LoanRepaid(loanId, loan.borrower, loan.principalRepaid, loan.interestPaid);
        }
    }

    /// @dev A payment on a written-off loan: recorded beside the schedule, up to what is still owed.
    function _recover(uint256 loanId, LoanRecord storage loan, bytes32 paymentRef, uint96 amount, uint40 paidAt) private {
        _checkUnused(paymentRef);
        if (amount == 0) revert LoanBookZeroAmount();
        _checkTime(paidAt);
        uint256 owed = _stillOwed(loan, paidAt);
        if (amount > owed) revert LoanBookOverpayment(amount, owed.toUint96());
        uint96 recovered = loan.recovered + amount;
        loan.recovered = recovered;
        _entries[paymentRef] = keccak256(abi.encode(_REPAYMENT, loanId, 0, 0, 0, 0, 0, amount));
        emit RecoveryApplied(loanId, paymentRef, amount, recovered, paidAt, _msgSender());
    }

    /**
     * @dev Pays installments oldest first, interest then principal, advancing the cursor past full ones.
     * One not yet due (the current one) asks only the interest accrued to date, on the principal owed: a
     * payment covering that and the installment's scheduled principal pays it ahead of its date (it counts as
     * paid, and nothing more is due before the next one's date); what it leaves is early repayment
     * (_payAhead). A payment that does not cover it pays it in part: the principal paid stops accruing
     * interest, so the installment then asks, besides its principal left, only the interest of the rest of
     * the period on the principal still owed (Fineract's and Mambu's partial payment of an installment).
     */
    function _settleInstallments(LoanRecord storage loan, LoanMath.Plan memory plan, Current memory c, uint256 left)
        private
        returns (uint256 principalPart, uint256 interestPart)
    {
        LoanMath.Cursor memory cursor = _cursorOf(loan, plan, loan.rebasedAt);
        int256 settled = c.settled;
        uint256 principalPaidOnCurrent = _principalPaidOnCurrent(loan, plan, cursor);
        // The caller checked left < payoff <= everything scheduled, so the walk ends before the schedule.
        while (left > 0) {
            // Installment k of the plan is the loan's installment rebasedAt + k, due on that one's date.
            uint256 number = loan.rebasedAt + cursor.paid + 1;
            if (_dueAt(c.dates, number) > c.asOf) {
                (c.number, c.settled, c.principalPaid) = (number, settled, principalPaidOnCurrent);
                (uint256 pp, uint256 ip) = _payCurrent(loan, plan, cursor, c, left);
                principalPart += pp;
                interestPart += ip;
                settled = c.settled;
                break;
            }
            (uint256 p, uint256 i) = _next(plan, cursor, c.dates, number);
            uint256 interestDue = _interestAsked(i, settled);
            uint256 payInterest = _min(left, interestDue);
            left -= payInterest;
            uint256 payPrincipal = _min(left, p - principalPaidOnCurrent);
            left -= payPrincipal;
            interestPart += payInterest;
            principalPart += payPrincipal;
            if (payInterest == interestDue && principalPaidOnCurrent + payPrincipal == p) {
                ++loan.paidInstallments; // the loan's installment rebasedAt + cursor.paid
                loan.balanceRay = uint160(cursor.balanceRay);
                settled = 0;
                principalPaidOnCurrent = 0;
            } else {
                settled += int256(payInterest);
            }
        }
        loan.currentInterestSettled = settled.toInt64();
    }

    /// @dev The payment being settled, and the current installment (not yet due) as `_payCurrent` finds and
    /// leaves it. A struct in memory: as arguments these would not fit the stack.
    struct Current {
        uint256 loanId;
        bytes32 paymentRef;
        DueDates dates; // the loan's
        uint256 number; // its number in the loan (its due date: _dueAt(dates, number))
        uint256 asOf;
        int256 settled; // its interest settled (LoanRecord.currentInterestSettled); updated
        uint256 principalPaid; // its principal paid
    }

    /**
     * @dev `amount` paid on the installment after `cursor`, not yet due at `c.asOf`: the interest accrued to
     * date on the principal owed, then its principal. Covering both pays it ahead of its date (`_payAhead`
     * takes the rest); else the principal paid stops accruing interest from now (`c.settled`).
     */
    function _payCurrent(
        LoanRecord storage loan,
        LoanMath.Plan memory plan,
        LoanMath.Cursor memory cursor,
        Current memory c,
        uint256 amount
    ) private returns (uint256 principalPart, uint256 interestPart) {
        if (_dueAt(c.dates, c.number - 1) > c.asOf && c.principalPaid == 0) {
            return _payBeforePeriod(loan, plan, cursor, c, amount);
        }
        uint256 scheduled = plan.principal - cursor.principalBefore;
        (uint256 p, uint256 i) = _next(plan, cursor, c.dates, c.number);
        uint256 interestDue = _interestToDate(plan, i, scheduled, scheduled - c.principalPaid, c);
        interestPart = _min(amount, interestDue);
        principalPart = _min(amount - interestPart, p - c.principalPaid);
        uint256 left = amount - interestPart - principalPart;
        if (c.principalPaid + principalPart == p && interestPart == interestDue) {
            ++loan.paidInstallments; // the loan's installment rebasedAt + cursor.paid
            loan.balanceRay = uint160(cursor.balanceRay);
            c.settled = _payAhead(loan, plan, cursor, c, left);
            return (principalPart + left, interestPart);
        }
        c.settled += int256(interestPart);
        if (principalPart != 0) {
            // Paid to date: from now on it asks the interest of the rest of the period on the principal owed.
            uint256 owed = scheduled - c.principalPaid - principalPart;
            int256 rest = int256(i) - int256(_interestAhead(plan, i, scheduled, owed, c.dates, c.number, c.asOf));
            if (rest > c.settled) c.settled = rest;
        }
    }

    /**
     * @dev `amount` paid while the installment before `cursor` is paid ahead of its date: the current one's
     * period (installment `c.number`) has not begun, so nothing of it falls due before its date. The interest
     * accrued since the payment ahead is paid, and the rest prepays principal (`_payAhead`), as it would have
     * had it come with that payment: a payment split in two at one moment costs what it would in one go.
     */
    function _payBeforePeriod(
        LoanRecord storage loan,
        LoanMath.Plan memory plan,
        LoanMath.Cursor memory cursor,
        Current memory c,
        uint256 amount
    ) private returns (uint256 principalPart, uint256 interestPart) {
        uint256 scheduled = plan.principal - cursor.principalBefore;
        LoanMath.Cursor memory walk = LoanMath.Cursor(cursor.paid, cursor.principalBefore, cursor.balanceRay);
        (, uint256 i) = _next(plan, walk, c.dates, c.number); // its interest, cursor kept
        interestPart = _min(amount, _interestToDate(plan, i, scheduled, scheduled, c));
        principalPart = amount - interestPart;
        if (principalPart == 0) {
            c.settled += int256(interestPart);
        } else {
            c.number -= 1; // _payAhead's: the installment paid ahead
            c.settled = _payAhead(loan, plan, cursor, c, principalPart);
        }
    }

    /**
     * @dev The interest installment `c.number` (period interest `i`, `scheduled` principal) asks at `c.asOf`
     * with `owed` of its principal unpaid: what it asks in all less what the rest of its period would accrue on
     * the principal owed.
     */
    function _interestToDate(LoanMath.Plan memory plan, uint256 i, uint256 scheduled, uint256 owed, Current memory c)
        private
        pure
        returns (uint256)
    {
        uint256 asked = _interestAsked(i, c.settled);
        uint256 ahead = _interestAhead(plan, i, scheduled, owed, c.dates, c.number, c.asOf);
        return asked > ahead ? asked - ahead : 0;
    }

    /**
     * @dev The installment before `cursor`, the loan's `c.number`, was just paid ahead of its date, and `excess`
     * is left: it prepays principal, and the installments after it are re-based on what it leaves by the
     * loan's early-repayment method (Prepayment.rebase; ScheduleRebased), keeping their due dates. Interest
     * runs only on the principal owed: the next installment asks, besides its own period's interest, that of
     * the time from now to the paid one's due date on the principal left, carried into it as negative settled
     * interest.
     */
    function _payAhead(
        LoanRecord storage loan,
        LoanMath.Plan memory plan,
        LoanMath.Cursor memory cursor,
        Current memory c,
        uint256 excess
    ) private returns (int256 settled) {
        if (excess != 0) {
            plan = _rebase(loan, plan, cursor, excess, c.dates.actualDays);
            cursor = LoanMath.start(plan);
            uint16 rebasedAt = loan.paidInstallments;
            uint16 installments = uint16(plan.installments);
            uint64 principal = plan.principal.toUint64();
            uint152 paymentRay = plan.paymentRay.toUint152();
            loan.rebasedAt = rebasedAt;
            loan.rebasedInstallments = installments;
            loan.rebasedPrincipal = principal;
            loan.balanceRay = uint160(cursor.balanceRay);
            loan.paymentRay = paymentRay;
            emit ScheduleRebased(c.loanId, c.paymentRef, rebasedAt, principal, installments, paymentRay);
        }
        // There is a next installment: paying the last one ahead is paying the payoff, which closes the loan.
        uint256 scheduled = plan.principal - cursor.principalBefore;
        LoanMath.Cursor memory walk = LoanMath.Cursor(cursor.paid, cursor.principalBefore, cursor.balanceRay);
        (, uint256 i) = _next(plan, walk, c.dates, c.number + 1); // the next installment's interest, cursor kept
        uint256 ahead = _interestAhead(plan, i, scheduled, scheduled, c.dates, c.number + 1, c.asOf);
        settled = int256(i) - int256(ahead);
    }

    /**
     * @dev The plan `excess` prepaid leaves after `cursor` (Prepayment.rebase, measured against the original plan:
     * ReduceInstallments keeps its installment amount). On actual days a month's interest is not the twelfth of
     * the rate the level payment is computed at, so the exact balance left is not that of an annuity at the
     * current payment: a payment computed afresh from it would change the pace of repayment even for one unit
     * prepaid, and could cost more interest than the unit saves. So the payment keeps the pace: ReduceInstallments
     * keeps the original installment (its definition), ReduceInstallmentAmount scales the current one by the
     * principal left over the exact balance (what the annuity formula gives under 30/360).
     */
    function _rebase(
        LoanRecord storage loan,
        LoanMath.Plan memory plan,
        LoanMath.Cursor memory cursor,
        uint256 excess,
        bool actualDays
    ) private view returns (LoanMath.Plan memory rebased) {
        LoanMath.Plan memory original = LoanMath.plan(_termsOf(loan));
        uint256 left = plan.principal - cursor.principalBefore - excess;
        EarlyRepayment method = loan.terms.earlyRepayment;
        rebased = Prepayment.rebase(original, left, plan.installments - cursor.paid, method);
        if (actualDays && rebased.amortization == Amortization.Annuity && cursor.balanceRay != 0) {
            rebased.paymentRay = method == EarlyRepayment.ReduceInstallments
                ? original.paymentRay
                : Math.mulDiv(plan.paymentRay, left * LoanMath.RAY, cursor.balanceRay);
        }
    }

    function _accrueCharges(uint256 loanId, LoanRecord storage loan, Position memory pos, uint40 asOf) private {
        if (pos.newLateFee != 0 || pos.newPenalty != 0) {
            loan.lateFeeUnpaid = SafeCast.toUint64(loan.lateFeeUnpaid + pos.newLateFee);
            loan.penaltyUnpaid = SafeCast.toUint64(loan.penaltyUnpaid + pos.newPenalty);
            emit LateChargesAccrued(loanId, pos.newLateFee.toUint96(), pos.newPenalty.toUint96(), loan.accruedAt, asOf);
        }
        loan.accruedAt = asOf;
    }

    function _applyBatch(PaymentConfirmation[] calldata items, bytes4 selector) private returns (bool[] memory applied) {
        applied = new bool[](items.length);
        for (uint256 k = 0; k < items.length; ++k) {
            // The call is to this contract itself (an item runs in its own frame so that it can fail alone);
            // the event after it is the item's outcome, so "reentrancy" here is the design.
            // slither-disable-next-line calls-loop,low-level-calls,reentrancy-events
            (bool ok, bytes memory reason) = address(this).call(abi.encodeWithSelector(selector, items[k]));
            applied[k] = ok;
            if (!ok) emit PaymentSkipped(items[k].loanId, items[k].paymentRef, reason);
        }
    }

    /**
     * @dev Who may approve this loan: an operator alone up to the payout threshold, FourEyes (two operators) any,
     * the automatic policy only what its product made autoApprovable at application. Operators first: theirs is the
     * usual path.
     */
    function _checkApprover(uint256 loanId, LoanRecord storage loan) private view {
        address sender = _msgSender();
        if (hasRole(OPERATOR_ROLE, sender)) {
            uint96 principal = loan.terms.principal;
            uint96 threshold = _payoutThreshold;
            if (principal > threshold) revert LoanBookNeedsFourEyes(loanId, principal, threshold);
        } else if (!hasRole(FOUR_EYES_ROLE, sender)) {
            if (!hasRole(POLICY_ROLE, sender)) revert AccessControlUnauthorizedAccount(sender, OPERATOR_ROLE);
            if (!loan.autoApprovable) revert LoanBookNotAutoApprovable(loanId);
        }
    }

    /**
     * @dev Who may reject this loan: an operator any, the automatic policy only what it may approve (a loan its
     * product made autoApprovable), so it can decline with the book's reason what it cannot approve.
     */
    function _checkRejecter(uint256 loanId, LoanRecord storage loan) private view {
        address sender = _msgSender();
        if (hasRole(OPERATOR_ROLE, sender)) return;
        if (!hasRole(POLICY_ROLE, sender)) revert AccessControlUnauthorizedAccount(sender, OPERATOR_ROLE);
        if (!loan.autoApprovable) revert LoanBookNotAutoApprovable(loanId);
    }

    function _applicationHash(Application calldata application, address borrower, uint256 nonce, uint256 deadline)
        private
        pure
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                _LOAN_APPLICATION_TYPEHASH,
                borrower,
                application.productId,
                application.productVersion,
                application.principal,
                application.installments,
                nonce,
                deadline
            )
        );
    }

}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IBorrowerRegistry} from "./interfaces/IBorrowerRegistry.sol";
import {ICreditOracle} from "./interfaces/ICreditOracle.sol";
import {ILoanBook} from "./interfaces/ILoanBook.sol";
import {IProductCatalog} from "./interfaces/IProductCatalog.sol";
import {LoanMath} from "./libraries/LoanMath.sol";
import {LoanLedgerRoles} from "./LoanLedgerRoles.sol";

/**
 * @title Loan book
 * @notice Holds every loan's terms, state and money movements, and enforces them. The terms come from the
 * product catalogue: a borrower signs for a product version, a principal and a number of installments, and
 * the book copies the version's terms (so the lender sets the price, within the catalogue's cost cap).
 *
 * Allocation of a repayment (Fineract's standard order): penalty interest, then late fees, then
 * installments oldest first, each one's interest before its principal. Paying more than is due
 * settles the next installments as scheduled; paying exactly the payoff amount closes the loan
 * with only the current period's interest accrued to date; paying more than that closes it too, and
 * the rest is held as the borrower's credit (the loan is Overpaid) until the rail refunds it. A payment
 * on a written-off loan is a recovery. Charges accrue at each confirmation, on the amounts unpaid since
 * the previous one.
 *
 * Every received payment leaves an entry: its reference maps to a hash of where the money went, so a
 * reversal (a chargeback, a bounced payout) can name the parts it undoes and have them checked here
 * without the book storing them (a repayment writes one slot, as a used-reference flag would).
 */
contract LoanBook is ILoanBook, LoanLedgerRoles, EIP712, Nonces {
    using SafeCast for uint256;

    bytes32 private constant _LOAN_APPLICATION_TYPEHASH = keccak256(
        "LoanApplication(address borrower,uint256 productId,uint32 productVersion,uint96 principal,uint16 installments,uint256 nonce,uint256 deadline)"
    );
    bytes32 private constant _CANCEL_LOAN_TYPEHASH =
        keccak256("CancelLoan(uint256 loanId,uint256 nonce,uint256 deadline)");

    // Entry kinds, hashed into each entry so that a payout and a repayment can never be taken for each other.
    uint8 private constant _DISBURSEMENT = 1;
    uint8 private constant _REPAYMENT = 2;
    bytes32 private constant _REVERSED = bytes32(uint256(1)); // an entry undone by a reversal: used, never again
    bytes32 private constant _FINAL = bytes32(uint256(2)); // a reference that cannot be reversed (refunds, reversals)

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
        uint40 accruedAt; // slot 3: charges are accrued up to here
        uint16 paidInstallments; // installments fully paid
        uint64 currentInterestPaid; // interest paid on installment paidInstallments + 1
        uint64 principalRepaid;
        uint64 interestPaid;
        uint40 disbursedAt; // slot 4
        uint64 lateFeeUnpaid;
        uint152 paymentRay; // exact annuity payment, RAY-scaled, fixed at application
        uint128 lateFeePaid; // slot 5
        uint128 penaltyPaid;
        uint256 balanceRay; // slot 6: exact scheduled annuity balance after paidInstallments
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

    IBorrowerRegistry public immutable registry;
    ICreditOracle public immutable creditOracle;
    IProductCatalog public immutable catalog;
    /// @notice The currency the credit oracle's limits are in: loans in any other have no limit to be checked
    /// against, and are refused at application.
    bytes3 public immutable creditLimitCurrency;

    uint256 private _loanCount;
    mapping(uint256 loanId => LoanRecord) private _loans;
    mapping(bytes32 paymentRef => bytes32 entry) private _entries;
    mapping(address borrower => mapping(bytes3 currency => uint256)) private _exposure;

    /**
     * @param admin receives DEFAULT_ADMIN_ROLE
     * @param registry_ the borrower registry consulted at application and approval
     * @param creditOracle_ the credit oracle consulted at approval
     * @param catalog_ the product catalogue the terms come from
     * @param creditLimitCurrency_ the currency of the credit oracle's limits (ISO 4217)
     */
    constructor(
        address admin,
        IBorrowerRegistry registry_,
        ICreditOracle creditOracle_,
        IProductCatalog catalog_,
        bytes3 creditLimitCurrency_
    ) LoanLedgerRoles(admin) EIP712("LoanLedger LoanBook", "1") {
        registry = registry_;
        creditOracle = creditOracle_;
        catalog = catalog_;
        creditLimitCurrency = creditLimitCurrency_;
    }

    // ------------------------------------------------------------------ application

    /// @inheritdoc ILoanBook
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
        if (terms.amortization == Amortization.Annuity) loan.paymentRay = LoanMath.plan(terms).paymentRay.toUint152();
        emit LoanRequested(loanId, borrower, terms, autoApprovable, nonce, msg.sender);
    }

    /// @inheritdoc ILoanBook
    function approve(uint256 loanId) external onlyRole(OPERATOR_ROLE) whenNotPaused {
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Requested);
        address borrower = loan.borrower;
        if (!registry.isEligible(borrower)) revert LoanBookBorrowerNotEligible(borrower);
        ICreditOracle.CreditScore memory score = creditOracle.scoreOf(borrower);
        if (!creditOracle.isFresh(borrower)) revert LoanBookStaleScore(borrower, score.updatedAt);
        // Approved-but-undisbursed loans count too, so a limit cannot be exceeded by stacking approvals.
        bytes3 currency = loan.terms.currency;
        uint256 exposureAfter = _exposure[borrower][currency] + loan.terms.principal;
        if (exposureAfter > score.creditLimit) {
            revert LoanBookCreditLimitExceeded(borrower, exposureAfter, score.creditLimit);
        }
        _exposure[borrower][currency] = exposureAfter;
        loan.status = LoanStatus.Approved;
        emit LoanApproved(loanId, borrower, score.score, score.creditLimit, exposureAfter, msg.sender);
    }

    /// @inheritdoc ILoanBook
    function reject(uint256 loanId, bytes32 reason) external onlyRole(OPERATOR_ROLE) whenNotPaused {
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Requested);
        loan.status = LoanStatus.Rejected;
        emit LoanRejected(loanId, loan.borrower, reason, msg.sender);
    }

    /// @inheritdoc ILoanBook
    function cancel(uint256 loanId) external whenNotPaused {
        LoanRecord storage loan = _loan(loanId);
        if (msg.sender != loan.borrower) revert LoanBookNotBorrower(loanId, msg.sender);
        _cancel(loanId, loan);
    }

    /// @inheritdoc ILoanBook
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

    // ------------------------------------------------------------------ payments

    /// @inheritdoc ILoanBook
    function confirmDisbursement(uint256 loanId, bytes32 paymentRef, uint96 amount, uint40 paidAt)
        external
        onlyRole(ORACLE_ROLE)
        whenNotPaused
    {
        _disburse(loanId, paymentRef, amount, paidAt);
    }

    /// @inheritdoc ILoanBook
    function confirmRepayment(uint256 loanId, bytes32 paymentRef, uint96 amount, uint40 paidAt)
        external
        onlyRole(ORACLE_ROLE)
        whenNotPaused
    {
        _repay(loanId, paymentRef, amount, paidAt);
    }

    /// @inheritdoc ILoanBook
    function confirmDisbursements(PaymentConfirmation[] calldata items)
        external
        onlyRole(ORACLE_ROLE)
        whenNotPaused
        returns (bool[] memory applied)
    {
        return _applyBatch(items, this.applyDisbursementItem.selector);
    }

    /// @inheritdoc ILoanBook
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

    /// @inheritdoc ILoanBook
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
        emit CreditRefunded(loanId, refundRef, amount, balance, refundedAt, msg.sender);
        if (balance == 0) {
            loan.status = LoanStatus.Repaid;
            emit LoanRepaid(loanId, loan.borrower, loan.principalRepaid, loan.interestPaid);
        }
    }

    /// @inheritdoc ILoanBook
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
            msg.sender
        );
    }

    /// @inheritdoc ILoanBook
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
        if (loan.principalRepaid != 0 || loan.interestPaid != 0 || loan.currentInterestPaid != 0 || loan.lateFeePaid != 0
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
        emit DisbursementReversed(loanId, paymentRef, reversalRef, amount, reversedAt, msg.sender);
    }

    // ------------------------------------------------------------------ default

    /// @inheritdoc ILoanBook
    function declareDefault(uint256 loanId) external whenNotPaused {
        if (!hasRole(OPERATOR_ROLE, msg.sender) && !hasRole(ORACLE_ROLE, msg.sender)) {
            revert LoanBookUnauthorizedDefault(msg.sender);
        }
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Active);
        uint40 oldestDueAt = _oldestDueAt(loan);
        uint256 defaultableAt = uint256(oldestDueAt) + loan.terms.defaultAfter;
        // slither-disable-next-line timestamp -- the threshold is days; miner drift is irrelevant
        if (block.timestamp <= defaultableAt) revert LoanBookNotInDefault(loanId, defaultableAt.toUint40());
        loan.status = LoanStatus.Defaulted;
        emit LoanDefaulted(loanId, loan.borrower, oldestDueAt, uint40(block.timestamp), msg.sender);
    }

    /// @inheritdoc ILoanBook
    function writeOff(uint256 loanId) external onlyRole(OPERATOR_ROLE) whenNotPaused {
        LoanRecord storage loan = _loanIn(loanId, LoanStatus.Defaulted);
        uint96 remaining = loan.terms.principal - loan.principalRepaid;
        _exposure[loan.borrower][loan.terms.currency] -= remaining;
        loan.status = LoanStatus.WrittenOff;
        emit LoanWrittenOff(loanId, loan.borrower, remaining, msg.sender);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ILoanBook
    function quote(LoanTerms calldata terms) external pure returns (Installment[] memory) {
        return _scheduleOf(LoanMath.plan(terms), 0);
    }

    /// @inheritdoc ILoanBook
    function schedule(uint256 loanId) external view returns (Installment[] memory) {
        LoanRecord storage loan = _loan(loanId);
        return _scheduleOf(_planOf(loan), loan.disbursedAt);
    }

    /// @inheritdoc ILoanBook
    function amountDue(uint256 loanId, uint40 asOf) external view returns (AmountDue memory due) {
        LoanRecord storage loan = _loan(loanId);
        if (loan.status != LoanStatus.Active && loan.status != LoanStatus.Defaulted) return due;
        Position memory pos = _position(loan, _planOf(loan), asOf > loan.accruedAt ? asOf : loan.accruedAt);
        due.principal = pos.duePrincipal.toUint96();
        due.interest = pos.dueInterest.toUint96();
        due.lateFee = SafeCast.toUint96(loan.lateFeeUnpaid + pos.newLateFee);
        due.penalty = SafeCast.toUint96(loan.penaltyUnpaid + pos.newPenalty);
        due.oldestDueAt = pos.oldestDueAt.toUint40();
    }

    /// @inheritdoc ILoanBook
    function payoffAmount(uint256 loanId, uint40 asOf) external view returns (uint96) {
        LoanRecord storage loan = _loan(loanId);
        if (loan.status == LoanStatus.WrittenOff) return _stillOwed(loan, asOf).toUint96();
        if (loan.status != LoanStatus.Active && loan.status != LoanStatus.Defaulted) return 0;
        Position memory pos = _position(loan, _planOf(loan), asOf > loan.accruedAt ? asOf : loan.accruedAt);
        return _payoff(loan, pos).toUint96();
    }

    /// @inheritdoc ILoanBook
    function outstandingPrincipal(address borrower, bytes3 currency) external view returns (uint256) {
        return _exposure[borrower][currency];
    }

    /// @inheritdoc ILoanBook
    function loanOf(uint256 loanId)
        external
        view
        returns (LoanTerms memory terms, address borrower, LoanStatus status, uint40 disbursedAt)
    {
        LoanRecord storage loan = _loan(loanId);
        return (loan.terms, loan.borrower, loan.status, loan.disbursedAt);
    }

    /// @inheritdoc ILoanBook
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

    /// @inheritdoc ILoanBook
    function isPaymentReferenceUsed(bytes32 paymentRef) external view returns (bool) {
        return _entries[paymentRef] != bytes32(0);
    }

    /// @inheritdoc ILoanBook
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
        if (loan.terms.amortization == Amortization.Annuity) loan.balanceRay = uint256(principal) * LoanMath.RAY;
        emit LoanDisbursed(loanId, loan.borrower, paymentRef, amount, paidAt, msg.sender);
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
        Position memory pos = _position(loan, plan, asOf);
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
            loan.currentInterestPaid = 0;
            loan.balanceRay = 0;
            loan.status = credit == 0 ? LoanStatus.Repaid : LoanStatus.Overpaid;
        } else {
            (principalPart, interestPart) = _settleInstallments(loan, plan, left);
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
            msg.sender
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
        emit RecoveryApplied(loanId, paymentRef, amount, recovered, paidAt, msg.sender);
    }

    /// @dev What a written-off borrower still owes at `asOf`: the payoff the schedule gives, less recoveries.
    function _stillOwed(LoanRecord storage loan, uint40 asOf) private view returns (uint256) {
        Position memory pos = _position(loan, _planOf(loan), asOf > loan.accruedAt ? asOf : loan.accruedAt);
        uint256 payoff = _payoff(loan, pos);
        return payoff > loan.recovered ? payoff - loan.recovered : 0;
    }

    /**
     * @dev Undoes a repayment's allocation: its charges are unpaid again, and the money left paid towards
     * the schedule is re-allocated from the first installment, oldest first, interest before principal (as
     * if those payments had been one), which re-ages the loan. An early payoff's unaccrued interest is due
     * again: the payoff it rewarded did not happen.
     */
    function _restore(LoanRecord storage loan, Allocation calldata paid) private {
        loan.lateFeeUnpaid = SafeCast.toUint64(uint256(loan.lateFeeUnpaid) + paid.lateFee);
        loan.penaltyUnpaid = SafeCast.toUint64(uint256(loan.penaltyUnpaid) + paid.penalty);
        loan.lateFeePaid -= paid.lateFee;
        loan.penaltyPaid -= paid.penalty;
        uint256 left = uint256(loan.principalRepaid) + loan.interestPaid - paid.principal - paid.interest;
        LoanMath.Plan memory plan = _planOf(loan);
        LoanMath.Cursor memory cursor = LoanMath.start(plan);
        uint256 paidInstallments;
        uint256 balanceRay = cursor.balanceRay;
        uint256 principal;
        uint256 interest;
        uint256 currentInterest;
        while (left > 0 && cursor.paid < plan.installments) {
            (uint256 p, uint256 i) = LoanMath.next(plan, cursor);
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
        loan.balanceRay = balanceRay;
        loan.currentInterestPaid = currentInterest.toUint64();
    }

    /// @dev Pays installments oldest first, interest then principal, advancing the cursor past full ones.
    function _settleInstallments(LoanRecord storage loan, LoanMath.Plan memory plan, uint256 left)
        private
        returns (uint256 principalPart, uint256 interestPart)
    {
        LoanMath.Cursor memory cursor = LoanMath.restore(plan, loan.paidInstallments, loan.balanceRay);
        uint256 interestPaidOnCurrent = loan.currentInterestPaid;
        uint256 principalPaidOnCurrent = uint256(loan.principalRepaid) - cursor.principalBefore;
        // The caller checked left < payoff <= everything scheduled, so the walk ends before the schedule.
        while (left > 0) {
            (uint256 p, uint256 i) = LoanMath.next(plan, cursor);
            uint256 payInterest = _min(left, i - interestPaidOnCurrent);
            left -= payInterest;
            uint256 payPrincipal = _min(left, p - principalPaidOnCurrent);
            left -= payPrincipal;
            interestPart += payInterest;
            principalPart += payPrincipal;
            if (interestPaidOnCurrent + payInterest == i && principalPaidOnCurrent + payPrincipal == p) {
                loan.paidInstallments = uint16(cursor.paid);
                loan.balanceRay = cursor.balanceRay;
                interestPaidOnCurrent = 0;
                principalPaidOnCurrent = 0;
            } else {
                interestPaidOnCurrent += payInterest;
            }
        }
        loan.currentInterestPaid = interestPaidOnCurrent.toUint64();
    }

    function _accrueCharges(uint256 loanId, LoanRecord storage loan, Position memory pos, uint40 asOf) private {
        if (pos.newLateFee != 0 || pos.newPenalty != 0) {
            loan.lateFeeUnpaid = SafeCast.toUint64(loan.lateFeeUnpaid + pos.newLateFee);
            loan.penaltyUnpaid = SafeCast.toUint64(loan.penaltyUnpaid + pos.newPenalty);
            emit LateChargesAccrued(loanId, pos.newLateFee.toUint96(), pos.newPenalty.toUint96(), loan.accruedAt, asOf);
        }
        loan.accruedAt = asOf;
    }

    /**
     * @dev Walks unpaid installments due by `asOf` (and the first one not yet due) without changing
     * state. Charges accrue on each installment's amount unpaid since the last accrual, which is
     * constant in between because only confirmations change it.
     */
    function _position(LoanRecord storage loan, LoanMath.Plan memory plan, uint256 asOf)
        private
        view
        returns (Position memory pos)
    {
        LoanMath.Cursor memory cursor = LoanMath.restore(plan, loan.paidInstallments, loan.balanceRay);
        uint256 paidInterest = loan.currentInterestPaid;
        uint256 paidPrincipal = uint256(loan.principalRepaid) - cursor.principalBefore;
        uint256 accruedAt = loan.accruedAt;
        uint256 disbursedAt = loan.disbursedAt;
        uint256 grace = loan.terms.gracePeriod;
        while (cursor.paid < plan.installments) {
            uint256 dueAt = disbursedAt + (cursor.paid + 1) * plan.interval;
            (uint256 p, uint256 i) = LoanMath.next(plan, cursor);
            if (pos.oldestDueAt == 0) pos.oldestDueAt = dueAt;
            if (dueAt > asOf) {
                uint256 periodStart = dueAt - plan.interval;
                if (asOf > periodStart) {
                    uint256 accrued = LoanMath.accruedInterest(i, asOf - periodStart, plan.interval);
                    pos.accruedInterest = accrued > paidInterest ? accrued - paidInterest : 0;
                }
                break;
            }
            uint256 unpaid = i + p - paidInterest - paidPrincipal;
            pos.dueInterest += i - paidInterest;
            pos.duePrincipal += p - paidPrincipal;
            uint256 lateFrom = dueAt + grace;
            if (lateFrom < asOf) {
                if (lateFrom >= accruedAt) pos.newLateFee += LoanMath.lateFee(unpaid, loan.terms.lateFeeBps);
                uint256 from = lateFrom > accruedAt ? lateFrom : accruedAt;
                pos.newPenalty += LoanMath.penalty(unpaid, loan.terms.penaltyRateBps, asOf - from);
            }
            paidInterest = 0;
            paidPrincipal = 0;
        }
    }

    function _payoff(LoanRecord storage loan, Position memory pos) private view returns (uint256) {
        return uint256(loan.lateFeeUnpaid) + loan.penaltyUnpaid + pos.newLateFee + pos.newPenalty + pos.dueInterest
            + pos.accruedInterest + (loan.terms.principal - loan.principalRepaid);
    }

    function _oldestDueAt(LoanRecord storage loan) private view returns (uint40) {
        return (uint256(loan.disbursedAt) + (uint256(loan.paidInstallments) + 1) * loan.terms.interval).toUint40();
    }

    function _scheduleOf(LoanMath.Plan memory plan, uint256 startsAt) private pure returns (Installment[] memory items) {
        items = new Installment[](plan.installments);
        LoanMath.Cursor memory cursor = LoanMath.start(plan);
        for (uint256 k = 0; k < plan.installments; ++k) {
            (uint256 p, uint256 i) = LoanMath.next(plan, cursor);
            items[k] = Installment({dueAt: (startsAt + (k + 1) * plan.interval).toUint40(), principal: p.toUint96(), interest: i.toUint96()});
        }
    }

    function _planOf(LoanRecord storage loan) private view returns (LoanMath.Plan memory) {
        // The terms' first slot only: the plan needs nothing from the second, and copying the whole
        // struct would cost each payment a cold storage read (2,100 gas).
        LoanTerms storage t = loan.terms;
        LoanTerms memory terms = LoanTerms({
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
        return LoanMath.planWithPayment(terms, loan.paymentRay);
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

    function _cancel(uint256 loanId, LoanRecord storage loan) private {
        LoanStatus status = loan.status;
        if (status == LoanStatus.Approved) {
            _exposure[loan.borrower][loan.terms.currency] -= loan.terms.principal;
        } else if (status != LoanStatus.Requested) {
            revert LoanBookInvalidStatus(loanId, status);
        }
        loan.status = LoanStatus.Cancelled;
        emit LoanCancelled(loanId, loan.borrower, msg.sender);
    }

    /// @dev The caller writes the reference's entry once the payment is known to apply.
    function _checkUnused(bytes32 paymentRef) private view {
        if (paymentRef == bytes32(0)) revert LoanBookEmptyPaymentRef();
        if (_entries[paymentRef] != bytes32(0)) revert LoanBookDuplicatePayment(paymentRef);
    }

    function _checkTime(uint40 paidAt) private view {
        // slither-disable-next-line timestamp -- rejects confirmations dated in the future
        if (paidAt == 0 || paidAt > block.timestamp) revert LoanBookInvalidPaymentTime(paidAt);
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

    function _signedBy(address signer, bytes32 structHash, bytes calldata signature) private view returns (bool) {
        return SignatureChecker.isValidSignatureNow(signer, _hashTypedDataV4(structHash), signature);
    }

    /// @dev Only on the failure path: tell a replay of the previous request from a bad signature.
    function _revertReplayOrInvalid(address borrower, uint256 nonce, bytes32 previousStructHash, bytes calldata signature)
        private
        view
    {
        if (nonce > 0 && _signedBy(borrower, previousStructHash, signature)) revert LoanBookRequestReplayed(borrower, nonce - 1);
        revert LoanBookInvalidSignature(borrower);
    }

    function _loan(uint256 loanId) private view returns (LoanRecord storage loan) {
        loan = _loans[loanId];
        if (loan.status == LoanStatus.None) revert LoanBookUnknownLoan(loanId);
    }

    function _loanIn(uint256 loanId, LoanStatus expected) private view returns (LoanRecord storage loan) {
        loan = _loan(loanId);
        if (loan.status != expected) revert LoanBookInvalidStatus(loanId, loan.status);
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ILoanBook} from "./ILoanBook.sol";

/**
 * @title Loan book: cancellation, money back, default and views
 * @notice Implemented by LoanBookExtension and answered at the loan book's address: LoanBook delegates every
 * call it does not implement itself to its extension, which runs on the book's storage. (Called at its own
 * address, the extension has an empty book and no role holders: everything there reverts or reads nothing.)
 */
interface ILoanBookExtension is ILoanBook {
    /**
     * @notice The borrower withdraws a requested or approved loan.
     * @param loanId the loan
     */
    function cancel(uint256 loanId) external;

    /**
     * @notice Relayed withdrawal signed by the borrower (EIP-712 `CancelLoan`).
     * @param loanId the loan
     * @param deadline unix time after which the signature is void
     * @param signature the borrower's signature
     */
    function cancelWithSignature(uint256 loanId, uint256 deadline, bytes calldata signature) external;

    /**
     * @notice Pays back (part of) an Overpaid loan's credit balance; at zero the loan is Repaid.
     * @param loanId the loan
     * @param refundRef the rail's reference of the refund (hashed); used once, ever
     * @param amount minor units, at most the credit balance
     * @param refundedAt when the rail paid the refund
     */
    function confirmCreditRefund(uint256 loanId, bytes32 refundRef, uint96 amount, uint40 refundedAt) external;

    /**
     * @notice Records a compensating entry for a repayment the rail reversed: restores its charges, and
     * its principal and interest re-allocated oldest first; a closed loan is open again.
     * @param loanId the loan
     * @param paymentRef the reversed payment's reference
     * @param reversalRef the rail's reference of the reversal (hashed); used once, ever
     * @param paid the reversed payment's allocation, as its events reported it (checked against the book)
     * @param reversedAt when the rail reversed it
     */
    function reverseRepayment(uint256 loanId, bytes32 paymentRef, bytes32 reversalRef, Allocation calldata paid, uint40 reversedAt)
        external;

    /**
     * @notice A payout that bounced before it reached the borrower: the loan is Approved again, to be paid
     * out anew or cancelled. Refused once anything was repaid.
     * @param loanId the loan
     * @param paymentRef the payout's reference
     * @param reversalRef the rail's reference of the bounce (hashed); used once, ever
     * @param reversedAt when the rail reported it
     */
    function reverseDisbursement(uint256 loanId, bytes32 paymentRef, bytes32 reversalRef, uint40 reversedAt) external;

    /**
     * @notice Declares an active loan in default once its oldest unpaid installment is past the threshold.
     * @param loanId the loan
     */
    function declareDefault(uint256 loanId) external;

    /**
     * @notice Writes off a defaulted loan; its remaining principal leaves the borrower's exposure. Only FourEyes
     * (two operators) may.
     * @param loanId the loan
     */
    function writeOff(uint256 loanId) external;

    /**
     * @notice Sets the principal above which an approval needs FourEyes (two operators).
     * @param threshold minor units of the book's currency
     */
    function setPayoutThreshold(uint96 threshold) external;

    /// @notice The principal above which an approval needs FourEyes.
    function payoutThreshold() external view returns (uint96);

    /**
     * @notice The schedule of terms, computed without any state, for a loan disbursed at `startsAt`: the due dates
     * of a monthly schedule depend on the disbursement's date (`dueAt` is absolute; with `startsAt` 0 a fixed
     * interval's are seconds after disbursement, as `schedule` gives them before disbursement).
     * @param terms the loan's terms (a re-based plan: its principal and installments left)
     * @param startsAt the disbursement, unix seconds
     * @param passed installments before the first one quoted: the dates are the loan's from installment `passed + 1`
     * on (a plan re-based at `passed`, ScheduleRebased); 0 for a new loan
     * @param paymentRay annuity: a re-based plan's exact level payment (ScheduleRebased's, which on a monthly loan on
     * actual days keeps the pace of repayment instead of following the annuity formula); 0: the terms' own
     */
    function quote(LoanTerms calldata terms, uint40 startsAt, uint16 passed, uint152 paymentRay)
        external
        pure
        returns (Installment[] memory);

    /**
     * @notice A loan's schedule; `dueAt` is absolute once disbursed; before, that of a disbursement at time 0 (a
     * fixed interval's: seconds after disbursement; a monthly one's: only indicative, use `quote`). After a prepayment re-based it
     * (ScheduleRebased), the re-based plan's installments only: the loan's installments `rebasedAt + 1` on (the
     * ones before are paid). A reversal of a repayment puts the loan back on its original schedule.
     * @param loanId the loan
     */
    function schedule(uint256 loanId) external view returns (Installment[] memory);

    /**
     * @notice What is due at `asOf`: unpaid installments due by then, and charges accrued up to then.
     * @param loanId the loan
     * @param asOf unix time, not before the last accrual
     */
    function amountDue(uint256 loanId, uint40 asOf) external view returns (AmountDue memory);

    /**
     * @notice The amount that closes the loan at `asOf`: charges, due installments, all remaining
     * principal, and interest of the current period accrued to `asOf` only. On a written-off loan, what
     * the borrower still owes (the same sum less recoveries); zero on any other.
     * @param loanId the loan
     * @param asOf unix time
     */
    function payoffAmount(uint256 loanId, uint40 asOf) external view returns (uint96);

    /**
     * @notice Principal of the borrower's approved and active loans in `currency` not yet repaid or written off.
     * @param borrower the borrower
     * @param currency ISO 4217 code: exposure, like credit limits, is per currency
     */
    function outstandingPrincipal(address borrower, bytes3 currency) external view returns (uint256);

    /// @notice A loan's terms, borrower, status and disbursement time.
    function loanOf(uint256 loanId)
        external
        view
        returns (LoanTerms memory terms, address borrower, LoanStatus status, uint40 disbursedAt);

    /// @notice A loan's running totals.
    function progressOf(uint256 loanId) external view returns (LoanProgress memory);

    /// @notice True when the payment reference was already credited.
    function isPaymentReferenceUsed(bytes32 paymentRef) external view returns (bool);

    /**
     * @notice The borrower asks for a hardship reschedule (as themselves, or signed through the forwarder).
     * @param loanId an active loan of the caller's
     * @param installments the number of installments hoped for (0: no preference); an operator decides
     */
    function requestReschedule(uint256 loanId, uint16 installments) external;

    /**
     * @notice An operator offers to re-base an active loan's outstanding principal over `installments`
     * installments from its next due date (same rate and interval); replaces the loan's open offer.
     * @dev Checked now and again at acceptance: more installments than are left, within the product's longest
     * term, and within the catalogue's all-in cost cap.
     * @param loanId an active (possibly overdue) loan
     * @param installments the new schedule's number of installments
     * @param expiresAt unix time after which the offer cannot be accepted
     * @return offerId the offer's number on the loan, which the borrower's acceptance names
     */
    function offerReschedule(uint256 loanId, uint16 installments, uint40 expiresAt) external returns (uint32 offerId);

    /**
     * @notice The borrower accepts the loan's open reschedule offer (as themselves, through the forwarder).
     * @param loanId the loan
     */
    function acceptReschedule(uint256 loanId) external;

    /**
     * @notice Relayed acceptance signed by the borrower (EIP-712 `RescheduleAcceptance` over the open offer's
     * id, installments and expiry, with the borrower's nonce and a deadline).
     * @param loanId the loan
     * @param deadline unix time after which the signature is void
     * @param signature the borrower's signature
     */
    function acceptRescheduleWithSignature(uint256 loanId, uint256 deadline, bytes calldata signature) external;

    /**
     * @notice The loan's reschedule offer (open or not) and how many reschedules it has had.
     * @param loanId the loan
     */
    function rescheduleOfferOf(uint256 loanId)
        external
        view
        returns (uint32 offerId, uint16 installments, uint40 expiresAt, bool open, uint16 accepted);
}

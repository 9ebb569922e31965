// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ILoanBook} from "./ILoanBook.sol";

/**
 * @title Loan book: the lending path
 * @notice What every loan goes through, implemented by LoanBook itself (the paths gas matters most on).
 */
interface ILoanBookCore is ILoanBook {
    /**
     * @notice Records a loan application signed by the borrower (EIP-712 `LoanApplication`, over the
     * borrower, the application's fields, a nonce and the deadline). Anyone may relay it. The terms are the
     * product version's (the catalogue's `termsFor`, which refuses a retired or changed version, a principal
     * or count out of bounds, and a cost above the cap).
     * @param application the product version, principal and number of installments the borrower signed
     * @param borrower the borrower; must be eligible in the registry
     * @param deadline unix time after which the signature is void
     * @param signature the borrower's signature (ECDSA, or ERC-1271 for contract wallets)
     * @return loanId the new loan's id
     */
    function requestLoan(Application calldata application, address borrower, uint256 deadline, bytes calldata signature)
        external
        returns (uint256 loanId);

    /**
     * @notice Approves a requested loan: needs a fresh score and exposure + principal within the limit. FourEyes
     * (two operators) may approve any loan; an operator alone one whose principal is at most the payout threshold;
     * the automatic policy (POLICY_ROLE) only one its product made autoApprovable at application.
     * @param loanId the loan
     */
    function approve(uint256 loanId) external;

    /**
     * @notice Rejects a requested loan. An operator may reject any; the automatic policy (POLICY_ROLE) only one its
     * product made autoApprovable at application (what it may approve, declined with the book's reason).
     * @param loanId the loan
     * @param reason a short machine-readable reason code
     */
    function reject(uint256 loanId, bytes32 reason) external;

    /**
     * @notice Confirms the payout of an approved loan; the schedule starts at `paidAt`.
     * @param loanId the loan
     * @param paymentRef the rail's payment reference (hashed); credited once, ever
     * @param amount must equal the payout: the principal less the service fee
     * @param paidAt when the rail paid
     */
    function confirmDisbursement(uint256 loanId, bytes32 paymentRef, uint96 amount, uint40 paidAt) external;

    /**
     * @notice Confirms a repayment received over a payment rail and applies it.
     * @param loanId the loan
     * @param paymentRef the rail's payment reference (hashed); credited once, ever
     * @param amount minor units; beyond the payoff amount, held as credit (the loan closes Overpaid); on a
     * written-off loan, a recovery of at most what is still owed
     * @param paidAt when the borrower paid; charges accrue up to this time
     */
    function confirmRepayment(uint256 loanId, bytes32 paymentRef, uint96 amount, uint40 paidAt) external;

    /**
     * @notice Batch form of `confirmDisbursement`; failing items are skipped and reported by `PaymentSkipped`.
     * @param items the confirmations
     * @return applied per item, true when it was applied
     */
    function confirmDisbursements(PaymentConfirmation[] calldata items) external returns (bool[] memory applied);

    /**
     * @notice Batch form of `confirmRepayment`; failing items are skipped and reported by `PaymentSkipped`.
     * @param items the confirmations
     * @return applied per item, true when it was applied
     */
    function confirmRepayments(PaymentConfirmation[] calldata items) external returns (bool[] memory applied);

    /// @notice The number of loans ever requested; ids run from 1 to this.
    function loanCount() external view returns (uint256);
}

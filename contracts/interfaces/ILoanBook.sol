// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title Loan book
 * @notice Loans from signed application to closure. A borrower applies for a version of a product the
 * lender publishes (the product catalogue); the loan's terms are copied from it at application, so a
 * later change never touches them. The schedule starts at disbursement; disbursements and repayments
 * are confirmed by the oracle with payment references that are credited once, ever.
 *
 * This interface holds the book's types, events and errors. Its functions are in two: ILoanBookCore (what
 * every loan goes through: application, decision, payout and repayment, implemented by LoanBook itself) and
 * ILoanBookExtension (cancellation, money back, default, and the views: LoanBookExtension's code, which
 * LoanBook runs on its own storage by delegatecall). The book's address answers both.
 */
interface ILoanBook {
    enum Amortization {
        Annuity, // equal installments on a declining balance
        EqualPrincipal, // equal principal parts, interest on the declining balance
        Bullet // interest every period, all principal with the last installment
    }

    enum LoanStatus {
        None,
        Requested,
        Approved,
        Rejected,
        Cancelled,
        Active,
        Repaid,
        Defaulted,
        WrittenOff,
        Overpaid // closed with money left over: the borrower's credit balance, until it is refunded
    }

    /// @notice How due dates are spaced.
    enum Frequency {
        FixedInterval, // every `interval` seconds after disbursement
        Monthly // the disbursement's day of the month (its last day when shorter); the terms' interval is 0
    }

    /// @notice A period's share of the annual rate. Fixed intervals count actual seconds / 365 days.
    enum DayCount {
        Thirty360, // monthly: each period is 30/360 = 1/12 of a year
        Actual365Fixed // actual days / 365 (fixed intervals: actual seconds / 365 days)
    }

    /// @notice What an amount paid beyond what is due does.
    enum EarlyRepayment {
        ReduceInstallments, // the excess pays principal and the schedule gets shorter
        ReduceInstallmentAmount // the excess pays principal and the remaining installments get smaller
    }

    /// @notice What a borrower signs to apply: a product version, and a principal and a number of
    /// installments within its bounds.
    struct Application {
        uint256 productId;
        uint32 productVersion;
        uint96 principal;
        uint16 installments;
    }

    /// @notice A loan's terms, copied from its product version at application. Amounts in minor units of
    /// `currency` (ISO 4217 code). The first slot holds what every repayment reads; the second the rest.
    struct LoanTerms {
        uint96 principal;
        bytes3 currency;
        uint16 annualRateBps; // nominal annual rate; the period rate is annualRateBps * interval / 365 days
        Amortization amortization;
        uint16 installments;
        uint32 interval; // seconds between installments; 0 for a monthly loan (how the book tells it from slot 0)
        uint32 gracePeriod; // seconds after a due date before the installment is late
        uint16 lateFeeBps; // of the unpaid installment amount, charged once when grace ends
        uint16 penaltyRateBps; // annual, simple, on unpaid installment amounts from the end of grace
        uint32 defaultAfter; // seconds past the oldest unpaid due date after which default may be declared
        uint96 serviceFee; // charged up front: the payout is principal - serviceFee
        uint32 productId; // the product and version the terms were copied from
        uint32 productVersion;
        Frequency frequency;
        DayCount dayCount;
        EarlyRepayment earlyRepayment;
    }

    /// @notice One installment. `dueAt` is unix seconds (a quote's from the start it is given; an undisbursed loan's
    /// from time 0).
    struct Installment {
        uint40 dueAt;
        uint96 principal;
        uint96 interest;
    }

    /// @notice What a loan owes at a time, split as it would be allocated.
    struct AmountDue {
        uint96 principal;
        uint96 interest;
        uint96 lateFee;
        uint96 penalty;
        uint40 oldestDueAt; // due date of the oldest unpaid installment, 0 when none is unpaid
    }

    /// @notice A loan's running totals.
    struct LoanProgress {
        uint16 paidInstallments;
        uint40 accruedAt;
        uint96 principalRepaid;
        uint96 interestPaid;
        uint96 lateFeePaid;
        uint96 penaltyPaid;
        uint96 lateFeeUnpaid;
        uint96 penaltyUnpaid;
        uint96 creditBalance; // Overpaid: money held for the borrower until refunded
        uint96 recovered; // WrittenOff: recoveries received since
    }

    /// @notice A payment confirmed by the oracle. `reference` identifies it on its payment rail.
    /// @notice Where one received payment went: the parts a reversal must restore, exactly.
    struct Allocation {
        uint96 principal;
        uint96 interest;
        uint96 lateFee;
        uint96 penalty;
        uint96 credit; // beyond the payoff: held as the borrower's credit balance
        uint96 recovery; // on a written-off loan: recovered, outside the schedule
    }

    struct PaymentConfirmation {
        uint256 loanId;
        bytes32 paymentRef;
        uint96 amount;
        uint40 paidAt;
    }

    /// @notice A signed application was recorded.
    /// `autoApprovable`: the product lets the automatic policy approve it (at this principal).
    event LoanRequested(
        uint256 indexed loanId, address indexed borrower, LoanTerms terms, bool autoApprovable, uint256 nonce, address relayer
    );
    /// @notice The principal above which an approval needs FourEyes (two operators) changed.
    event PayoutThresholdChanged(uint96 previousThreshold, uint96 newThreshold, address indexed actor);
    /// @notice An operator approved a loan; `exposureAfter` includes this loan.
    event LoanApproved(
        uint256 indexed loanId,
        address indexed borrower,
        uint16 score,
        uint96 creditLimit,
        uint256 exposureAfter,
        address indexed actor
    );
    /// @notice An operator (or the automatic policy, for a loan it may approve) rejected a loan.
    event LoanRejected(uint256 indexed loanId, address indexed borrower, bytes32 reason, address indexed actor);
    /// @notice The borrower withdrew the application before disbursement.
    event LoanCancelled(uint256 indexed loanId, address indexed borrower, address indexed actor);
    /// @notice The principal was paid out; the schedule starts at `paidAt`.
    event LoanDisbursed(
        uint256 indexed loanId,
        address indexed borrower,
        bytes32 indexed paymentRef,
        uint96 amount,
        uint40 paidAt,
        address actor
    );
    /// @notice Late fees and penalty interest accrued between `fromTime` and `toTime`.
    event LateChargesAccrued(uint256 indexed loanId, uint96 lateFee, uint96 penalty, uint40 fromTime, uint40 toTime);
    /// @notice A repayment was applied: penalty, late fees, interest, principal, oldest installment first.
    event RepaymentApplied(
        uint256 indexed loanId,
        bytes32 indexed paymentRef,
        uint96 amount,
        uint96 principal,
        uint96 interest,
        uint96 lateFee,
        uint96 penalty,
        uint40 paidAt,
        uint16 paidInstallments,
        address actor
    );

    /// @notice A payment ahead of schedule paid the current installment and prepaid principal with the rest, and
    /// the installments after it were recomputed by the loan's early-repayment method: from installment
    /// `rebasedAt + 1` on (due on their dates), `installments` installments amortizing
    /// `principal` (annuity: at the exact level payment `paymentRay`, RAY-scaled). `schedule(loanId)` gives them.
    event ScheduleRebased(
        uint256 indexed loanId,
        bytes32 indexed paymentRef,
        uint16 rebasedAt,
        uint64 principal,
        uint16 installments,
        uint152 paymentRay
    );

    /// @notice A schedule's shape as an auditor rebuilds it: `installments` left from `nextDueAt` on, each of
    /// `installmentAmount` (the next installment's scheduled principal and interest; an annuity's level payment).
    struct ScheduleSummary {
        uint16 installments;
        uint96 installmentAmount;
        uint40 nextDueAt;
    }

    /// @notice The borrower asked for a hardship reschedule of `installments` installments (0: no preference).
    event RescheduleRequested(uint256 indexed loanId, address indexed borrower, uint16 installments);
    /// @notice An operator offered to reschedule the loan over `installments` installments from its next due date,
    /// at about `installmentAmount` each (the amounts are fixed at acceptance, on the principal then outstanding).
    /// A new offer replaces the loan's open one.
    event RescheduleOffered(
        uint256 indexed loanId,
        uint32 indexed offerId,
        uint16 installments,
        uint96 installmentAmount,
        uint40 expiresAt,
        address indexed actor
    );
    /// @notice The borrower accepted offer `offerId`: from installment `rebasedAt + 1` on, `current.installments`
    /// installments amortize `principal` (annuity: at the exact level payment `paymentRay`, RAY-scaled) and the
    /// loan's term is `rebasedAt + current.installments`. `previous` is the schedule replaced. Interest overdue at
    /// acceptance (`carriedInterest`) is not capitalised: it is added to the first new installment; late fees and
    /// penalty interest accrued up to acceptance stay owed.
    event RescheduleAccepted(
        uint256 indexed loanId,
        uint32 indexed offerId,
        address indexed borrower,
        ScheduleSummary previous,
        ScheduleSummary current,
        uint16 rebasedAt,
        uint64 principal,
        uint152 paymentRay,
        uint96 carriedInterest,
        address actor
    );

    /// @notice Everything owed was paid; remaining future interest is not owed.
    /// @notice The part of a repayment beyond the payoff, held as the borrower's credit (the loan is Overpaid).
    event OverpaymentHeld(uint256 indexed loanId, bytes32 indexed paymentRef, uint96 credit, uint96 creditBalance);
    /// @notice Credit paid back to the borrower over the rail; at zero the loan is Repaid.
    event CreditRefunded(
        uint256 indexed loanId, bytes32 indexed refundRef, uint96 amount, uint96 creditBalance, uint40 refundedAt, address actor
    );
    /// @notice A payment on a written-off loan: recovered money, outside the schedule.
    event RecoveryApplied(
        uint256 indexed loanId, bytes32 indexed paymentRef, uint96 amount, uint96 recovered, uint40 paidAt, address actor
    );
    /// @notice A compensating entry: a confirmed repayment the rail took back (a chargeback, a bounced debit).
    /// `reversed` is the payment's allocation; its charges are unpaid again and the principal and interest
    /// still paid are re-allocated oldest first, giving the totals and installments after it.
    event RepaymentReversed(
        uint256 indexed loanId,
        bytes32 indexed paymentRef,
        bytes32 indexed reversalRef,
        uint96 amount,
        Allocation reversed,
        uint96 principalRepaid,
        uint96 interestPaid,
        uint16 paidInstallments,
        LoanStatus status,
        uint40 reversedAt,
        address actor
    );
    /// @notice A payout that bounced before it reached the borrower: the loan is Approved again.
    event DisbursementReversed(
        uint256 indexed loanId, bytes32 indexed paymentRef, bytes32 indexed reversalRef, uint96 amount, uint40 reversedAt, address actor
    );
    event LoanRepaid(uint256 indexed loanId, address indexed borrower, uint96 principalRepaid, uint96 interestPaid);
    /// @notice The loan was declared in default.
    event LoanDefaulted(uint256 indexed loanId, address indexed borrower, uint40 oldestDueAt, uint40 declaredAt, address indexed actor);
    /// @notice A defaulted loan was written off; `principalWrittenOff` leaves the borrower's exposure.
    event LoanWrittenOff(uint256 indexed loanId, address indexed borrower, uint96 principalWrittenOff, address indexed actor);
    /// @notice In a batch, an item was skipped; `reason` is the ABI-encoded custom error.
    event PaymentSkipped(uint256 indexed loanId, bytes32 indexed paymentRef, bytes reason);
    /// @notice The cap on the annual rate changed.

    /// @dev The loan has no open reschedule offer.
    error LoanBookNoRescheduleOffer(uint256 loanId);
    /// @dev The reschedule offer expired at `expiresAt`.
    error LoanBookRescheduleOfferExpired(uint256 loanId, uint40 expiresAt);
    /// @dev The installments offered are outside what the product allows for this loan now: more than the
    /// `minInstallments - 1` left (a longer term), and at most the product's longest term less those already past.
    error LoanBookRescheduleOutsideProduct(uint256 loanId, uint16 installments, uint16 minInstallments, uint16 maxInstallments);
    /// @dev The new schedule discounted at the catalogue's cost cap is worth more than the principal it finances.
    error LoanBookRescheduleAboveCap(uint256 loanId, uint256 presentValue, uint256 principal);
    /// @dev The loan was rescheduled: its earlier repayments cannot be re-allocated by a reversal (an operator's case).
    error LoanBookRescheduled(uint256 loanId);

    /// @dev The loan id is unknown.
    error LoanBookUnknownLoan(uint256 loanId);
    /// @dev The loan is not in a state that allows the operation.
    error LoanBookInvalidStatus(uint256 loanId, LoanStatus status);
    /// @dev The borrower is not registered, revoked or its KYC expired.
    error LoanBookBorrowerNotEligible(address borrower);
    /// @dev The signed request was already used (its nonce is spent).
    error LoanBookRequestReplayed(address borrower, uint256 nonce);
    /// @dev The signature is not the borrower's.
    error LoanBookInvalidSignature(address borrower);
    /// @dev The signed request's deadline has passed.
    error LoanBookExpiredRequest(uint256 deadline, uint256 nowTimestamp);
    /// @dev The product's currency has no credit limit: the credit oracle's limits are in another.
    error LoanBookNoCreditLimit(bytes3 currency, bytes3 limitCurrency);
    /// @dev The borrower's score is missing or older than the maximum age.
    error LoanBookStaleScore(address borrower, uint40 updatedAt);
    /// @dev Approval would take the borrower's exposure above the credit limit.
    error LoanBookCreditLimitExceeded(address borrower, uint256 exposureAfter, uint96 creditLimit);
    /// @dev The payment reference was already credited.
    error LoanBookDuplicatePayment(bytes32 paymentRef);
    /// @dev The payment reference is zero.
    error LoanBookEmptyPaymentRef();
    /// @dev The disbursed amount differs from the principal.
    error LoanBookDisbursementMismatch(uint96 amount, uint96 payout);
    /// @dev The payment time is in the future or before disbursement.
    error LoanBookInvalidPaymentTime(uint40 paidAt);
    /// @dev A recovery beyond what the written-off borrower still owes; nothing is kept silently.
    error LoanBookOverpayment(uint96 amount, uint96 payoff);
    /// @dev A payment of zero.
    error LoanBookZeroAmount();
    /// @dev The loan is not yet past its default threshold.
    error LoanBookNotInDefault(uint256 loanId, uint40 defaultableAt);
    /// @dev The caller is not the loan's borrower.
    error LoanBookNotBorrower(uint256 loanId, address caller);
    /// @dev The caller may not declare default (needs the operator or oracle role).
    error LoanBookUnauthorizedDefault(address caller);
    /// @dev No such entry: the reference was never credited, was reversed already, or the parts differ.
    error LoanBookUnknownEntry(bytes32 paymentRef);
    /// @dev The credit to refund or reverse exceeds the loan's credit balance.
    error LoanBookCreditExceeded(uint256 loanId, uint96 amount, uint96 creditBalance);
    /// @dev The loan holds credit: refund it before reversing an earlier repayment.
    error LoanBookCreditHeld(uint256 loanId, uint96 creditBalance);
    /// @dev The payout has been repaid from already: a bounce can no longer undo it.
    error LoanBookDisbursementInUse(uint256 loanId);
    /// @dev The batch entry point was called from outside.
    error LoanBookOnlySelf();
    /// @dev The principal is above the payout threshold: an operator alone may not approve it, FourEyes may.
    error LoanBookNeedsFourEyes(uint256 loanId, uint96 principal, uint96 threshold);
    /// @dev The automatic policy may approve (or reject) only a loan its product let it approve at application.
    error LoanBookNotAutoApprovable(uint256 loanId);
}

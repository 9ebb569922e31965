// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ILoanBook} from "./ILoanBook.sol";

/**
 * @title Product catalogue
 * @notice The loan products a lender publishes: the borrower picks a product version, a principal and a
 * number of installments within its bounds, and the terms follow from it. Every version stays readable
 * (a loan records the version it came from); only the latest version of a product that is not retired
 * can be applied for. No product, and no application, may cost more than the all-in cost cap: the IRR of
 * *net amount paid out -> scheduled installments*, service fee included.
 */
interface IProductCatalog {
    /// @notice One version of a product. Amounts in minor units of `currency` (ISO 4217 code).
    struct Product {
        bytes32 name; // short display name, UTF-8, zero-padded
        bytes3 currency;
        uint96 minPrincipal;
        uint96 maxPrincipal;
        uint16 minInstallments;
        uint16 maxInstallments; // at most MAX_PRODUCT_INSTALLMENTS, and MAX_INSTALLMENT_CHOICES counts from the min
        ILoanBook.Frequency frequency;
        ILoanBook.DayCount dayCount; // FixedInterval: Actual365Fixed (on seconds); Monthly: either
        uint32 interval; // seconds between installments (FixedInterval); Monthly: 0, the calendar spaces them
        uint16 annualRateBps; // nominal, as in LoanTerms
        ILoanBook.Amortization amortization;
        uint32 gracePeriod;
        uint16 lateFeeBps;
        uint16 penaltyRateBps;
        uint32 defaultAfter;
        uint16 serviceFeeBps; // of principal, charged up front: deducted from the payout
        ILoanBook.EarlyRepayment earlyRepayment;
        bool autoApprove; // the automatic policy may approve applications for it...
        uint96 autoApproveMaxPrincipal; // ...up to this principal
    }

    /// @notice A product's lifecycle: its latest version and whether it is retired.
    struct ProductStatus {
        uint32 latestVersion; // 0: no such product
        bool retired;
    }

    /// @notice A product was created as version 1.
    event ProductCreated(uint256 indexed productId, uint32 version, Product product, address indexed actor);
    /// @notice A product got a new version; earlier versions stay readable but can no longer be applied for.
    event ProductChanged(uint256 indexed productId, uint32 version, Product product, address indexed actor);
    /// @notice A product was retired: no version of it can be applied for any more.
    event ProductRetired(uint256 indexed productId, uint32 latestVersion, address indexed actor);
    /// @notice The all-in cost cap changed (annualised, bps). Applications are re-checked while it is below what a product was checked under.
    event CostCapChanged(uint16 previousCapBps, uint16 newCapBps, address indexed actor);
    /// @notice The late-charge ceilings changed.
    event LateChargeCeilingsChanged(
        uint16 previousMaxRatePlusPenaltyBps,
        uint16 newMaxRatePlusPenaltyBps,
        uint16 previousMaxLateFeeBps,
        uint16 newMaxLateFeeBps,
        address indexed actor
    );

    /// @dev No such product, or no such version of it.
    error ProductCatalogUnknownProduct(uint256 productId, uint32 version);
    /// @dev The product is retired.
    error ProductCatalogRetired(uint256 productId);
    /// @dev The version applied for is not the product's latest.
    error ProductCatalogVersionChanged(uint256 productId, uint32 version, uint32 latestVersion);
    /// @dev A product field is invalid; `field` names it.
    error ProductCatalogInvalidProduct(bytes32 field);
    /// @dev The principal is outside the product's range.
    error ProductCatalogPrincipalOutOfRange(uint96 principal, uint96 minPrincipal, uint96 maxPrincipal);
    /// @dev The number of installments is outside the product's range.
    error ProductCatalogInstallmentsOutOfRange(uint16 installments, uint16 minInstallments, uint16 maxInstallments);
    /// @dev The all-in cost of these terms exceeds the cap: the installments discounted at the cap's period rate
    /// are worth more than the net amount paid out.
    error ProductCatalogCostAboveCap(
        uint96 principal, uint16 installments, uint256 presentValue, uint256 netPaidOut, uint16 capBps
    );
    /// @dev The loan rate plus the penalty rate exceeds its ceiling.
    error ProductCatalogPenaltyAboveCeiling(uint16 annualRateBps, uint16 penaltyRateBps, uint16 ceilingBps);
    /// @dev The late fee exceeds its ceiling.
    error ProductCatalogLateFeeAboveCeiling(uint16 lateFeeBps, uint16 ceilingBps);
    /// @dev An admin setting out of its range.
    error ProductCatalogInvalidSetting();

    /**
     * @notice Publishes a product as version 1. Refused when any allowed (principal, installments) would cost
     * more than the cap, or its late charges exceed their ceilings.
     * @param product the product
     * @return productId the new product's id (ids run from 1)
     */
    function createProduct(Product calldata product) external returns (uint256 productId);

    /**
     * @notice Publishes a new version of a product, checked as at creation; loans already made keep theirs.
     * @param productId the product
     * @param product the new version
     * @return version the new version number
     */
    function changeProduct(uint256 productId, Product calldata product) external returns (uint32 version);

    /**
     * @notice Retires a product: no version of it can be applied for any more. Its versions stay readable.
     * @param productId the product
     */
    function retireProduct(uint256 productId) external;

    /**
     * @notice Sets the all-in cost cap (annualised, nominal, bps). Applications are checked against the current cap.
     * @param capBps the ceiling, 1..10,000
     */
    function setCostCap(uint16 capBps) external;

    /**
     * @notice Sets the late-charge ceilings.
     * @param maxRatePlusPenaltyBps the highest loan rate plus penalty rate (annual bps)
     * @param maxLateFeeBps the highest one-off late fee (bps of the unpaid installment)
     */
    function setLateChargeCeilings(uint16 maxRatePlusPenaltyBps, uint16 maxLateFeeBps) external;

    /**
     * @notice The terms of an application for a product version: what the book consults at application.
     * Reverts when the product is unknown or retired, the version is not the latest, the principal or the
     * number of installments is out of bounds, or the cost or late charges exceed the current ceilings.
     * @param productId the product
     * @param version the version the borrower signed for
     * @param principal minor units
     * @param installments the number of installments
     * @return terms the loan's terms: the product's currency, prices and methods, this principal and count, the
     * up-front service fee (rounded down) and the product id and version
     * @return autoApprovable whether the automatic policy may approve it
     */
    function termsFor(uint256 productId, uint32 version, uint96 principal, uint16 installments)
        external
        view
        returns (ILoanBook.LoanTerms memory terms, bool autoApprovable);

    /**
     * @notice Whether terms with an up-front fee stay within the cost cap: the scheduled installments
     * discounted at the cap's period rate are worth at most the net amount paid out (principal - fee),
     * allowing the schedule's own half-unit rounding per installment.
     * @param terms the loan's terms
     * @param serviceFeeBps the up-front fee, bps of principal
     * @return ok true when within the cap
     * @return presentValue the installments' present value at the cap, minor units rounded up
     * @return netPaidOut principal less the fee, minor units
     */
    function checkCost(ILoanBook.LoanTerms calldata terms, uint16 serviceFeeBps)
        external
        view
        returns (bool ok, uint256 presentValue, uint256 netPaidOut);

    /// @notice One version of a product; reverts for an unknown product or version.
    function product(uint256 productId, uint32 version) external view returns (Product memory);

    /// @notice A product's latest version and whether it is retired (latestVersion 0: unknown).
    function statusOf(uint256 productId) external view returns (ProductStatus memory);

    /// @notice The number of products ever created; ids run from 1 to this.
    function productCount() external view returns (uint256);

    /// @notice The all-in cost cap, annualised bps.
    function costCapBps() external view returns (uint16);

    /// @notice The ceiling on the loan rate plus the penalty rate, annual bps.
    function maxRatePlusPenaltyBps() external view returns (uint16);

    /// @notice The ceiling on the late fee, bps of the unpaid installment.
    function maxLateFeeBps() external view returns (uint16);
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ILoanBook} from "./interfaces/ILoanBook.sol";
import {IProductCatalog} from "./interfaces/IProductCatalog.sol";
import {LoanMath} from "./libraries/LoanMath.sol";
import {MonthlySchedule} from "./libraries/MonthlySchedule.sol";
import {LoanLedgerRoles} from "./LoanLedgerRoles.sol";

/**
 * @title Product catalogue
 * @notice Two operators (through FourEyes) publish, version and retire loan products; the admin sets the all-in cost cap and the
 * late-charge ceilings. A contract of its own: the loan book (at its size limit) consults it at application.
 *
 * The cost check needs no root finding. The net present value of the borrower's cash flows,
 * -net + sum(installment_k / (1 + r)^k), falls as r rises, and is zero at the IRR; so the IRR is at most the
 * cap's period rate exactly when the installments discounted at that rate are worth at most the net amount
 * paid out. The cap is nominal like the loan rate: its period rate is capBps * interval / 365 days, a monthly
 * product's capBps / 12 (30/360 months: its installments are the same whatever the disbursement date).
 */
contract ProductCatalog is IProductCatalog, LoanLedgerRoles {
    /// @notice The most installment counts a product may allow: creation checks the cost at every one of them.
    uint256 public constant MAX_INSTALLMENT_CHOICES = 36;
    /// @notice The longest schedule a product may offer (ten years of monthly installments; the book allows 720).
    /// Creation walks every allowed schedule at both principal extremes, about 2,200 gas an installment: with 36
    /// counts up to 120 that is at most about 16M gas, inside a block.
    uint256 public constant MAX_PRODUCT_INSTALLMENTS = 120;
    // The book's own bounds (LoanBook._checkTerms), so a product never yields terms the book refuses.
    uint256 private constant _MAX_PRINCIPAL = 1e15;
    uint256 private constant _MIN_INTERVAL = 1 hours;
    uint256 private constant _MAX_INTERVAL = 366 days;

    /// @notice 24 % a year all-in, as China's 2025 rules for internet lending set.
    uint16 public constant DEFAULT_COST_CAP_BPS = 2_400;
    /// @notice Loan rate plus penalty rate: 36 % a year, i.e. penalty interest at most 50 % above a loan priced at
    /// the default cap (the PBoC's rule for overdue loans: the contract rate plus 30 % to 50 % of it).
    uint16 public constant DEFAULT_MAX_RATE_PLUS_PENALTY_BPS = 3_600;
    /// @notice A one-off late fee of at most 5 % of the unpaid installment, the Uniform Consumer Credit Code's
    /// (sec. 2.502) ceiling on delinquency charges.
    uint16 public constant DEFAULT_MAX_LATE_FEE_BPS = 500;

    /// @dev Whether a stored version can be applied for: only the latest version of a product not retired can.
    enum VersionState {
        None,
        Open,
        Superseded, // a later version was published
        Retired // the product was retired while this was its latest version
    }

    /// @dev A product version as stored: an application reads the two slots after the name (and the ceilings)
    /// and nothing else: the version says itself whether it is open, and the cost cap it was checked under.
    /// Principals are at most _MAX_PRINCIPAL, under 2^50, so 64 bits hold them.
    struct StoredProduct {
        bytes32 name;
        bytes3 currency; // slot 1
        uint64 minPrincipal;
        uint64 maxPrincipal;
        uint16 minInstallments;
        uint16 maxInstallments;
        ILoanBook.Frequency frequency;
        ILoanBook.DayCount dayCount;
        uint32 interval;
        uint16 annualRateBps;
        VersionState state;
        ILoanBook.Amortization amortization; // slot 2
        uint32 gracePeriod;
        uint16 lateFeeBps;
        uint16 penaltyRateBps;
        uint32 defaultAfter;
        uint16 serviceFeeBps;
        ILoanBook.EarlyRepayment earlyRepayment;
        bool autoApprove;
        uint64 autoApproveMaxPrincipal;
        // The cost cap this version was checked under at every allowed count and both principal extremes: an
        // application needs no re-check (tens of thousands of gas) unless the cap is lower now.
        uint16 checkedCapBps;
    }

    mapping(uint256 productId => mapping(uint32 version => StoredProduct)) private _products;
    mapping(uint256 productId => ProductStatus) private _status;
    uint256 private _productCount;

    /// @inheritdoc IProductCatalog
    uint16 public costCapBps;
    /// @inheritdoc IProductCatalog
    uint16 public maxRatePlusPenaltyBps;
    /// @inheritdoc IProductCatalog
    uint16 public maxLateFeeBps;

    /**
     * @param admin receives DEFAULT_ADMIN_ROLE; the ceilings start at their defaults
     * @param trustedForwarder_ the LoanLedgerForwarder (signed decisions act for their signer)
     */
    constructor(address admin, address trustedForwarder_) LoanLedgerRoles(admin, trustedForwarder_) {
        costCapBps = DEFAULT_COST_CAP_BPS;
        maxRatePlusPenaltyBps = DEFAULT_MAX_RATE_PLUS_PENALTY_BPS;
        maxLateFeeBps = DEFAULT_MAX_LATE_FEE_BPS;
    }

    /// @inheritdoc IProductCatalog
    function createProduct(Product calldata p) external onlyRole(FOUR_EYES_ROLE) whenNotPaused returns (uint256 productId) {
        _checkProduct(p);
        productId = ++_productCount;
        _store(productId, 1, p);
        _status[productId] = ProductStatus({latestVersion: 1, retired: false});
        emit ProductCreated(productId, 1, p, _msgSender());
    }

    /// @inheritdoc IProductCatalog
    function changeProduct(uint256 productId, Product calldata p)
        external
        onlyRole(FOUR_EYES_ROLE)
        whenNotPaused
        returns (uint32 version)
    {
        ProductStatus storage status = _liveStatus(productId);
        _checkProduct(p);
        _products[productId][status.latestVersion].state = VersionState.Superseded;
        version = status.latestVersion + 1;
        status.latestVersion = version;
        _store(productId, version, p);
        emit ProductChanged(productId, version, p, _msgSender());
    }

    /// @inheritdoc IProductCatalog
    function retireProduct(uint256 productId) external onlyRole(FOUR_EYES_ROLE) whenNotPaused {
        ProductStatus storage status = _liveStatus(productId);
        status.retired = true;
        _products[productId][status.latestVersion].state = VersionState.Retired;
        emit ProductRetired(productId, status.latestVersion, _msgSender());
    }

    /// @inheritdoc IProductCatalog
    function setCostCap(uint16 capBps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (capBps == 0 || capBps > LoanMath.BPS) revert ProductCatalogInvalidSetting();
        emit CostCapChanged(costCapBps, capBps, _msgSender());
        costCapBps = capBps;
    }

    /// @inheritdoc IProductCatalog
    function setLateChargeCeilings(uint16 maxRatePlusPenalty, uint16 maxLateFee) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (maxRatePlusPenalty == 0 || maxLateFee > LoanMath.BPS) revert ProductCatalogInvalidSetting();
        emit LateChargeCeilingsChanged(maxRatePlusPenaltyBps, maxRatePlusPenalty, maxLateFeeBps, maxLateFee, _msgSender());
        maxRatePlusPenaltyBps = maxRatePlusPenalty;
        maxLateFeeBps = maxLateFee;
    }

    /// @inheritdoc IProductCatalog
    function termsFor(uint256 productId, uint32 version, uint96 principal, uint16 installments)
        external
        view
        returns (ILoanBook.LoanTerms memory terms, bool autoApprovable)
    {
        StoredProduct storage p = _products[productId][version];
        VersionState state = p.state;
        if (state != VersionState.Open) _refuse(productId, version, state);
        if (principal < p.minPrincipal || principal > p.maxPrincipal) {
            revert ProductCatalogPrincipalOutOfRange(principal, p.minPrincipal, p.maxPrincipal);
        }
        if (installments < p.minInstallments || installments > p.maxInstallments) {
            revert ProductCatalogInstallmentsOutOfRange(installments, p.minInstallments, p.maxInstallments);
        }
        // The ceilings may have been lowered since the product was published: the application meets today's.
        _checkLateCharges(p.annualRateBps, p.penaltyRateBps, p.lateFeeBps);
        terms = ILoanBook.LoanTerms({
            principal: principal,
            currency: p.currency,
            annualRateBps: p.annualRateBps,
            amortization: p.amortization,
            installments: installments,
            interval: p.interval,
            gracePeriod: p.gracePeriod,
            lateFeeBps: p.lateFeeBps,
            penaltyRateBps: p.penaltyRateBps,
            defaultAfter: p.defaultAfter,
            serviceFee: _serviceFee(principal, p.serviceFeeBps),
            productId: uint32(productId),
            productVersion: version,
            frequency: p.frequency,
            dayCount: p.dayCount,
            earlyRepayment: p.earlyRepayment
        });
        if (costCapBps < p.checkedCapBps) _requireWithinCap(terms, p.serviceFeeBps);
        autoApprovable = p.autoApprove && principal <= p.autoApproveMaxPrincipal;
    }

    /// @inheritdoc IProductCatalog
    function checkCost(ILoanBook.LoanTerms calldata terms, uint16 serviceFeeBps)
        external
        view
        returns (bool ok, uint256 presentValue, uint256 netPaidOut)
    {
        return _cost(terms, serviceFeeBps);
    }

    /// @inheritdoc IProductCatalog
    function product(uint256 productId, uint32 version) external view returns (Product memory) {
        if (version == 0 || version > _status[productId].latestVersion) {
            revert ProductCatalogUnknownProduct(productId, version);
        }
        StoredProduct storage p = _products[productId][version];
        return Product({
            name: p.name,
            currency: p.currency,
            minPrincipal: p.minPrincipal,
            maxPrincipal: p.maxPrincipal,
            minInstallments: p.minInstallments,
            maxInstallments: p.maxInstallments,
            frequency: p.frequency,
            dayCount: p.dayCount,
            interval: p.interval,
            annualRateBps: p.annualRateBps,
            amortization: p.amortization,
            gracePeriod: p.gracePeriod,
            lateFeeBps: p.lateFeeBps,
            penaltyRateBps: p.penaltyRateBps,
            defaultAfter: p.defaultAfter,
            serviceFeeBps: p.serviceFeeBps,
            earlyRepayment: p.earlyRepayment,
            autoApprove: p.autoApprove,
            autoApproveMaxPrincipal: p.autoApproveMaxPrincipal
        });
    }

    /// @inheritdoc IProductCatalog
    function statusOf(uint256 productId) external view returns (ProductStatus memory) {
        return _status[productId];
    }

    /// @inheritdoc IProductCatalog
    function productCount() external view returns (uint256) {
        return _productCount;
    }

    /// @notice The status of a product that exists and is not retired.
    function _liveStatus(uint256 productId) private view returns (ProductStatus storage status) {
        status = _status[productId];
        if (status.latestVersion == 0) revert ProductCatalogUnknownProduct(productId, 0);
        if (status.retired) revert ProductCatalogRetired(productId);
    }

    /// @notice A product's fields, its late charges and its cost at every allowed (principal, installments).
    function _checkProduct(Product memory p) private view {
        if (p.name == bytes32(0)) revert ProductCatalogInvalidProduct("name");
        if (p.currency == bytes3(0)) revert ProductCatalogInvalidProduct("currency");
        if (p.minPrincipal == 0 || p.minPrincipal > p.maxPrincipal || p.maxPrincipal > _MAX_PRINCIPAL) {
            revert ProductCatalogInvalidProduct("principal");
        }
        if (
            p.minInstallments == 0 || p.minInstallments > p.maxInstallments || p.maxInstallments > MAX_PRODUCT_INSTALLMENTS
                || p.maxInstallments - p.minInstallments >= MAX_INSTALLMENT_CHOICES
        ) revert ProductCatalogInvalidProduct("installments");
        if (p.frequency == ILoanBook.Frequency.Monthly) {
            // The calendar spaces the installments: interval 0 is how the book knows a monthly loan (LoanTerms).
            if (p.interval != 0) revert ProductCatalogInvalidProduct("interval");
            if (p.dayCount == ILoanBook.DayCount.Actual365Fixed) _checkLongestMonth(p);
        } else {
            // 30/360 is a calendar convention: a fixed interval is counted on its seconds.
            if (p.dayCount != ILoanBook.DayCount.Actual365Fixed) revert ProductCatalogInvalidProduct("dayCount");
            if (p.interval < _MIN_INTERVAL || p.interval > _MAX_INTERVAL) revert ProductCatalogInvalidProduct("interval");
        }
        if (p.defaultAfter == 0) revert ProductCatalogInvalidProduct("defaultAfter");
        if (p.serviceFeeBps >= LoanMath.BPS) revert ProductCatalogInvalidProduct("serviceFeeBps");
        if (
            p.autoApproveMaxPrincipal > _MAX_PRINCIPAL
                || (p.autoApprove ? p.autoApproveMaxPrincipal < p.minPrincipal : p.autoApproveMaxPrincipal != 0)
        ) {
            revert ProductCatalogInvalidProduct("autoApproveMaxPrincipal");
        }
        _checkLateCharges(p.annualRateBps, p.penaltyRateBps, p.lateFeeBps);
        // The worst case over the range. The fee is proportional to principal and so is every installment, so
        // the cost does not depend on principal but through rounding, which weighs most at the smallest and
        // least at the largest principal: both extremes are checked. The number of installments changes the
        // cost (a fee spread over fewer periods costs more a year): every allowed count is checked.
        for (uint256 n = p.minInstallments; n <= p.maxInstallments; ++n) {
            _requireWithinCap(_terms(p, 0, 0, p.minPrincipal, uint16(n)), p.serviceFeeBps);
            if (p.maxPrincipal != p.minPrincipal) {
                _requireWithinCap(_terms(p, 0, 0, p.maxPrincipal, uint16(n)), p.serviceFeeBps);
            }
        }
    }

    /**
     * @dev A monthly annuity on actual days: its level payment (at a twelfth of the rate) must cover a 31-day
     * month's interest on the whole principal, so the balance falls every month (else a long month would add
     * to it). The payment is smallest at the most installments.
     */
    function _checkLongestMonth(Product memory p) private pure {
        if (p.amortization != ILoanBook.Amortization.Annuity) return;
        LoanMath.Plan memory plan = LoanMath.plan(_terms(p, 0, 0, p.maxPrincipal, p.maxInstallments));
        if (plan.paymentRay * LoanMath.BPS * LoanMath.YEAR <= plan.principal * LoanMath.RAY * p.annualRateBps * 31 days) {
            revert ProductCatalogInvalidProduct("annualRateBps");
        }
    }

    function _checkLateCharges(uint16 annualRateBps, uint16 penaltyRateBps, uint16 lateFeeBps) private view {
        uint16 ceiling = maxRatePlusPenaltyBps;
        if (uint256(annualRateBps) + penaltyRateBps > ceiling) {
            revert ProductCatalogPenaltyAboveCeiling(annualRateBps, penaltyRateBps, ceiling);
        }
        if (lateFeeBps > maxLateFeeBps) revert ProductCatalogLateFeeAboveCeiling(lateFeeBps, maxLateFeeBps);
    }

    /// @dev Why a version that is not open cannot be applied for (only on the failure path: reads the status).
    function _refuse(uint256 productId, uint32 version, VersionState state) private view {
        if (state == VersionState.None) revert ProductCatalogUnknownProduct(productId, version);
        if (state == VersionState.Retired) revert ProductCatalogRetired(productId);
        ProductStatus memory status = _status[productId];
        if (status.retired) revert ProductCatalogRetired(productId);
        revert ProductCatalogVersionChanged(productId, version, status.latestVersion);
    }

    /// @dev Checked by `_checkProduct` first: the principals fit 64 bits.
    function _store(uint256 productId, uint32 version, Product calldata p) private {
        _products[productId][version] = StoredProduct({
            name: p.name,
            currency: p.currency,
            minPrincipal: uint64(p.minPrincipal),
            maxPrincipal: uint64(p.maxPrincipal),
            minInstallments: p.minInstallments,
            maxInstallments: p.maxInstallments,
            frequency: p.frequency,
            dayCount: p.dayCount,
            interval: p.interval,
            annualRateBps: p.annualRateBps,
            amortization: p.amortization,
            gracePeriod: p.gracePeriod,
            lateFeeBps: p.lateFeeBps,
            penaltyRateBps: p.penaltyRateBps,
            defaultAfter: p.defaultAfter,
            serviceFeeBps: p.serviceFeeBps,
            earlyRepayment: p.earlyRepayment,
            autoApprove: p.autoApprove,
            autoApproveMaxPrincipal: uint64(p.autoApproveMaxPrincipal),
            state: VersionState.Open,
            checkedCapBps: costCapBps
        });
    }

    function _terms(Product memory p, uint256 productId, uint32 version, uint96 principal, uint16 installments)
        private
        pure
        returns (ILoanBook.LoanTerms memory)
    {
        return ILoanBook.LoanTerms({
            principal: principal,
            currency: p.currency,
            annualRateBps: p.annualRateBps,
            amortization: p.amortization,
            installments: installments,
            interval: p.interval,
            gracePeriod: p.gracePeriod,
            lateFeeBps: p.lateFeeBps,
            penaltyRateBps: p.penaltyRateBps,
            defaultAfter: p.defaultAfter,
            serviceFee: _serviceFee(principal, p.serviceFeeBps),
            productId: uint32(productId), // ids count up from 1: 2^32 products will never be published
            productVersion: version,
            frequency: p.frequency,
            dayCount: p.dayCount,
            earlyRepayment: p.earlyRepayment
        });
    }

    function _requireWithinCap(ILoanBook.LoanTerms memory terms, uint16 serviceFeeBps) private view {
        (bool ok, uint256 presentValue, uint256 netPaidOut) = _cost(terms, serviceFeeBps);
        if (!ok) {
            revert ProductCatalogCostAboveCap(terms.principal, terms.installments, presentValue, netPaidOut, costCapBps);
        }
    }

    /// @notice The fee is rounded down: the borrower is never charged the rounding, and the cost check sees no
    /// more paid out than the book will pay.
    function _serviceFee(uint96 principal, uint16 serviceFeeBps) private pure returns (uint96) {
        return uint96((uint256(principal) * serviceFeeBps) / LoanMath.BPS);
    }

    /**
     * @notice The installments (LoanMath's schedule, exactly as the book computes it) discounted at the cap's
     * period rate, against the net amount paid out.
     * @dev RAY fixed point. Each discount factor is rounded up, so the present value is never understated. The
     * schedule rounds each installment half-up to the minor unit, so a loan priced exactly at the cap can owe up
     * to half a unit per installment more than the exact schedule: that much is allowed, no more.
     */
    function _cost(ILoanBook.LoanTerms memory terms, uint16 serviceFeeBps)
        private
        view
        returns (bool ok, uint256 presentValue, uint256 netPaidOut)
    {
        LoanMath.Plan memory plan = LoanMath.plan(terms);
        // The plan's interval: a monthly product's period is a twelfth of a year (its terms' interval is 0).
        uint256 capRateRay = Math.mulDiv(uint256(costCapBps) * plan.interval, LoanMath.RAY, LoanMath.BPS * LoanMath.YEAR);
        uint256 onePlusCap = LoanMath.RAY + capRateRay;
        LoanMath.Cursor memory cursor = LoanMath.start(plan);
        uint256 discountRay = LoanMath.RAY;
        uint256 presentValueRay;
        // A monthly loan on actual days charges each month's days, which depend on the disbursement date: the check
        // takes every month as 31 days long, the dearest any calendar can be.
        bool actualDays = terms.interval == 0 && terms.dayCount == ILoanBook.DayCount.Actual365Fixed;
        for (uint256 k = 0; k < plan.installments; ++k) {
            (uint256 principalPart, uint256 interestPart) =
                actualDays ? MonthlySchedule.nextActual(plan, cursor, 31 days) : LoanMath.next(plan, cursor);
            discountRay = Math.mulDiv(discountRay, LoanMath.RAY, onePlusCap, Math.Rounding.Ceil);
            presentValueRay += (principalPart + interestPart) * discountRay;
        }
        netPaidOut = terms.principal - _serviceFee(terms.principal, serviceFeeBps);
        presentValue = Math.ceilDiv(presentValueRay, LoanMath.RAY);
        ok = presentValueRay <= netPaidOut * LoanMath.RAY + plan.installments * (LoanMath.RAY / 2);
    }
}

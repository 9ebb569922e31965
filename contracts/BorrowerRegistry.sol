// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IBorrowerRegistry} from "./interfaces/IBorrowerRegistry.sol";
import {LoanLedgerRoles} from "./LoanLedgerRoles.sol";

/**
 * @title Borrower registry
 * @notice The source of truth for who may borrow. It also answers Besu's account-permissioning
 * question (`transactionAllowed`), so an operator job can mirror it into node allowlists.
 *
 * A borrower is registered by an operator's signed decision (a manual registration, through the forwarder) or by
 * the oracle service account, which brings a completed KYC on-chain as it brings the other off-chain facts
 * (payments, scores): OPERATOR_ROLE or ORACLE_ROLE may register and update, only an operator may revoke.
 */
contract BorrowerRegistry is IBorrowerRegistry, LoanLedgerRoles {
    /// @notice The API's relayer: no function checks it; only `transactionAllowed` reads it, so that the relayer,
    /// which holds no other role, may submit borrowers' and staff's signed requests on a permissioned chain.
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");

    mapping(address borrower => Borrower) private _borrowers;
    /// @notice Wallet recovery links: one identity's wallets form a chain, oldest first.
    mapping(address borrower => address) public successorOf;
    mapping(address borrower => address) public predecessorOf;

    /// @dev Registration and update: an operator (a person's decision) or the oracle (a completed KYC).
    modifier onlyRegistrar() {
        address sender = _msgSender();
        if (!hasRole(OPERATOR_ROLE, sender) && !hasRole(ORACLE_ROLE, sender)) {
            revert AccessControlUnauthorizedAccount(sender, OPERATOR_ROLE);
        }
        _;
    }

    /**
     * @param admin receives DEFAULT_ADMIN_ROLE
     * @param trustedForwarder_ the LoanLedgerForwarder (signed decisions act for their signer)
     */
    constructor(address admin, address trustedForwarder_) LoanLedgerRoles(admin, trustedForwarder_) {}

    /// @inheritdoc IBorrowerRegistry
    function registerBorrower(address borrower, bytes32 identityCommitment, uint40 kycExpiresAt)
        external
        onlyRegistrar
        whenNotPaused
    {
        _checkRecord(borrower, identityCommitment, kycExpiresAt);
        if (_borrowers[borrower].registeredAt != 0) revert RegistryAlreadyRegistered(borrower);
        _borrowers[borrower] = Borrower({
            identityCommitment: identityCommitment,
            kycExpiresAt: kycExpiresAt,
            registeredAt: uint40(block.timestamp),
            revoked: false
        });
        emit BorrowerRegistered(borrower, identityCommitment, kycExpiresAt, _msgSender());
    }

    /// @inheritdoc IBorrowerRegistry
    function updateBorrower(address borrower, bytes32 identityCommitment, uint40 kycExpiresAt)
        external
        onlyRegistrar
        whenNotPaused
    {
        _checkRecord(borrower, identityCommitment, kycExpiresAt);
        Borrower storage record = _existing(borrower);
        record.identityCommitment = identityCommitment;
        record.kycExpiresAt = kycExpiresAt;
        emit BorrowerUpdated(borrower, identityCommitment, kycExpiresAt, _msgSender());
    }

    /// @inheritdoc IBorrowerRegistry
    function revokeBorrower(address borrower, bytes32 reason) external onlyRole(OPERATOR_ROLE) whenNotPaused {
        _existing(borrower).revoked = true;
        emit BorrowerRevoked(borrower, reason, _msgSender());
    }

    /// @inheritdoc IBorrowerRegistry
    function recoverBorrower(address oldBorrower, address newBorrower, bytes32 identityCommitment, uint40 kycExpiresAt)
        external
        onlyRole(ORACLE_ROLE)
        whenNotPaused
    {
        _checkRecord(newBorrower, identityCommitment, kycExpiresAt);
        Borrower storage old = _existing(oldBorrower);
        // A new wallet only: an address that was ever registered keeps its own history (and cannot merge two).
        if (_borrowers[newBorrower].registeredAt != 0) {
            revert RegistryRecoveryTargetTaken(newBorrower);
        }
        old.revoked = true;
        successorOf[oldBorrower] = newBorrower;
        predecessorOf[newBorrower] = oldBorrower;
        _borrowers[newBorrower] = Borrower({
            identityCommitment: identityCommitment,
            kycExpiresAt: kycExpiresAt,
            registeredAt: uint40(block.timestamp),
            revoked: false
        });
        address actor = _msgSender();
        emit BorrowerRevoked(oldBorrower, "recovered", actor);
        emit BorrowerRecovered(oldBorrower, newBorrower, actor);
        emit BorrowerRegistered(newBorrower, identityCommitment, kycExpiresAt, actor);
    }

    /// @inheritdoc IBorrowerRegistry
    function borrowerOf(address borrower) external view returns (Borrower memory) {
        return _borrowers[borrower];
    }

    /// @inheritdoc IBorrowerRegistry
    function isEligible(address borrower) public view returns (bool) {
        Borrower storage record = _borrowers[borrower];
        // slither-disable-next-line timestamp -- KYC expiry is a date; minutes of miner drift do not matter
        return record.registeredAt != 0 && !record.revoked && block.timestamp < record.kycExpiresAt;
    }

    /**
     * @notice Besu account permissioning: may `sender` transact? Eligible borrowers, staff and the relayer may.
     * @dev Same signature as Besu's account-permissioning contract interface; the other
     * parameters are part of that interface and not used here.
     */
    function transactionAllowed(address sender, address, uint256, uint256, uint256, bytes calldata)
        external
        view
        returns (bool)
    {
        // slither-disable-next-line timestamp -- via isEligible: KYC expiry is a date, drift does not matter
        return isEligible(sender) || isStaff(sender) || hasRole(RELAYER_ROLE, sender);
    }

    function _checkRecord(address borrower, bytes32 identityCommitment, uint40 kycExpiresAt) private view {
        if (borrower == address(0)) revert RegistryZeroAddress();
        if (identityCommitment == bytes32(0)) revert RegistryEmptyCommitment();
        // slither-disable-next-line timestamp -- see isEligible
        if (kycExpiresAt <= block.timestamp) revert RegistryExpiryInPast(kycExpiresAt, block.timestamp);
    }

    function _existing(address borrower) private view returns (Borrower storage record) {
        record = _borrowers[borrower];
        if (record.registeredAt == 0) revert RegistryUnknownBorrower(borrower);
        if (record.revoked) revert RegistryBorrowerRevoked(borrower);
    }
}

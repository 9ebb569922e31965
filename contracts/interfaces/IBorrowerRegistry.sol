// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title Borrower registry
 * @notice Who may borrow: an address, a salted commitment to its off-chain KYC record
 * (never the record itself) and the date the verification expires.
 */
interface IBorrowerRegistry {
    /// @notice A borrower's on-chain record. `identityCommitment` is keccak256 of the salted KYC record.
    struct Borrower {
        bytes32 identityCommitment;
        uint40 kycExpiresAt;
        uint40 registeredAt;
        bool revoked;
    }

    /// @notice A borrower was registered after passing KYC.
    event BorrowerRegistered(
        address indexed borrower, bytes32 identityCommitment, uint40 kycExpiresAt, address indexed actor
    );
    /// @notice A borrower's commitment or KYC expiry changed (re-verification, e.g. after a phone change).
    event BorrowerUpdated(address indexed borrower, bytes32 identityCommitment, uint40 kycExpiresAt, address indexed actor);
    /// @notice A borrower was revoked and may no longer apply.
    event BorrowerRevoked(address indexed borrower, bytes32 reason, address indexed actor);

    /// @dev The address is the zero address.
    error RegistryZeroAddress();
    /// @dev The commitment is empty.
    error RegistryEmptyCommitment();
    /// @dev The KYC expiry is not in the future.
    error RegistryExpiryInPast(uint40 kycExpiresAt, uint256 nowTimestamp);
    /// @dev `register` on a borrower that already has a record.
    error RegistryAlreadyRegistered(address borrower);
    /// @dev `update` or `revoke` on an address with no record.
    error RegistryUnknownBorrower(address borrower);
    /// @dev `update` or `revoke` on a revoked borrower.
    error RegistryBorrowerRevoked(address borrower);

    /**
     * @notice Registers a verified borrower (an operator, or the oracle bringing a completed KYC on-chain).
     * @param borrower the borrower's wallet address
     * @param identityCommitment keccak256 of the salted KYC record (computed off-chain by the PII vault)
     * @param kycExpiresAt unix time after which the borrower must verify again
     */
    function registerBorrower(address borrower, bytes32 identityCommitment, uint40 kycExpiresAt) external;

    /**
     * @notice Replaces a borrower's commitment and expiry after re-verification.
     * @param borrower the borrower's wallet address
     * @param identityCommitment the new commitment
     * @param kycExpiresAt the new expiry
     */
    function updateBorrower(address borrower, bytes32 identityCommitment, uint40 kycExpiresAt) external;

    /**
     * @notice Revokes a borrower; loans already running are not affected, new applications are refused.
     * @param borrower the borrower's wallet address
     * @param reason a short machine-readable reason code
     */
    function revokeBorrower(address borrower, bytes32 reason) external;

    /**
     * @notice The borrower's record (all zero when unknown).
     * @param borrower the borrower's wallet address
     */
    function borrowerOf(address borrower) external view returns (Borrower memory);

    /**
     * @notice True when the borrower is registered, not revoked and its KYC has not expired.
     * @param borrower the borrower's wallet address
     */
    function isEligible(address borrower) external view returns (bool);
}

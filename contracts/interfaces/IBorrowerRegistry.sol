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

    /// @notice A borrower who lost their wallet proved the same identity on `newBorrower`: the record moved there and
    /// `oldBorrower` is revoked (reason "recovered"). Loans of the old address stay payable and keep counting.
    event BorrowerRecovered(address indexed oldBorrower, address indexed newBorrower, address indexed actor);

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
    /// @dev `recover` to an address that already has (or had) a record, or onto itself.
    error RegistryRecoveryTargetTaken(address newBorrower);

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
     * @notice Moves a borrower's record to a new wallet after the same identity was proven again on it (the oracle
     * bringing a completed recovery KYC on-chain): the old address is revoked with reason "recovered" and linked to
     * the new one, the new one is registered with `identityCommitment` and `kycExpiresAt`.
     * @param oldBorrower the lost wallet (registered, not revoked)
     * @param newBorrower the new wallet (never registered)
     * @param identityCommitment the commitment of the re-verified record
     * @param kycExpiresAt the new expiry
     */
    function recoverBorrower(address oldBorrower, address newBorrower, bytes32 identityCommitment, uint40 kycExpiresAt)
        external;

    /**
     * @notice The wallet a recovered address moved to (zero when it was never recovered).
     * @param borrower a wallet address
     */
    function successorOf(address borrower) external view returns (address);

    /**
     * @notice The wallet this address was recovered from (zero for an identity's first wallet). Walking it back lists
     * every address of one identity, whose exposures the loan book adds up against the identity's limit.
     * @param borrower a wallet address
     */
    function predecessorOf(address borrower) external view returns (address);

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

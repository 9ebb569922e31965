// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title Credit oracle
 * @notice Credit scores and limits pushed in batches by the oracle service. A batch is a report
 * signed (EIP-712) by a quorum of score signers and submitted by an account with the oracle role.
 */
interface ICreditOracle {
    /// @notice One borrower's entry in a report.
    struct ScoreUpdate {
        address borrower;
        uint16 score;
        uint96 creditLimit;
    }

    /// @notice The latest score of a borrower, packed in one storage slot.
    struct CreditScore {
        uint16 score;
        uint96 creditLimit;
        uint40 updatedAt;
        uint32 modelVersion;
        uint64 reportId;
    }

    /// @notice A borrower's score changed.
    event ScoreUpdated(
        address indexed borrower, uint16 score, uint96 creditLimit, uint32 modelVersion, uint64 indexed reportId
    );
    /// @notice A signed report was accepted.
    event ScoreReportAccepted(uint64 indexed reportId, uint32 modelVersion, uint256 count, address indexed submitter);
    /// @notice The maximum age of a score usable for approval changed.
    event MaxScoreAgeChanged(uint40 previousMaxAge, uint40 newMaxAge, address indexed actor);
    /// @notice The number of distinct signer signatures a report needs changed.
    event SignerThresholdChanged(uint8 previousThreshold, uint8 newThreshold, address indexed actor);

    /// @dev The report id is not greater than the last accepted one (a replay or an out-of-order report).
    error OracleStaleReport(uint64 reportId, uint64 lastReportId);
    /// @dev Fewer valid signatures than the threshold.
    error OracleInsufficientSignatures(uint256 provided, uint8 threshold);
    /// @dev A signature does not come from a score signer, or signers are not in ascending order.
    error OracleInvalidSigner(address recovered);
    /// @dev The report has no entries.
    error OracleEmptyReport();
    /// @dev A report entry names the zero address.
    error OracleZeroBorrower(uint256 index);
    /// @dev A threshold of zero, or a zero maximum age.
    error OracleInvalidSetting();

    /**
     * @notice Applies a signed batch of scores.
     * @param reportId strictly increasing report id, the replay guard
     * @param modelVersion version of the scoring model that produced the scores
     * @param updates the entries, at most one per borrower is meaningful (the last one wins)
     * @param signatures EIP-712 signatures of distinct score signers, ordered by signer address ascending
     */
    function pushScores(
        uint64 reportId,
        uint32 modelVersion,
        ScoreUpdate[] calldata updates,
        bytes[] calldata signatures
    ) external;

    /**
     * @notice Sets how old a score may be and still back an approval.
     * @param maxAge seconds
     */
    function setMaxScoreAge(uint40 maxAge) external;

    /**
     * @notice Sets how many distinct score signers must sign a report.
     * @param threshold at least one
     */
    function setSignerThreshold(uint8 threshold) external;

    /**
     * @notice The latest score of a borrower (all zero when none).
     * @param borrower the borrower's wallet address
     */
    function scoreOf(address borrower) external view returns (CreditScore memory);

    /**
     * @notice True when the borrower has a score no older than the maximum age.
     * @param borrower the borrower's wallet address
     */
    function isFresh(address borrower) external view returns (bool);

    /// @notice The EIP-712 digest signers sign for a report.
    function reportDigest(uint64 reportId, uint32 modelVersion, ScoreUpdate[] calldata updates)
        external
        view
        returns (bytes32);
}

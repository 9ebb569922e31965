// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ICreditOracle} from "./interfaces/ICreditOracle.sol";
import {LoanLedgerRoles} from "./LoanLedgerRoles.sol";

/**
 * @title Credit oracle
 * @notice Holds each borrower's latest score and credit limit. A report is accepted only when
 * submitted by the oracle role AND signed by `signerThreshold` distinct score signers over an
 * EIP-712 digest that binds chain id, this contract, the report id and every entry; report ids
 * strictly increase, so a report cannot be replayed (as Chainlink OCR2 requires a newer round).
 */
contract CreditOracle is ICreditOracle, LoanLedgerRoles, EIP712 {
    /// @notice Keys whose signatures make a report valid. Rotating the oracle key = grant + revoke.
    bytes32 public constant SCORE_SIGNER_ROLE = keccak256("SCORE_SIGNER_ROLE");

    bytes32 private constant _SCORE_UPDATE_TYPEHASH =
        keccak256("ScoreUpdate(address borrower,uint16 score,uint96 creditLimit)");
    bytes32 private constant _SCORE_REPORT_TYPEHASH = keccak256(
        "ScoreReport(uint64 reportId,uint32 modelVersion,ScoreUpdate[] updates)ScoreUpdate(address borrower,uint16 score,uint96 creditLimit)"
    );

    mapping(address borrower => CreditScore) private _scores;
    uint64 public lastReportId;
    uint40 public maxScoreAge;
    uint8 public signerThreshold;

    /**
     * @param admin receives DEFAULT_ADMIN_ROLE
     * @param trustedForwarder_ the LoanLedgerForwarder (signed decisions act for their signer)
     * @param initialMaxScoreAge seconds a score stays usable for approvals
     */
    constructor(address admin, address trustedForwarder_, uint40 initialMaxScoreAge)
        LoanLedgerRoles(admin, trustedForwarder_)
        EIP712("LoanLedger CreditOracle", "1")
    {
        if (initialMaxScoreAge == 0) revert OracleInvalidSetting();
        maxScoreAge = initialMaxScoreAge;
        signerThreshold = 1;
    }

    /// @inheritdoc ICreditOracle
    function pushScores(
        uint64 reportId,
        uint32 modelVersion,
        ScoreUpdate[] calldata updates,
        bytes[] calldata signatures
    ) external onlyRole(ORACLE_ROLE) whenNotPaused {
        if (reportId <= lastReportId) revert OracleStaleReport(reportId, lastReportId);
        uint256 count = updates.length;
        if (count == 0) revert OracleEmptyReport();
        _checkSignatures(reportDigest(reportId, modelVersion, updates), signatures);

        lastReportId = reportId;
        uint40 nowTs = uint40(block.timestamp);
        for (uint256 i = 0; i < count; ++i) {
            ScoreUpdate calldata entry = updates[i];
            if (entry.borrower == address(0)) revert OracleZeroBorrower(i);
            _scores[entry.borrower] = CreditScore({
                score: entry.score,
                creditLimit: entry.creditLimit,
                updatedAt: nowTs,
                modelVersion: modelVersion,
                reportId: reportId
            });
            emit ScoreUpdated(entry.borrower, entry.score, entry.creditLimit, modelVersion, reportId);
        }
        emit ScoreReportAccepted(reportId, modelVersion, count, _msgSender());
    }

    /// @inheritdoc ICreditOracle
    function setMaxScoreAge(uint40 maxAge) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (maxAge == 0) revert OracleInvalidSetting();
        emit MaxScoreAgeChanged(maxScoreAge, maxAge, _msgSender());
        maxScoreAge = maxAge;
    }

    /// @inheritdoc ICreditOracle
    function setSignerThreshold(uint8 threshold) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (threshold == 0) revert OracleInvalidSetting();
        emit SignerThresholdChanged(signerThreshold, threshold, _msgSender());
        signerThreshold = threshold;
    }

    /// @inheritdoc ICreditOracle
    function scoreOf(address borrower) external view returns (CreditScore memory) {
        return _scores[borrower];
    }

    /// @inheritdoc ICreditOracle
    function isFresh(address borrower) external view returns (bool) {
        uint40 updatedAt = _scores[borrower].updatedAt;
        // slither-disable-next-line timestamp -- score age is measured in days
        return updatedAt != 0 && block.timestamp <= uint256(updatedAt) + maxScoreAge;
    }

    /// @inheritdoc ICreditOracle
    function reportDigest(uint64 reportId, uint32 modelVersion, ScoreUpdate[] calldata updates)
        public
        view
        returns (bytes32)
    {
        bytes32[] memory entryHashes = new bytes32[](updates.length);
        for (uint256 i = 0; i < updates.length; ++i) {
            entryHashes[i] = keccak256(abi.encode(_SCORE_UPDATE_TYPEHASH, updates[i]));
        }
        return _hashTypedDataV4(
            keccak256(
                abi.encode(_SCORE_REPORT_TYPEHASH, reportId, modelVersion, keccak256(abi.encodePacked(entryHashes)))
            )
        );
    }

    /// @dev Signers must be distinct; requiring ascending addresses proves it without a set.
    function _checkSignatures(bytes32 digest, bytes[] calldata signatures) private view {
        uint8 threshold = signerThreshold;
        if (signatures.length < threshold) revert OracleInsufficientSignatures(signatures.length, threshold);
        address previous = address(0);
        for (uint256 i = 0; i < signatures.length; ++i) {
            // slither-disable-next-line unused-return -- the third value only details `err`, which is checked
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signatures[i]);
            if (err != ECDSA.RecoverError.NoError || signer <= previous || !hasRole(SCORE_SIGNER_ROLE, signer)) {
                revert OracleInvalidSigner(signer);
            }
            previous = signer;
        }
    }
}

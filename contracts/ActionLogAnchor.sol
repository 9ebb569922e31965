// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IActionLogAnchor} from "./interfaces/IActionLogAnchor.sol";
import {LoanLedgerRoles} from "./LoanLedgerRoles.sol";

/**
 * @title Action log anchor
 * @notice Append-only checkpoints of the API's hash-chained action log, written by the oracle service
 * account (ORACLE_ROLE: it brings off-chain facts on-chain, and an anchor decides nothing, so no person's role
 * needs it). Only heads and counts are stored: the log's entries never come on-chain.
 */
contract ActionLogAnchor is IActionLogAnchor, LoanLedgerRoles {
    mapping(uint64 sequence => Anchor) private _anchors;
    uint64 private _count;

    /**
     * @param admin receives DEFAULT_ADMIN_ROLE
     * @param trustedForwarder_ the LoanLedgerForwarder (signed decisions act for their signer)
     */
    constructor(address admin, address trustedForwarder_) LoanLedgerRoles(admin, trustedForwarder_) {}

    /// @inheritdoc IActionLogAnchor
    function anchor(bytes32 head, uint64 entries) external onlyRole(ORACLE_ROLE) whenNotPaused {
        if (head == bytes32(0)) revert AnchorEmptyHead();
        uint64 lastEntries = _anchors[_count].entries;
        if (entries <= lastEntries) revert AnchorNotForward(entries, lastEntries);
        uint64 sequence = ++_count;
        _anchors[sequence] = Anchor({head: head, entries: entries, anchoredAt: uint40(block.timestamp)});
        emit ActionLogAnchored(sequence, head, entries, _msgSender());
    }

    /// @inheritdoc IActionLogAnchor
    function anchorCount() external view returns (uint64) {
        return _count;
    }

    /// @inheritdoc IActionLogAnchor
    function anchorAt(uint64 sequence) external view returns (Anchor memory) {
        if (sequence == 0 || sequence > _count) revert AnchorUnknownSequence(sequence);
        return _anchors[sequence];
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title Action log anchor
 * @notice Checkpoints of the service's off-chain, hash-chained action log. Each anchor records the
 * head hash after `entries` entries; an auditor recomputes the chain from the log and compares it
 * with every anchor, so an entry edited, removed or reordered after it was anchored is detected.
 */
interface IActionLogAnchor {
    /// @notice One checkpoint of the action log.
    struct Anchor {
        bytes32 head;
        uint64 entries;
        uint40 anchoredAt;
    }

    /// @notice The action log's head after `entries` entries was anchored as checkpoint `sequence`.
    event ActionLogAnchored(uint64 indexed sequence, bytes32 head, uint64 entries, address indexed actor);

    /// @dev The head is zero.
    error AnchorEmptyHead();
    /// @dev A checkpoint must cover more entries than the last one: the log only grows.
    error AnchorNotForward(uint64 entries, uint64 lastEntries);
    /// @dev No checkpoint with this sequence number.
    error AnchorUnknownSequence(uint64 sequence);

    /**
     * @notice Records the head of the action log after `entries` entries.
     * @param head hash of the last entry (the chain's head)
     * @param entries number of entries the head covers; strictly more than the last anchor's
     */
    function anchor(bytes32 head, uint64 entries) external;

    /// @notice The number of checkpoints recorded; sequences run from 1 to this.
    function anchorCount() external view returns (uint64);

    /**
     * @notice One checkpoint.
     * @param sequence 1-based checkpoint number
     */
    function anchorAt(uint64 sequence) external view returns (Anchor memory);
}

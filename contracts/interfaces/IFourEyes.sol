// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title Four eyes (maker-checker)
 * @notice A call that moves or forgives money, or changes who may, is proposed by one person and carried out only
 * when a second, different person holding the same role confirms it before it expires. The calls that may be
 * proposed, and the role their proposer and confirmer must hold (on this contract), form an allow-list.
 */
interface IFourEyes {
    /// @notice Where a proposal stands. An expired proposal stays Pending: it can no longer be confirmed.
    enum ProposalState {
        None,
        Pending,
        Executed,
        Cancelled
    }

    /// @notice A proposal as stored: its content (target, data, expiry) is held only in its id.
    struct Proposal {
        address proposer;
        uint40 expiresAt;
        ProposalState state;
        uint48 nonce; // salt of the id: the same call can be proposed again
    }

    /// @notice A call that may be proposed: `selector` on `target`, by holders of `role` on this contract.
    struct AllowedCall {
        address target;
        bytes4 selector;
        bytes32 role;
    }

    /// @notice `proposer` proposed calling `target` with `data` (its function: `selector`) until `expiresAt`.
    event Proposed(
        bytes32 indexed proposalId,
        address indexed proposer,
        address indexed target,
        bytes4 selector,
        uint40 expiresAt,
        uint48 nonce,
        bytes data
    );
    /// @notice `confirmer`, the second person, confirmed the proposal; it is executed in the same transaction.
    event Confirmed(bytes32 indexed proposalId, address indexed confirmer);
    /// @notice The proposal's call was made (and did not revert).
    event Executed(bytes32 indexed proposalId, address indexed proposer, address indexed confirmer);
    /// @notice The proposal was withdrawn by `actor` (its proposer, or an admin).
    event Cancelled(bytes32 indexed proposalId, address indexed actor);
    /// @notice `selector` on `target` may be proposed by holders of `role` (or no longer, `allowed` false).
    event CallAllowed(address indexed target, bytes4 indexed selector, bytes32 role, bool allowed);

    /// @dev The confirmer is the proposer: a second person must confirm.
    error FourEyesSamePerson(address account);
    /// @dev The proposal expired at `expiresAt` (or, at proposal, an expiry not in the future).
    error FourEyesExpired(bytes32 proposalId, uint40 expiresAt);
    /// @dev No pending proposal has this id, or the content given does not hash to it (a changed proposal).
    error FourEyesUnknownProposal(bytes32 proposalId);
    /// @dev The proposal was already executed (a replay) or cancelled.
    error FourEyesNotPending(bytes32 proposalId, ProposalState state);
    /// @dev This function on this target is not on the allow-list (or the data is shorter than a selector).
    error FourEyesCallNotAllowed(address target, bytes4 selector);
    /// @dev `account` does not hold `role`, which proposing or confirming this call needs.
    error FourEyesMissingRole(address account, bytes32 role);
    /// @dev Only a confirmed proposal (this contract calling itself) may do this.
    error FourEyesOnlySelf(address caller);
    /// @dev Only the proposer or an admin may cancel.
    error FourEyesNotProposer(bytes32 proposalId, address caller);

    /**
     * @notice Proposes calling `target` with `data`; a second holder of the call's role must confirm it by `expiresAt`.
     * @param target the contract to call
     * @param data the call (selector and arguments)
     * @param expiresAt unix seconds, in the future: after it the proposal can no longer be confirmed
     * @return proposalId hashOperation of the content, the proposer and a fresh nonce
     */
    function propose(address target, bytes calldata data, uint40 expiresAt) external returns (bytes32 proposalId);

    /**
     * @notice Confirms a proposal and makes its call; reverts with the target's error if the call reverts.
     * @dev The content is given again and must hash to `proposalId` with the stored proposer and nonce.
     * @param proposalId the proposal
     * @param target as proposed
     * @param data as proposed
     * @param expiresAt as proposed
     * @return result what the call returned
     */
    function confirm(bytes32 proposalId, address target, bytes calldata data, uint40 expiresAt)
        external
        returns (bytes memory result);

    /**
     * @notice Withdraws a pending proposal: by its proposer, or by an admin.
     * @param proposalId the proposal
     */
    function cancel(bytes32 proposalId) external;

    /**
     * @notice Adds `selector` on `target` to the allow-list for holders of `role`, or removes it; only through a
     * confirmed proposal (this contract calling itself).
     * @param call the call and its role
     * @param allowed false removes it
     */
    function setAllowedCall(AllowedCall calldata call, bool allowed) external;

    /// @notice The id a proposal of this content, by `proposer` with `nonce`, has.
    function hashOperation(address target, bytes calldata data, uint40 expiresAt, address proposer, uint48 nonce)
        external
        pure
        returns (bytes32);

    /// @notice A proposal's proposer, expiry, state and nonce (state None: no such proposal).
    function proposalOf(bytes32 proposalId) external view returns (Proposal memory);

    /// @notice Whether `selector` on `target` may be proposed, and the role it needs.
    function allowedCall(address target, bytes4 selector) external view returns (bool allowed, bytes32 role);

    /// @notice The number of proposals ever made: the next one's nonce.
    function proposalCount() external view returns (uint48);
}

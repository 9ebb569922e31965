// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {IFourEyes} from "./interfaces/IFourEyes.sol";
import {LoanLedgerRoles} from "./LoanLedgerRoles.sol";

/**
 * @title Four eyes (maker-checker)
 * @notice One person proposes a call, a second, different person holding the same role confirms it before it
 * expires, and this contract makes it. The target contracts let only this contract make those calls (write-offs,
 * large payouts, product changes, role grants), so no single key can. Like OpenZeppelin's TimelockController an
 * operation is known by the hash of its content, but what it waits for is a second person, not a delay.
 *
 * The roles checked are this contract's own: OPERATOR_ROLE for operators' decisions, DEFAULT_ADMIN_ROLE for admin
 * ones. It administers itself: its roles and its allow-list change only through its own confirmed proposals
 * (grantRole, revokeRole and setAllowedCall are callable only by itself), so an admin cannot name a second
 * operator of their own to confirm alone. The initial holders and allow-list are set at construction, with its own
 * grantRole, revokeRole and setAllowedCall allowed to admins.
 */
contract FourEyes is IFourEyes, LoanLedgerRoles {
    struct Allowance {
        bool allowed;
        bytes32 role;
    }

    mapping(bytes32 proposalId => Proposal) private _proposals;
    mapping(address target => mapping(bytes4 selector => Allowance)) private _allowed;
    uint48 private _proposalCount;

    /**
     * @param admins receive DEFAULT_ADMIN_ROLE here (the people who propose and confirm admin calls); at least one
     * @param operators receive OPERATOR_ROLE here (the people who propose and confirm operators' calls)
     * @param pauser receives PAUSER_ROLE here: pausing stops proposals and confirmations, like every other contract's
     * @param allowList the calls that may be proposed, and the role each needs
     * @param trustedForwarder_ the LoanLedgerForwarder: a person proposes, confirms or cancels by a signed request
     */
    constructor(
        address[] memory admins,
        address[] memory operators,
        address pauser,
        AllowedCall[] memory allowList,
        address trustedForwarder_
    ) LoanLedgerRoles(admins[0], trustedForwarder_) {
        _grantRole(PAUSER_ROLE, pauser);
        for (uint256 i = 1; i < admins.length; ++i) {
            _grantRole(DEFAULT_ADMIN_ROLE, admins[i]);
        }
        for (uint256 i = 0; i < operators.length; ++i) {
            _grantRole(OPERATOR_ROLE, operators[i]);
        }
        for (uint256 i = 0; i < allowList.length; ++i) {
            _setAllowedCall(allowList[i], true);
        }
        // Its own administration, by two admins: who holds its roles, and what may be proposed.
        bytes4[3] memory own = [this.grantRole.selector, this.revokeRole.selector, this.setAllowedCall.selector];
        for (uint256 i = 0; i < own.length; ++i) {
            _setAllowedCall(AllowedCall({target: address(this), selector: own[i], role: DEFAULT_ADMIN_ROLE}), true);
        }
    }

    modifier onlySelf() {
        if (_msgSender() != address(this)) revert FourEyesOnlySelf(_msgSender());
        _;
    }

    /// @inheritdoc IFourEyes
    function propose(address target, bytes calldata data, uint40 expiresAt)
        external
        whenNotPaused
        returns (bytes32 proposalId)
    {
        address proposer = _msgSender();
        bytes4 selector = _checkAllowed(target, data, proposer);
        // slither-disable-next-line timestamp -- an expiry in hours or days: miner drift is irrelevant
        if (expiresAt <= block.timestamp) revert FourEyesExpired(bytes32(0), expiresAt);
        uint48 nonce = _proposalCount++;
        proposalId = _hashOperation(target, data, expiresAt, proposer, nonce);
        _proposals[proposalId] =
            Proposal({proposer: proposer, expiresAt: expiresAt, state: ProposalState.Pending, nonce: nonce});
        emit Proposed(proposalId, proposer, target, selector, expiresAt, nonce, data);
    }

    /// @inheritdoc IFourEyes
    function confirm(bytes32 proposalId, address target, bytes calldata data, uint40 expiresAt)
        external
        whenNotPaused
        returns (bytes memory result)
    {
        Proposal storage proposal = _proposals[proposalId];
        ProposalState state = proposal.state;
        if (state == ProposalState.None) revert FourEyesUnknownProposal(proposalId);
        if (state != ProposalState.Pending) revert FourEyesNotPending(proposalId, state);
        address proposer = proposal.proposer;
        // The content confirmed is the content proposed: anything else hashes to another id.
        if (_hashOperation(target, data, expiresAt, proposer, proposal.nonce) != proposalId) {
            revert FourEyesUnknownProposal(proposalId);
        }
        // slither-disable-next-line timestamp -- an expiry in hours or days: miner drift is irrelevant
        if (block.timestamp > expiresAt) revert FourEyesExpired(proposalId, expiresAt);
        address confirmer = _msgSender();
        if (confirmer == proposer) revert FourEyesSamePerson(confirmer);
        // Checked again now: the allow-list or the confirmer's roles may have changed since the proposal.
        _checkAllowed(target, data, confirmer);

        // Executed before the call: a target calling back cannot confirm it twice (checks-effects-interactions).
        proposal.state = ProposalState.Executed;
        emit Confirmed(proposalId, confirmer);
        // The target's revert is bubbled, and undoes the state change with everything else.
        // slither-disable-next-line reentrancy-events -- the state is final before the call; Executed follows it
        result = Address.functionCall(target, data);
        emit Executed(proposalId, proposer, confirmer);
    }

    /// @inheritdoc IFourEyes
    function cancel(bytes32 proposalId) external {
        Proposal storage proposal = _proposals[proposalId];
        ProposalState state = proposal.state;
        if (state == ProposalState.None) revert FourEyesUnknownProposal(proposalId);
        if (state != ProposalState.Pending) revert FourEyesNotPending(proposalId, state);
        address actor = _msgSender();
        if (actor != proposal.proposer && !hasRole(DEFAULT_ADMIN_ROLE, actor)) {
            revert FourEyesNotProposer(proposalId, actor);
        }
        proposal.state = ProposalState.Cancelled;
        emit Cancelled(proposalId, actor);
    }

    /// @inheritdoc IFourEyes
    function setAllowedCall(AllowedCall calldata call, bool allowed) external onlySelf {
        _setAllowedCall(call, allowed);
    }

    /// @notice Grants `role` to `account`: only through a confirmed proposal (two admins).
    function grantRole(bytes32 role, address account) public override onlySelf {
        _grantRole(role, account);
    }

    /// @notice Revokes `role` from `account`: only through a confirmed proposal (two admins).
    function revokeRole(bytes32 role, address account) public override onlySelf {
        _revokeRole(role, account);
    }

    /// @inheritdoc IFourEyes
    function hashOperation(address target, bytes calldata data, uint40 expiresAt, address proposer, uint48 nonce)
        external
        pure
        returns (bytes32)
    {
        return _hashOperation(target, data, expiresAt, proposer, nonce);
    }

    /// @inheritdoc IFourEyes
    function proposalOf(bytes32 proposalId) external view returns (Proposal memory) {
        return _proposals[proposalId];
    }

    /// @inheritdoc IFourEyes
    function allowedCall(address target, bytes4 selector) external view returns (bool allowed, bytes32 role) {
        Allowance storage a = _allowed[target][selector];
        return (a.allowed, a.role);
    }

    /// @inheritdoc IFourEyes
    function proposalCount() external view returns (uint48) {
        return _proposalCount;
    }

    /// @dev The call's selector, when it is on the allow-list and `account` holds its role; else reverts.
    function _checkAllowed(address target, bytes calldata data, address account) private view returns (bytes4 selector) {
        if (data.length < 4) revert FourEyesCallNotAllowed(target, bytes4(0));
        selector = bytes4(data[:4]);
        Allowance storage a = _allowed[target][selector];
        if (!a.allowed) revert FourEyesCallNotAllowed(target, selector);
        bytes32 role = a.role;
        if (!hasRole(role, account)) revert FourEyesMissingRole(account, role);
    }

    function _setAllowedCall(AllowedCall memory call, bool allowed) private {
        _allowed[call.target][call.selector] = Allowance({allowed: allowed, role: allowed ? call.role : bytes32(0)});
        emit CallAllowed(call.target, call.selector, call.role, allowed);
    }

    function _hashOperation(address target, bytes calldata data, uint40 expiresAt, address proposer, uint48 nonce)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(target, data, expiresAt, proposer, nonce));
    }
}

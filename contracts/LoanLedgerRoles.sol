// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/**
 * @title LoanLedger roles
 * @notice The roles every LoanLedger contract shares, and pausing. Each contract keeps its own
 * grants so a key can be given exactly the powers it needs on each (least privilege); the
 * deploy script grants them consistently.
 *
 * Every contract trusts one forwarder (LoanLedgerForwarder, EIP-2771): a decision a person signed and a relayer
 * submitted through it counts as that person's, so `_msgSender()` is who decided (for role checks, through
 * AccessControl, and in events), and `msg.sender` only ever means the immediate caller.
 */
abstract contract LoanLedgerRoles is AccessControl, Pausable, ERC2771Context {
    /// @notice Registers borrowers, approves and rejects loans, writes off.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @notice The oracle service account: pushes scores, confirms payments, declares default.
    bytes32 public constant ORACLE_ROLE = keccak256("ORACLE_ROLE");
    /// @notice Pauses and unpauses every state change.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice Held only by the FourEyes contract: what two people must decide (write-offs, large payouts, products).
    /// A role rather than an immutable address: FourEyes is deployed after the contracts it calls (its allow-list
    /// names them), and two admins can move it to a new FourEyes with a grant.
    bytes32 public constant FOUR_EYES_ROLE = keccak256("FOUR_EYES_ROLE");

    /**
     * @param admin receives DEFAULT_ADMIN_ROLE
     * @param trustedForwarder_ the LoanLedgerForwarder whose signed requests act for their signer
     */
    constructor(address admin, address trustedForwarder_) ERC2771Context(trustedForwarder_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Stops every state change until `unpause`.
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Resumes state changes.
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    /// @notice Whether `account` holds any of the staff roles (admin, operator, oracle, pauser).
    function isStaff(address account) public view returns (bool) {
        return hasRole(DEFAULT_ADMIN_ROLE, account) || hasRole(OPERATOR_ROLE, account)
            || hasRole(ORACLE_ROLE, account) || hasRole(PAUSER_ROLE, account);
    }

    // Context is inherited both directly (AccessControl, Pausable) and through ERC2771Context: the forwarder's wins.

    function _msgSender() internal view override(Context, ERC2771Context) returns (address) {
        return ERC2771Context._msgSender();
    }

    function _msgData() internal view override(Context, ERC2771Context) returns (bytes calldata) {
        return ERC2771Context._msgData();
    }

    function _contextSuffixLength() internal view override(Context, ERC2771Context) returns (uint256) {
        return ERC2771Context._contextSuffixLength();
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC2771Forwarder} from "@openzeppelin/contracts/metatx/ERC2771Forwarder.sol";
import {Errors} from "@openzeppelin/contracts/utils/Errors.sol";
import {LowLevelCall} from "@openzeppelin/contracts/utils/LowLevelCall.sol";

/**
 * @title LoanLedger forwarder
 * @notice Relays decisions signed by the person who makes them (EIP-2771): an operator or admin signs an
 * EIP-712 `ForwardRequest` in their own wallet, a relayer with no role submits it, and every LoanLedger
 * contract trusts this forwarder to say who signed, so its role checks and events see that person.
 * OpenZeppelin's forwarder, named "LoanLedgerForwarder" in its EIP-712 domain.
 */
contract LoanLedgerForwarder is ERC2771Forwarder {
    constructor() ERC2771Forwarder("LoanLedgerForwarder") {}

    /**
     * @notice As {ERC2771Forwarder-execute}, but a call the target refuses reverts with the target's own error
     * (e.g. `AccessControlUnauthorizedAccount(signer, role)`), where OpenZeppelin's reverts with `FailedCall()`:
     * the relayer, the API and an auditor replaying the transaction learn why the decision was refused.
     * @param request the signed request
     */
    function execute(ForwardRequestData calldata request) public payable override {
        if (msg.value != request.value) revert ERC2771ForwarderMismatchedValue(request.value, msg.value);
        // The target's call is the last one `_execute` makes, so the return data is still its revert data.
        // Empty (out of gas in the target, which the request's own `gas` limits): OpenZeppelin's error.
        if (!_execute(request, true)) {
            if (LowLevelCall.returnDataSize() == 0) revert Errors.FailedCall();
            LowLevelCall.bubbleRevert();
        }
    }
}

"""Decisions signed by the person who makes them, relayed through the LoanLedgerForwarder (EIP-2771).

An operator or an admin does not send their decision themselves: they sign an EIP-712 `ForwardRequest` naming the
call (`build_request`, then `sign_request` in their own wallet, or the dashboard's), and a relayer with no role
submits it (`relay`). The forwarder checks the signature, the deadline and the signer's nonce, then calls the target
with the signer's address appended; every LoanLedger contract trusts it, so its role checks and its events see the
signer. `describe` says in words what a request would do, for the API to check and a person to read before signing.

A request is refused, as a `ContractRevert` named like any direct call's, by the forwarder
(`ERC2771ForwarderInvalidSigner`: not signed by `from`, signed over other fields, or its nonce already used;
`ERC2771ForwarderExpiredRequest`; `ERC2771UntrustfulTarget`) or by the target, whose own error the forwarder passes
on (`AccessControlUnauthorizedAccount` naming the signer, `LoanBookInvalidStatus`, ...).
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxReceipt

from ledger.chain import ChainClient
from ledger.contracts import Bindings
from ledger.encoding import to_0x_hex
from ledger.errors import ErrorDecoder, LoanLedgerError
from ledger.manifest import CONTRACT_NAMES
from ledger.store.codec import args_to_json

# The forwarder's typehash (OpenZeppelin's ERC2771Forwarder.FORWARD_REQUEST_TYPEHASH), field for field.
FORWARD_REQUEST_TYPE = [
    {"name": "from", "type": "address"}, {"name": "to", "type": "address"}, {"name": "value", "type": "uint256"},
    {"name": "gas", "type": "uint256"}, {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint48"},
    {"name": "data", "type": "bytes"},
]
# ERC-5267: bit i of eip712Domain()'s `fields` says the domain has field i.
_DOMAIN_FIELDS = (("name", "string"), ("version", "string"), ("chainId", "uint256"),
                  ("verifyingContract", "address"), ("salt", "bytes32"))
# Over the target's own estimate: that one also counts the transaction's intrinsic cost, which the forwarded call
# does not pay, so this is room for state that changes between signing and relaying.
GAS_MARGIN = 1.2


class UnknownCall(LoanLedgerError, ValueError):
    """A request whose target is not a LoanLedger contract, or whose data is no function of it."""


def build_request(forwarder: Contract, sender: str, call: ContractFunction, deadline: int,
                  gas: int | None = None) -> dict[str, Any]:
    """The EIP-712 typed data (the full message: types, domain, primaryType, message) of `sender` asking the
    forwarder to make `call`, valid until `deadline` (unix seconds), with the sender's next forwarder nonce.

    `gas` is what the forwarder gives the call; by default the call's estimate (as the forwarder would make it, from
    the forwarder with `sender` appended) plus a margin, which raises the target's refusal as a `ContractRevert`
    before anyone signs a decision that would be refused now.
    """
    sender = to_checksum_address(sender)
    data = call._encode_transaction_data()  # as ChainClient encodes a direct call
    if gas is None:
        gas = _estimate(forwarder, sender, call, data)
    return typed_request(forwarder_domain(forwarder), {
        "from": sender, "to": call.address, "value": 0, "gas": gas, "nonce": forwarder.functions.nonces(sender).call(),
        "deadline": deadline, "data": data})


def typed_request(domain: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """The full EIP-712 typed data (types, domain, primaryType, message) of a ForwardRequest `message` under the
    forwarder's `domain` (`forwarder_domain`): what its signer signs and what the signature is checked over.

    The message is taken as JSON carries it or as Python holds it (see `request_message`); the domain's type lists
    the fields `domain` has, in EIP-712's order.
    """
    return {
        "types": {"EIP712Domain": [{"name": k, "type": t} for k, t in _DOMAIN_FIELDS if k in domain],
                  "ForwardRequest": FORWARD_REQUEST_TYPE},
        "domain": domain,
        "primaryType": "ForwardRequest",
        "message": request_message(message),
    }


def request_message(message: dict[str, Any]) -> dict[str, Any]:
    """A ForwardRequest message in one form, the one JSON carries: checksummed addresses, integers, `data` 0x-hex.
    Raises KeyError, ValueError or TypeError for what is not one."""
    data = message["data"]
    return {"from": to_checksum_address(message["from"]), "to": to_checksum_address(message["to"]),
            "value": int(message["value"]), "gas": int(message["gas"]), "nonce": int(message["nonce"]),
            "deadline": int(message["deadline"]), "data": to_0x_hex(_bytes(data))}


def forwarder_domain(forwarder: Contract) -> dict[str, Any]:
    """The forwarder's EIP-712 domain as it states it (ERC-5267), so a signature is over exactly what it checks."""
    fields, name, version, chain_id, verifying_contract, salt, _ = forwarder.functions.eip712Domain().call()
    values = (name, version, chain_id, to_checksum_address(verifying_contract), to_0x_hex(salt))
    return {key: value for i, ((key, _), value) in enumerate(zip(_DOMAIN_FIELDS, values)) if fields[0] >> i & 1}


def sign_request(typed_data: dict[str, Any], account: LocalAccount) -> str:
    """`account`'s EIP-712 signature of `typed_data`, 0x-hex (what a wallet's eth_signTypedData_v4 returns)."""
    return to_0x_hex(account.sign_typed_data(full_message=typed_data).signature)


def request_data(typed_data: dict[str, Any], signature: str | bytes) -> tuple:
    """The forwarder's `ForwardRequestData` for a signed request (the nonce is the forwarder's own, not passed)."""
    m = typed_data["message"]
    return (to_checksum_address(m["from"]), to_checksum_address(m["to"]), int(m["value"]), int(m["gas"]),
            int(m["deadline"]), _bytes(m["data"]), _bytes(signature))


def relay(relayer: ChainClient, forwarder: Contract, typed_data: dict[str, Any], signature: str | bytes) -> TxReceipt:
    """Submits a signed request from `relayer` (which needs no role) and waits for its receipt.

    The forwarder's `verify` is asked first; a request it refuses, or that the target refuses, raises the
    `ContractRevert` naming why (see the module's docstring), and nothing is sent.
    """
    request = request_data(typed_data, signature)
    execute = forwarder.functions.execute(request)
    if not relayer.call(forwarder.functions.verify(request)):
        relayer.call(execute)  # raises the forwarder's reason: expired, not the signer's, untrusted target
        raise LoanLedgerError(f"the forwarder refuses the request of {request[0]} without a reason")
    return relayer.transact(execute)


def is_used(forwarder: Contract, typed_data: dict[str, Any]) -> bool:
    """Whether the request's nonce is spent (it was executed, or another request of its signer's took the nonce):
    the forwarder then refuses it as `ERC2771ForwarderInvalidSigner`, since it recovers the signer over the current
    nonce. For saying "already done" rather than "bad signature"."""
    m = typed_data["message"]
    return int(m["nonce"]) < forwarder.functions.nonces(to_checksum_address(m["from"])).call()


def describe(bindings: Bindings, typed_data: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(contract name, function name, arguments) of what a request asks, e.g. ("LoanBook", "approve",
    {"loanId": 7}); arguments in the store's JSON form (bytes 0x-hex, structs as objects).

    Raises UnknownCall for a target that is not one of the deployment's contracts or data that is none of its
    functions.
    """
    message = typed_data["message"]
    target = to_checksum_address(message["to"])
    names = [n for n in CONTRACT_NAMES if to_checksum_address(bindings.manifest.address(n)) == target]
    if not names:
        raise UnknownCall(f"{target} is not a LoanLedger contract of the {bindings.manifest.network} deployment")
    contract = bindings.by_name(names[0])
    try:
        function, args = contract.decode_function_input(_bytes(message["data"]))
    except ValueError as exc:
        raise UnknownCall(f"the request's data is no function of {names[0]}: {exc}") from None
    return names[0], function.fn_name, args_to_json(args, function.abi["inputs"])


# ---------------------------------------------------------------------------------------------- internals

def _estimate(forwarder: Contract, sender: str, call: ContractFunction, data: str) -> int:
    """The gas of `call` made as the forwarder makes it: from the forwarder, `sender` appended (ERC-2771)."""
    w3 = forwarder.w3
    try:
        estimate = w3.eth.estimate_gas({"from": forwarder.address, "to": call.address,
                                        "data": to_0x_hex(_bytes(data) + bytes.fromhex(sender[2:]))})
    except (ContractCustomError, ContractLogicError) as exc:
        decoded = ErrorDecoder([call.contract_abi, forwarder.abi]).from_exception(exc)
        raise (decoded or exc) from exc
    return int(estimate * GAS_MARGIN)


def _bytes(value: str | bytes) -> bytes:
    return bytes(value) if not isinstance(value, str) else bytes.fromhex(value.removeprefix("0x"))

"""Decisions signed by the person who makes them, relayed by the API (EIP-2771, ledger.forwarding).

Two steps. `prepare` gives the staff member the ForwardRequest typed data of the calls their decision makes (the
forwarder's next nonces, a deadline a few minutes ahead of chain time) to sign in their own wallet. `check_and_relay`
takes the signed requests back and, before anything is sent, checks that each was signed by the signed-in caller,
is still usable (not expired, not already used) and does exactly what the route asked for (the same contract and
calldata as the call the route builds from its path and body, so a signed "approve 7" cannot be submitted as
"approve 8" or "write off 7"); then the role-less `relayer` key submits them through the forwarder, and the
contracts check the signer's role and name the signer in their events.

What needs two people is a FourEyes proposal wrapping the route's call, checked and relayed the same way
(api.services.four_eyes builds the expected proposal from the expiry the proposer signed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi.exceptions import EncodingError
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils import to_checksum_address
from web3.contract.contract import ContractFunction

from api.errors import ApiError
from ledger import forwarding
from ledger.encoding import to_0x_hex

REQUEST_TTL = 300  # seconds of chain time a prepared request stays valid: long enough to read it and sign

@dataclass(frozen=True)
class Signed:
    """One signed request as a client sends it back: the ForwardRequest message and the signer's signature."""

    request: dict
    signature: str


def calldata(call: ContractFunction) -> tuple[str, str]:
    """(to, data) of a contract call, as a ForwardRequest carries them."""
    return to_checksum_address(call.address), to_0x_hex(bytes.fromhex(call._encode_transaction_data()[2:]))


def typed_request(context, message: dict) -> dict:
    """The full EIP-712 typed data of `message` under this deployment's forwarder domain (read from the forwarder
    itself, EIP-5267): what the caller signed, if they signed for this chain and this forwarder."""
    return forwarding.typed_request(forwarding.forwarder_domain(context.bindings.forwarder), message)


def prepare(context, signer: str, calls: Sequence[ContractFunction]) -> list[dict]:
    """The typed data for `signer` to sign, one per call, with consecutive forwarder nonces (they are relayed in
    this order) and a deadline REQUEST_TTL seconds of chain time ahead."""
    forwarder = context.bindings.forwarder
    deadline = context.chain_time() + REQUEST_TTL
    out = []
    for offset, call in enumerate(calls):
        built = forwarding.build_request(forwarder, signer, call, deadline)
        out.append(forwarding.typed_request(built["domain"], {**built["message"],
                                                              "nonce": built["message"]["nonce"] + offset}))
    return out


def signer_of(context, signed: Signed) -> str:
    """The address whose key made `signed.signature` over the request (422 if it is no signature at all)."""
    try:
        return Account.recover_message(encode_typed_data(full_message=typed_request(context, signed.request)),
                                       signature=signed.signature)
    except (ValueError, TypeError, KeyError, EncodingError, BadSignature) as exc:
        raise ApiError(422, "invalid_request_signature", f"the signature does not open: {exc}") from None


def _what(context, to: str, data: str) -> str:
    """A call in words for an error message: `Contract.function(arg=value, ...)`."""
    try:
        contract, function, args = forwarding.describe(context.bindings, {"message": {"to": to, "data": data}})
    except forwarding.UnknownCall:
        return f"a call to {to} that is none of LoanLedger's"
    if (contract, function) == ("FourEyes", "propose"):  # the call proposed, in words too
        return f"FourEyes.propose({_what(context, args['target'], args['data'])}, expiresAt={args['expiresAt']})"
    return f"{contract}.{function}({', '.join(f'{k}={v}' for k, v in args.items())})"


def check(context, caller: str, expected: Sequence[Sequence[ContractFunction]], signed: Sequence[Signed]) -> list[dict]:
    """The typed data of `signed`, once each request is shown to be `caller`'s own, still usable, and the call
    expected at its place (`expected[i]` lists the calls request i may be: usually one); raises ApiError before
    anything is sent otherwise."""
    if len(signed) != len(expected):
        raise ApiError(422, "request_mismatch", f"this decision takes {len(expected)} signed request(s), "
                                                f"{len(signed)} were sent: prepare it again")
    forwarder = context.bindings.forwarder
    now = context.chain_time()
    out = []
    for position, (item, allowed) in enumerate(zip(signed, expected)):
        try:
            message = forwarding.request_message(item.request)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ApiError(422, "invalid_request", f"not a ForwardRequest message: {exc}") from None
        if message["from"].lower() != caller.lower() or signer_of(context, item).lower() != caller.lower():
            raise ApiError(403, "request_not_signed_by_caller",
                           f"the request must be signed by the signed-in {caller} with their own wallet "
                           f"(it is from {message['from']})")
        if (message["to"], message["data"]) not in {calldata(call) for call in allowed}:
            route_does = _what(context, *calldata(allowed[0]))
            signed_does = _what(context, message["to"], message["data"])
            raise ApiError(422, "request_mismatch",
                           f"this route does {route_does}, the request signed does {signed_does}")
        if message["value"] != 0:
            raise ApiError(422, "request_mismatch", "a decision sends no ether")
        if message["deadline"] < now:
            raise ApiError(422, "request_expired", f"the request expired at {message['deadline']} (chain time is "
                                                   f"{now}): prepare and sign it again")
        current = forwarder.functions.nonces(message["from"]).call() + position
        if message["nonce"] < current:
            raise ApiError(409, "request_already_used", "this signed request was already relayed (its nonce is "
                                                        "used): prepare and sign the decision again")
        if message["nonce"] > current:
            raise ApiError(409, "request_out_of_order", f"the request's nonce {message['nonce']} is not the "
                                                        f"signer's next ({current}): prepare it again")
        out.append(typed_request(context, message))
    return out


def relay(context, typed: dict, signature: str):
    """Submits one checked request through the forwarder with the role-less relayer key; its receipt. A revert
    (the forwarder's or the target's) comes back as ledger.errors.ContractRevert, mapped as every revert is."""
    return forwarding.relay(context.signer("relayer"), context.bindings.forwarder, typed, signature)


def check_and_relay(context, caller: str, expected: ContractFunction | Sequence[ContractFunction],
                    request: dict, signature: str):
    """Checks one signed request against the call (or any of the calls) the route expects, then relays it;
    the receipt."""
    allowed = [expected] if isinstance(expected, ContractFunction) else list(expected)
    (typed,) = check(context, caller, [allowed], [Signed(request, signature)])
    return relay(context, typed, signature)


def check_and_relay_all(context, caller: str, expected: Sequence[ContractFunction], signed: Sequence[Signed]):
    """As check_and_relay for a decision of several calls (pause every contract, a role on several): every
    request is checked before the first is sent, then they are relayed in order; their receipts."""
    typed = check(context, caller, [[call] for call in expected], signed)
    return [relay(context, t, s.signature) for t, s in zip(typed, signed)]


def signed_call(context, message: dict) -> tuple[str, str, dict]:
    """What a request does, decoded against our ABIs: (contract, function, args)."""
    return forwarding.describe(context.bindings, typed_request(context, message))

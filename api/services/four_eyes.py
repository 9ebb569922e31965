"""Maker-checker through the FourEyes contract (ledger.four_eyes), for what moves or forgives money: a write-off, an
approval above the payout threshold, a product's publication, change or retirement, and a role change the admin
cannot make alone.

One person signs `FourEyes.propose(target, data, expiresAt)` wrapping the route's own call; the API checks the
wrapped call is exactly the route's (as `signed_requests.check_and_relay` does for direct calls: a proposal relayed at
loan 7's write-off route wraps `writeOff(7)` and nothing else) and relays it. A second, different holder of the
call's role signs `FourEyes.confirm` before the expiry; the contract refuses the proposer, an expired or changed
proposal and a replay, and then makes the call. The proposal's content lives in its `Proposed` event: the list of
proposals awaiting confirmation reads the indexer's projection of those events (ledger.store.proposals), so a
proposal or a cancellation answers once the index holds its block; one proposal, to confirm or cancel it, is read
from the chain.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from eth_utils import event_abi_to_log_topic, to_checksum_address
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.logs import DISCARD

from api.errors import ApiError, revert_code
from api.schemas.four_eyes import ProposalOut
from api.services import decisions, roles
from api.services.signed_requests import Signed, calldata, check, relay
from api.services.transactions import Sent, record
from ledger import forwarding
from ledger import four_eyes as fe
from ledger.book import read_loan
from ledger.encoding import to_0x_hex
from ledger.errors import ContractRevert
from ledger.store import proposals as indexed_proposals
from ledger.store.codec import args_to_json

VALIDITY = fe.DEFAULT_VALIDITY  # how long a prepared proposal waits for its confirmer
MAX_VALIDITY = 30 * 86_400  # a proposal signed to wait longer is refused: a forgotten one should lapse

# FourEyes' refusals, by name, as the API answers them (the rest of its errors are 409, as every revert is).
_REFUSALS = {
    "FourEyesSamePerson": (403, "you proposed it: a second, different person holding its role must confirm it"),
    "FourEyesMissingRole": (403, "the signer does not hold the role this call needs on FourEyes"),
    "FourEyesNotProposer": (403, "only its proposer or an admin may cancel a proposal"),
    "FourEyesExpired": (409, "the proposal expired: propose it again"),
    "FourEyesNotPending": (409, "the proposal was already confirmed or cancelled"),
    "FourEyesUnknownProposal": (404, "no such proposal (or its content was changed)"),
    "FourEyesCallNotAllowed": (422, "FourEyes is not allowed to make this call"),
}


@contextmanager
def named_refusals() -> Iterator[None]:
    """FourEyes' reverts as API errors with their own status and a message in words (the code stays the error's
    name in snake case, e.g. four_eyes_same_person)."""
    try:
        yield
    except ContractRevert as exc:
        refusal = _REFUSALS.get(exc.name)
        if refusal is None:
            raise
        status, words = refusal
        raise ApiError(status, revert_code(exc.name), f"{words} ({exc})") from None


def simulate(context, call: ContractFunction, sender: str) -> None:
    """Runs `call` as `sender` (an eth_call: FourEyes sees the sender as it would through the forwarder) and raises
    its refusal by name: the forwarder reverts with a bare FailedCall when its target does, so the reason is asked
    of the contract first."""
    try:
        call.call({"from": sender})
    except (ContractCustomError, ContractLogicError) as exc:
        decoded = context.bindings.errors.from_exception(exc) if isinstance(exc, ContractCustomError) else None
        if decoded is None:
            raise
        raise decoded from None


def would_refuse(context, inner: ContractFunction) -> None:
    """Raises the target's refusal of `inner` made by FourEyes now (a product above the cost cap, a loan not in
    default): what the confirmation would be refused for is said to the proposer instead of proposed."""
    simulate(context, inner, context.bindings.four_eyes.address)


def when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def expiry(context) -> int:
    """The expiry of a proposal prepared now: VALIDITY seconds of chain time ahead."""
    return context.chain_time() + VALIDITY


def approval_needs_two(context, loan_id: int) -> bool:
    """Whether approving `loan_id` pays out more than the payout threshold the admin set: then two operators decide
    (the loan book lets only FourEyes approve it)."""
    book = context.bindings.book
    return read_loan(book, loan_id).terms.principal > book.functions.payoutThreshold().call()


def propose_call(context, inner: ContractFunction, expires_at: int) -> ContractFunction:
    return fe.propose(context.bindings.four_eyes, inner, expires_at)


def proposal_words(words: str, role: str, expires_at: int) -> str:
    """What a proposer is shown: the call in words, and that it waits for a second person."""
    return (f"Propose: {words}. Nothing happens until a second {role}, not you, confirms it before "
            f"{when(expires_at)}")


def is_proposal(context, request: dict) -> bool:
    """Whether a signed request is a FourEyes proposal (rather than a direct call)."""
    four_eyes = context.bindings.four_eyes
    try:
        to, data = to_checksum_address(request["to"]), str(request["data"]).lower()
    except (KeyError, ValueError, TypeError):
        return False
    selector = to_0x_hex(bytes(HexBytes(four_eyes.functions.propose(to, b"", 0)._encode_transaction_data()))[:4])
    return to == to_checksum_address(four_eyes.address) and data.startswith(selector)


def _signed_expiry(context, request: dict) -> int:
    """The expiry the proposer signed (checked to be ahead, and not too far); a request that is no proposal gets
    today's default, so the check that follows names what the route does instead."""
    try:
        function, args = context.bindings.four_eyes.decode_function_input(str(request["data"]))
    except (KeyError, ValueError, TypeError):
        return expiry(context)
    if function.fn_name != "propose":
        return expiry(context)
    now, expires_at = context.chain_time(), int(args["expiresAt"])
    if not now < expires_at <= now + MAX_VALIDITY:
        raise ApiError(422, "invalid_expiry", f"a proposal expires after now ({now}) and at most {MAX_VALIDITY} "
                                              f"seconds later, not at {expires_at}: prepare it again")
    return expires_at


def propose(context, caller: str, inner: ContractFunction | Sequence[ContractFunction], signed: Signed,
            request_id: str, action: str, details: dict) -> ProposalOut:
    """Relays `caller`'s signed proposal of the route's call `inner` (or one of them), once checked to wrap exactly
    it; logs `<action>.propose`; the proposal, awaiting confirmation."""
    inners = [inner] if isinstance(inner, ContractFunction) else list(inner)
    expires_at = _signed_expiry(context, signed.request)
    proposals = [propose_call(context, c, expires_at) for c in inners]
    with named_refusals():
        (typed,) = check(context, caller, [proposals], [signed])
        data = typed["message"]["data"].lower()
        would_refuse(context, next(c for c, p in zip(inners, proposals) if calldata(p)[1].lower() == data))
        receipt = relay(context, typed, signed.signature)
    made = fe.proposed(context.bindings.four_eyes, receipt)
    record(context, caller, f"{action}.propose", request_id,
           {**details, "proposal_id": to_0x_hex(made.proposal_id), "expires_at": expires_at}, receipt,
           signed_by=caller)
    context.wait_indexed(receipt["blockNumber"])  # the list, read from the index, then shows it
    return out(context, made, receipt=receipt)


# ---- reading proposals -----------------------------------------------------------------------------------------

def _id(proposal_id: str) -> bytes:
    try:
        raw = bytes.fromhex(proposal_id.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ApiError(422, "invalid_proposal_id", "a proposal id is 0x and 64 hex digits")
    return raw


def find(context, proposal_id: str) -> fe.Proposal:
    found = fe.proposal(context.bindings.four_eyes, _id(proposal_id), context.bindings.manifest.start_block)
    if found is None:
        raise ApiError(404, "unknown_proposal", f"no proposal {proposal_id}")
    return found


def awaiting(context) -> list[ProposalOut]:
    """The proposals still open at the chain's time (pending, not expired), oldest first, as indexed."""
    now = context.chain_time()
    with context.sessions() as session:
        found = [fe.indexed(row) for row in indexed_proposals.awaiting(session, now)]
    return [out(context, p, now=now) for p in found]


def _role(context, call: fe.Call) -> str:
    _, role = context.bindings.four_eyes.functions.allowedCall(call.target, call.data[:4]).call()
    return "admin" if bytes(role) == b"\0" * 32 else "operator"


def _what(context, call: fe.Call) -> tuple[str, str, dict]:
    try:
        return forwarding.describe(context.bindings, {"message": {"to": call.target, "data": call.data}})
    except forwarding.UnknownCall:
        return call.target, to_0x_hex(call.data[:4]), {}


def words(contract: str, function: str, args: dict) -> str:
    """A call FourEyes makes, in words for the person who confirms it."""
    if function == "writeOff":
        return f"Write off loan {args['loanId']}"
    if function == "approve" and contract == "LoanBook":
        return f"Approve loan {args['loanId']} (above the payout threshold)"
    if function == "createProduct":
        return "Publish a new product"
    if function == "changeProduct":
        return f"Publish a new version of product {args['productId']}"
    if function == "retireProduct":
        return f"Retire product {args['productId']}"
    if function in ("grantRole", "revokeRole"):
        verb = "Grant" if function == "grantRole" else "Revoke"
        return f"{verb} role {args['role']} {'to' if verb == 'Grant' else 'of'} {args['account']} on {contract}"
    return f"{contract}.{function}({', '.join(f'{k}={v}' for k, v in args.items())})"


def out(context, p: fe.Proposal, *, now: int | None = None, receipt=None, confirmer: str | None = None,
        state: str | None = None, result: dict | None = None) -> ProposalOut:
    now = context.chain_time() if now is None else now
    contract, function, args = _what(context, p.call)
    if state is None:
        state = {fe.ProposalState.EXECUTED: "executed", fe.ProposalState.CANCELLED: "cancelled"}.get(
            p.state, "expired" if p.expired(now) else "awaiting confirmation")
    return ProposalOut(
        proposal_id=to_0x_hex(p.proposal_id), state=state, proposer=p.proposer, confirmer=confirmer,
        expires_at=p.call.expires_at, contract=contract, function=function, args=args,
        summary=words(contract, function, args), role=_role(context, p.call), proposed_in_block=p.block,
        tx_hash=None if receipt is None else to_0x_hex(receipt["transactionHash"]),
        block_number=None if receipt is None else receipt["blockNumber"], result=result or {})


def _events(context, target: str, receipt) -> dict[str, dict]:
    """The events the called contract emitted in `receipt`, by name, arguments as JSON."""
    names = [n for n in context.bindings.manifest.contracts
             if context.bindings.manifest.address(n).lower() == target.lower()]
    if not names:
        return {}
    contract = context.bindings.by_name(names[0])
    by_topic = {event_abi_to_log_topic(abi): abi for abi in contract.abi if abi.get("type") == "event"}
    found = {}
    for log in receipt["logs"]:
        abi = by_topic.get(bytes(log["topics"][0])) if log["topics"] else None
        if abi is not None and log["address"].lower() == target.lower():
            event = contract.events[abi["name"]]().process_log(log)
            found[event.event] = args_to_json(event.args, abi["inputs"])
    return found


# ---- confirming and cancelling ---------------------------------------------------------------------------------

def confirm_call(context, proposal_id: str) -> ContractFunction:
    return fe.confirm(context.bindings.four_eyes, find(context, proposal_id))


def cancel_call(context, proposal_id: str) -> ContractFunction:
    return fe.cancel(context.bindings.four_eyes, find(context, proposal_id).proposal_id)


def confirm(context, caller: str, proposal_id: str, signed: Signed, request_id: str) -> ProposalOut:
    """Relays `caller`'s signed confirmation: FourEyes checks they are not the proposer, hold the call's role and
    are in time, then makes the call. Logs `four_eyes.confirm` with both people."""
    proposal = find(context, proposal_id)
    call = fe.confirm(context.bindings.four_eyes, proposal)
    with named_refusals():
        (typed,) = check(context, caller, [[call]], [signed])
        simulate(context, call, caller)
        receipt = relay(context, typed, signed.signature)
    (executed,) = context.bindings.four_eyes.events.Executed().process_receipt(receipt, errors=DISCARD)
    confirmer = to_checksum_address(executed.args.confirmer)
    answer = out(context, proposal, receipt=receipt, confirmer=confirmer, state="executed",
                 result=_events(context, proposal.call.target, receipt))
    record(context, caller, "four_eyes.confirm", request_id,
           {"proposal_id": answer.proposal_id, "proposer": proposal.proposer, "confirmer": confirmer,
            "contract": answer.contract, "function": answer.function}, receipt, signed_by=caller)
    if (answer.contract, answer.function) == ("LoanBook", "approve"):
        decisions.request_payout(context, answer.args["loanId"], caller, request_id)  # approving orders the payout
    return answer


def cancel(context, caller: str, proposal_id: str, signed: Signed, request_id: str) -> ProposalOut:
    """Relays the proposer's (or an admin's) signed cancellation."""
    proposal = find(context, proposal_id)
    call = fe.cancel(context.bindings.four_eyes, proposal.proposal_id)
    with named_refusals():
        (typed,) = check(context, caller, [[call]], [signed])
        simulate(context, call, caller)
        receipt = relay(context, typed, signed.signature)
    record(context, caller, "four_eyes.cancel", request_id, {"proposal_id": to_0x_hex(proposal.proposal_id)},
           receipt, signed_by=caller)
    context.wait_indexed(receipt["blockNumber"])  # the list, read from the index, then leaves it out
    return out(context, proposal, receipt=receipt, state="cancelled")


# ---- role changes (grants, revocations, the score signer's rotation): the admin alone where they hold the
# contract's admin role, else two admins ---------------------------------------------------------------------------

def admin_decides_alone(context, admin: str, contract_name: str) -> bool:
    """Whether `admin` changes roles on `contract_name` alone: they hold its DEFAULT_ADMIN_ROLE. Not on FourEyes,
    whose roles change only through its own confirmed proposals, nor where the admin renounced it at deploy
    (`--admin-renounces`): there a role change is a proposal a second admin confirms."""
    if contract_name == "FourEyes":
        return False
    return bool(context.bindings.by_name(contract_name).functions.hasRole(b"\0" * 32, admin).call())


def relay_admin_calls(context, actor: str, calls: Sequence[tuple[str, ContractFunction, str, dict]],
                      signed: Sequence[Signed], request_id: str) -> list[Sent | ProposalOut]:
    """Relays `actor`'s signed admin calls, each (contract name, call, action logged, details): directly where the
    admin decides alone, as a FourEyes proposal elsewhere; every signed request checked before the first is relayed.
    For each call, in order, the transaction made or the proposal awaiting a second admin."""
    expected = []
    for position, (name, call, _, _) in enumerate(calls):
        if admin_decides_alone(context, actor, name):
            expected.append(call)
        else:
            at = signed[position].request if position < len(signed) else {}
            expected.append(propose_call(context, call, _signed_expiry(context, at)))
    with named_refusals():
        typed = check(context, actor, [[e] for e in expected], signed)
    done: list[Sent | ProposalOut] = []
    for (_, call, action, details), wanted, checked, item in zip(calls, expected, typed, signed):
        receipt = relay(context, checked, item.signature)
        if wanted is call:
            done.append(record(context, actor, action, request_id, details, receipt, signed_by=actor))
            continue
        made = fe.proposed(context.bindings.four_eyes, receipt)
        record(context, actor, f"{action}.propose", request_id,
               {**details, "proposal_id": to_0x_hex(made.proposal_id), "expires_at": made.call.expires_at}, receipt,
               signed_by=actor)
        done.append(out(context, made, receipt=receipt))
    return done


def _sent_and_proposed(done: Sequence[Sent | ProposalOut]) -> tuple[list[Sent], list[ProposalOut]]:
    return [d for d in done if isinstance(d, Sent)], [d for d in done if isinstance(d, ProposalOut)]


def change_role(context, role: str, account: str, contracts: list[str] | None, grant: bool, actor: str,
                signed: Sequence[Signed], request_id: str) -> tuple[list[Sent], list[ProposalOut]]:
    """Grants (or revokes) `role` to `account` where `roles.role_calls` says (relay_admin_calls: alone or proposed).
    The transactions made and the proposals awaiting a second admin."""
    action = "role.grant" if grant else "role.revoke"
    calls = [(name, call, action, {"role": role, "account": account, "contract": name})
             for name, call in roles.role_calls(context, role, account, contracts, grant)]
    return _sent_and_proposed(relay_admin_calls(context, actor, calls, signed, request_id))


def rotate_signer(context, old: str, new: str, actor: str, signed: Sequence[Signed],
                  request_id: str) -> tuple[tuple[list[Sent], list[ProposalOut]], tuple[list[Sent], list[ProposalOut]]]:
    """The score signer's rotation on the credit oracle, granting `new` then revoking `old` as role changes are made
    (relay_admin_calls): where the admin renounced the oracle's admin role, two proposals a second admin confirms,
    each taking effect only then. (What was sent, what was proposed) for the grant, then for the revocation."""
    granted, revoked = roles.rotation_calls(context, old, new)
    calls = ([(name, call, "role.grant", {"role": "score_signer", "account": new, "contract": name})
              for name, call in granted]
             + [(name, call, "role.revoke", {"role": "score_signer", "account": old, "contract": name})
                for name, call in revoked])
    done = relay_admin_calls(context, actor, calls, signed, request_id)
    return _sent_and_proposed(done[:len(granted)]), _sent_and_proposed(done[len(granted):])

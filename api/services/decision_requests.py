"""What a staff member signs for a decision (`POST /v1/operator/requests`): the calls the decision's route will
expect, built by the same service functions the routes use, as ForwardRequest typed data, each with what it does
in plain words to show before they sign.

Each action names the roles that may take it (the chain checks the signer's role again when it is relayed) and
the parameters its route takes (path and body).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, Field, ValidationError
from web3.contract.contract import ContractFunction

from api.errors import ApiError
from api.schemas import ADDRESS
from api.schemas.operator import ReasonIn, RoleIn, SignerRotationIn
from api.schemas.products import ProductIn
from api.schemas.signed import PreparedOut, PreparedRequest
from api.services import (
    decisions,
    four_eyes,
    pausing,
    products,
    reschedules,
    roles,
    signed_requests,
)
from api.services.borrowers import register_call, revoke_call
from api.views import checksum_address
from ledger.book import read_loan
from ledger.products import read_product, read_status

_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "HKD": "HK$"}


def money(amount: int, currency: str) -> str:
    """Minor units in words for a person: ¥1,200.00 (two decimals: the currencies lent here have them)."""
    value = f"{Decimal(amount) / 100:,.2f}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{value} {currency}"


def short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


class LoanParams(BaseModel):
    loan_id: int = Field(ge=1, le=2**63 - 1)


class LoanReasonParams(LoanParams, ReasonIn):
    pass


class RescheduleOfferParams(LoanParams):
    installments: int = Field(ge=1, le=720)
    expires_at: int = Field(gt=0, lt=2**40)


class ProductIdParams(BaseModel):
    product_id: int = Field(ge=1, le=2**63 - 1)


class ProductChangeParams(ProductIn, ProductIdParams):
    pass


class ProposalParams(BaseModel):
    proposal_id: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")


class NoParams(BaseModel):
    pass


class BorrowerReasonParams(ReasonIn):
    address: str = Field(pattern=ADDRESS)


Calls = list[tuple[ContractFunction, str]]  # each call and what it does in words


@dataclass(frozen=True)
class Action:
    roles: tuple[str, ...]
    params: type[BaseModel]
    calls: Callable[..., Calls]  # (context, signer, params) -> the calls, in the order they are relayed
    summary: Callable[..., str]  # (params, calls) -> the decision in words


def _loan_words(context, loan_id: int) -> tuple[str, str]:
    loan = read_loan(context.bindings.book, loan_id)
    net = loan.terms.principal - loan.terms.serviceFee
    return money(net, loan.currency), short(loan.borrower)


def _approve(context, signer: str, p: LoanParams) -> Calls:
    two = four_eyes.approval_needs_two(context, p.loan_id)
    # Above the payout threshold FourEyes makes the approval: the book's checks are run as it would make them.
    call, decision = decisions.approval_to_sign(context, context.bindings.four_eyes.address if two else signer,
                                                p.loan_id)
    if decision == "approved":
        paid, borrower = _loan_words(context, p.loan_id)
        words = f"Approve loan {p.loan_id}: pay out {paid} to {borrower}"
        if two:
            words += " (above the payout threshold: two operators decide)"
            return _proposed(context, [(call, words)], "operator")
        return [(call, words)]
    reason = decision.removeprefix("rejected:")
    return [(call, f"Reject loan {p.loan_id} ({reason}): the loan book refuses its approval for that reason")]


def _loan_call(verb: str, build) -> Callable[..., Calls]:
    def calls(context, _signer: str, p: LoanParams) -> Calls:
        loan = read_loan(context.bindings.book, p.loan_id)
        words = (f"{verb} loan {p.loan_id} of {short(loan.borrower)} "
                 f"(principal {money(loan.terms.principal, loan.currency)})")
        return [(build(context, p.loan_id), words)]
    return calls


def _reschedule_offer(context, _signer: str, p: RescheduleOfferParams) -> Calls:
    loan = read_loan(context.bindings.book, p.loan_id)
    expires = datetime.fromtimestamp(p.expires_at, UTC).strftime("%Y-%m-%d %H:%M")
    words = (f"Offer {short(loan.borrower)} to reschedule loan {p.loan_id} over {p.installments} installments from "
             f"its next due date (the outstanding principal re-based; open until {expires} UTC)")
    return [(reschedules.offer_call(context, p.loan_id, p.installments, p.expires_at), words)]


def _reject(context, _signer: str, p: LoanReasonParams) -> Calls:
    return [(decisions.reject_call(context, p.loan_id, p.reason), f"Reject loan {p.loan_id} (reason: {p.reason})")]


def _proposed(context, calls: Calls, role: str) -> Calls:
    """Each call wrapped in a FourEyes proposal expiring four_eyes.VALIDITY from now, in words that say a second
    person must confirm it."""
    expires_at = four_eyes.expiry(context)
    return [(four_eyes.propose_call(context, call, expires_at), four_eyes.proposal_words(words, role, expires_at))
            for call, words in calls]


def _two_operators(build: Callable[..., Calls]) -> Callable[..., Calls]:
    """`build`'s calls as FourEyes proposals: a second operator confirms them."""
    def calls(context, signer: str, p) -> Calls:
        calls = build(context, signer, p)
        for call, _ in calls:
            four_eyes.would_refuse(context, call)
        return _proposed(context, calls, "operator")
    return calls


def _proposal_confirm(context, _signer: str, p: ProposalParams) -> Calls:
    call = four_eyes.confirm_call(context, p.proposal_id)
    proposal = four_eyes.out(context, four_eyes.find(context, p.proposal_id))
    words = (f"Confirm: {proposal.summary} (proposed by {proposal.proposer}, expires "
             f"{four_eyes.when(proposal.expires_at)}). As the second {proposal.role}, your confirmation makes the call")
    return [(call, words)]


def _proposal_cancel(context, _signer: str, p: ProposalParams) -> Calls:
    call = four_eyes.cancel_call(context, p.proposal_id)
    proposal = four_eyes.out(context, four_eyes.find(context, p.proposal_id))
    return [(call, f"Cancel the proposal: {proposal.summary} (proposed by {proposal.proposer})")]


def _terms(p: ProductIn) -> str:
    return (f"“{p.name}”: {p.annual_rate_bps / 100:g}% a year, {money(p.min_principal, p.currency)} to "
            f"{money(p.max_principal, p.currency)} in {p.min_installments} to {p.max_installments} installments, "
            f"service fee {p.service_fee_bps / 100:g}%"
            + (f", automatic approval up to {money(p.auto_approve_max_principal, p.currency)}"
               if p.auto_approve else ", no automatic approval"))


def _product_create(context, _signer: str, p: ProductIn) -> Calls:
    return [(products.create_call(context, p), f"Publish product {_terms(p)}")]


def _product_change(context, _signer: str, p: ProductChangeParams) -> Calls:
    body = ProductIn.model_validate(p.model_dump(exclude={"product_id"}))
    return [(products.change_call(context, p.product_id, body),
             f"Publish a new version of product {p.product_id}: {_terms(body)}")]


def _product_retire(context, _signer: str, p: ProductIdParams) -> Calls:
    catalog = context.bindings.catalog
    status = read_status(catalog, p.product_id)
    name = read_product(catalog, p.product_id, status.latest_version).display_name if status.exists else "?"
    return [(products.retire_call(context, p.product_id),
             f"Retire product {p.product_id} “{name}”: no new applications for it")]


def _pause(pause: bool) -> Callable[..., Calls]:
    def calls(context, _signer: str, _p: NoParams) -> Calls:
        return [(call, f"{'Pause' if pause else 'Unpause'} {_contract_name(context, call.address)}")
                for call in pausing.pause_calls(context, pause)]
    return calls


def _contract_name(context, address: str) -> str:
    return next((name for name in context.bindings.manifest.contracts
                 if context.bindings.manifest.address(name).lower() == address.lower()), address)


def _role(grant: bool) -> Callable[..., Calls]:
    def calls(context, signer: str, p: RoleIn) -> Calls:
        account = checksum_address(p.account)
        verb = "Grant" if grant else "Revoke"
        out: Calls = []
        for name, call in roles.role_calls(context, p.role, account, p.contracts, grant):
            out += _as_admin(context, signer, name, call,
                             f"{verb} the {p.role} role {'to' if grant else 'of'} {account} on {name}")
        return out
    return calls


def _as_admin(context, signer: str, name: str, call: ContractFunction, words: str) -> Calls:
    """An admin's call on `name`: as it is where the admin holds its admin role, else (renounced at deploy; FourEyes
    always) a proposal a second admin confirms, as four_eyes.relay_admin_calls expects it."""
    if four_eyes.admin_decides_alone(context, signer, name):
        return [(call, words)]
    return _proposed(context, [(call, words)], "admin")


def _rotate(context, signer: str, p: SignerRotationIn) -> Calls:
    old, new = checksum_address(p.old), checksum_address(p.new)
    if old == new:
        raise ApiError(422, "same_signer", "the new signer is the old one")
    granted, revoked = roles.rotation_calls(context, old, new)
    return ([c for name, call in granted
             for c in _as_admin(context, signer, name, call, f"Admit {new} as a score signer on {name}")]
            + [c for name, call in revoked
               for c in _as_admin(context, signer, name, call, f"Retire {old} as a score signer on {name}")])


class BorrowerParams(BaseModel):
    address: str = Field(pattern=ADDRESS)


def _register_borrower(context, _signer: str, p: BorrowerParams) -> Calls:
    address = checksum_address(p.address)
    call = register_call(context, address)
    expires = datetime.fromtimestamp(call.args[2], UTC).strftime("%Y-%m-%d")
    return [(call, f"Register borrower {address} (KYC verified; valid until {expires} UTC)")]


def _revoke_borrower(context, _signer: str, p: BorrowerReasonParams) -> Calls:
    address = checksum_address(p.address)
    return [(revoke_call(context, address, p.reason),
             f"Revoke borrower {address} (reason: {p.reason}): no new applications; their loans run on")]


def _one(_p, calls: Calls) -> str:
    return calls[0][1] if calls else "nothing to change"


def _every(words: str) -> Callable[..., str]:
    return lambda _p, calls: f"{words} ({len(calls)} transaction{'s' if len(calls) != 1 else ''})" if calls \
        else "nothing to change"


OPERATOR, ADMIN, PAUSER = ("operator",), ("admin",), ("pauser",)
ACTIONS: dict[str, Action] = {
    "loan.approve": Action(OPERATOR, LoanParams, _approve, _one),
    "loan.reject": Action(OPERATOR, LoanReasonParams, _reject, _one),
    "loan.write_off": Action(OPERATOR, LoanParams, _two_operators(_loan_call("Write off", decisions.write_off_call)),
                             _one),
    "loan.declare_default": Action(OPERATOR, LoanParams,
                                   _loan_call("Declare in default", decisions.declare_default_call), _one),
    "loan.reschedule_offer": Action(OPERATOR, RescheduleOfferParams, _reschedule_offer, _one),
    "product.create": Action(OPERATOR, ProductIn, _two_operators(_product_create), _one),
    "product.change": Action(OPERATOR, ProductChangeParams, _two_operators(_product_change), _one),
    "product.retire": Action(OPERATOR, ProductIdParams, _two_operators(_product_retire), _one),
    "proposal.confirm": Action(OPERATOR + ADMIN, ProposalParams, _proposal_confirm, _one),
    "proposal.cancel": Action(OPERATOR + ADMIN, ProposalParams, _proposal_cancel, _one),
    "system.pause": Action(PAUSER, NoParams, _pause(True), _every("Pause every contract")),
    "system.unpause": Action(PAUSER, NoParams, _pause(False), _every("Unpause every contract")),
    "role.grant": Action(ADMIN, RoleIn, _role(True),
                         lambda p, calls: _every(f"Grant the {p.role} role to {p.account}")(p, calls)),
    "role.revoke": Action(ADMIN, RoleIn, _role(False),
                          lambda p, calls: _every(f"Revoke the {p.role} role of {p.account}")(p, calls)),
    "oracle_signer.rotate": Action(ADMIN, SignerRotationIn, _rotate,
                                   lambda p, calls: _every(f"Rotate the score signer {p.old} to {p.new}")(p, calls)),
    "borrower.register": Action(OPERATOR, BorrowerParams, _register_borrower, _one),
    "borrower.revoke": Action(OPERATOR, BorrowerReasonParams, _revoke_borrower, _one),
}


def prepare(context, signer: str, held: set[str] | frozenset[str], action: str, params: dict) -> PreparedOut:
    """The typed data `signer` (holding the API roles `held`) signs for `action` with `params`, and its summary."""
    spec = ACTIONS[action]
    if not held & set(spec.roles):
        raise ApiError(403, "forbidden", f"{action} needs the {' or '.join(spec.roles)} role")
    try:
        parsed = spec.params.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ApiError(422, "invalid_request", f"params.{where}: {first['msg']}") from None
    with four_eyes.named_refusals():  # e.g. the proposer preparing their own confirmation: FourEyes refuses it
        calls = spec.calls(context, signer, parsed)
        typed = signed_requests.prepare(context, signer, [call for call, _ in calls])
    return PreparedOut(action=action, signer=signer, summary=spec.summary(parsed, calls),
                       requests=[PreparedRequest(typed_data=t, summary=words) for t, (_, words) in zip(typed, calls)])

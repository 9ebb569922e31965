"""Hardship reschedules (issue 17): the borrower asks, an operator offers new terms (signed by the operator and
relayed, like every operator decision), the borrower accepts by signing the offer (EIP-712 RescheduleAcceptance,
relayed by the role-less relayer). The loan book checks the offer against the product's rules and the cost cap and
computes the new schedule; the API computes nothing of it.

The borrower's request is kept off-chain, in the hash-chained action log: asking costs the borrower nothing and
decides nothing (LoanBook.requestReschedule records it on-chain for a borrower who calls it as themselves).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session
from web3.contract.contract import ContractFunction

from api.services.signed_requests import Signed, check_and_relay
from api.services.transactions import Sent, record
from ledger import typed_data
from ledger.store.models.action_log import ActionLogEntry
from ledger.store.projection import LoanState, fold_loan, loan_events
from ledger.typed_data import LoanTerms

ACCEPTANCE_VALIDITY = 3600  # seconds of chain time a suggested acceptance deadline leaves


def offer_call(context, loan_id: int, installments: int, expires_at: int) -> ContractFunction:
    return context.bindings.book.functions.offerReschedule(loan_id, installments, expires_at)


def offer(context, loan_id: int, installments: int, expires_at: int, actor: str, signed: Signed,
          request_id: str) -> Sent:
    """Relays the operator's signed offer (the book checks the role, the loan and the product's rules)."""
    receipt = check_and_relay(context, actor, offer_call(context, loan_id, installments, expires_at), signed.request,
                              signed.signature)
    return record(context, actor, "loan.reschedule_offer", request_id,
                  {"loan_id": loan_id, "installments": installments, "expires_at": expires_at}, receipt,
                  signed_by=actor)


def request(context, borrower: str, loan_id: int, installments: int, reason: str, request_id: str) -> None:
    context.action_log.append(borrower, "loan.reschedule_request", request_id,
                              {"loan_id": loan_id, "installments": installments, "reason": reason})


def accept(context, borrower: str, loan_id: int, deadline: int, signature: bytes, request_id: str,
           record_tx: Callable[[str], None] | None = None) -> Sent:
    """Relays the borrower's signed acceptance of the loan's open offer (the book checks it against the offer)."""
    receipt = context.signer("relayer").transact(
        context.bindings.book.functions.acceptRescheduleWithSignature(loan_id, deadline, signature),
        before_send=record_tx)
    return record(context, borrower, "loan.reschedule_accept", request_id, {"loan_id": loan_id}, receipt)


def latest_offer(context, loan_id: int) -> dict | None:
    offer_id, installments, expires_at, is_open, _ = \
        context.bindings.book.functions.rescheduleOfferOf(loan_id).call()
    if offer_id == 0:
        return None
    return {"offer_id": offer_id, "installments": installments, "expires_at": expires_at, "open": is_open}


def acceptance_to_sign(context, borrower: str, loan_id: int, offer: dict) -> dict:
    """The RescheduleAcceptance typed data the borrower signs for `offer`, with their next nonce on the book."""
    book = context.bindings.book
    return typed_data.reschedule_acceptance(
        chain_id=context.w3.eth.chain_id, book=book.address, loan_id=loan_id, offer_id=offer["offer_id"],
        installments=offer["installments"], expires_at=offer["expires_at"],
        nonce=book.functions.nonces(borrower).call(), deadline=context.chain_time() + ACCEPTANCE_VALIDITY)


def requests(session: Session, loan_id: int | None = None) -> list[dict]:
    """Borrowers' requests (for one loan, or all), oldest first, as the action log holds them."""
    rows = session.scalars(select(ActionLogEntry).where(ActionLogEntry.action == "loan.reschedule_request")
                           .order_by(ActionLogEntry.seq)).all()
    asked = []
    for row in rows:
        details = json.loads(row.details)
        if loan_id is None or details.get("loan_id") == loan_id:
            asked.append({"loan_id": details["loan_id"], "borrower": row.actor, "installments": details["installments"],
                          "reason": details["reason"], "at": row.at})
    return asked


def history(context, session: Session, loan_id: int) -> list[dict]:
    """The loan's accepted reschedules, oldest first, from the indexed events: each with the shape RescheduleAccepted
    gives of the schedule it replaced and the one it set, and both schedules in full, as the loan book's own `quote`
    gives the plan the loan was on before and after it (from the loan's events: what an auditor rebuilds)."""
    events = loan_events(session, loan_id)
    out = []
    for k, e in enumerate(events):
        if e.name != "RescheduleAccepted":
            continue
        before, after = fold_loan(events[:k]), fold_loan(events[:k + 1])
        out.append({"offer_id": e.args["offerId"], "previous": _summary(e.args["previous"]),
                    "current": _summary(e.args["current"]), "rebased_at": e.args["rebasedAt"],
                    "principal": e.args["principal"], "carried_interest": e.args["carriedInterest"],
                    "tx_hash": e.tx_hash, "block_number": e.block_number,
                    "previous_schedule": plan_rows(context, before), "current_schedule": plan_rows(context, after)})
    return out


def plan_rows(context, state: LoanState) -> list[dict]:
    """The plan a loan in `state` walks, numbered as the loan's installments: the book's pure `quote` of its terms
    (re-based: of the principal and installments it was re-based on, from the installment it was re-based at)."""
    fields = {**state.terms, "currency": bytes.fromhex(state.terms["currency"].removeprefix("0x"))}
    passed = payment_ray = 0
    if state.rebased_at is not None:
        fields.update(principal=state.rebased_principal, installments=state.rebased_installments)
        passed, payment_ray = state.rebased_at, state.rebased_payment_ray
    rows = context.bindings.book.functions.quote(LoanTerms(**fields).as_tuple(), state.disbursed_at, passed,
                                                 payment_ray).call()
    return [{"number": passed + k + 1, "due_at": due_at, "principal": principal, "interest": interest}
            for k, (due_at, principal, interest) in enumerate(rows)]


def _summary(s: dict) -> dict:
    return {"installments": s["installments"], "installment_amount": s["installmentAmount"],
            "next_due_at": s["nextDueAt"]}

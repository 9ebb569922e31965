"""Debit mandates (issue 17 "automatic debit"): the borrower's signed authorisation for the rail to debit the bound
card on a loan's due dates.

The mandate is off-chain: the API checks the borrower's EIP-712 `DebitMandate` signature here (it must recover to the
signed-in borrower, for exactly the loan, the card, the ceiling, the expiry and the nonce the API showed) and keeps it
in `debit_mandates`; the oracle's collection run (oracle.collections) acts on the active ones. The card is named in
the message by its masked last four digits only: the full number stays in the vault, out of signatures and logs.

One active mandate per loan: a new one replaces the previous. Revocation is signed too (`RevokeDebitMandate` naming
the mandate's nonce); the next collection run finds no active mandate and debits nothing.

Refusals by name: 422 `mandate_signature_invalid` (forged, or signed by another wallet, or over other terms),
409 `mandate_nonce_used` (not the nonce the API shows), 422 `mandate_card_mismatch` (not the card bound now),
422 `mandate_expired`, 409 `loan_not_active`, 409 `no_bound_card`, 404 `no_active_mandate`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.errors import ApiError
from api.notices.catalogue import local_date, yuan  # amounts and dates written as the notices write them
from ledger import typed_data
from ledger.book import LoanStatus
from api.paging import Keyset
from ledger.store.models.mandates import CollectionIntent, DebitMandate
from ledger.store.projection import upcoming_due_at
from ledger.vault import RecordNotFound
from oracle.collections import COLLECTED, DECLINED, FAILED, PENDING_INTENT, SENT, SET_ASIDE


def mask_card(number: str) -> str:
    """What a mandate names the card by: its last four digits ("**** 1234")."""
    return f"**** {number[-4:]}"


def bound_card(context, address: str) -> str:
    """The masked card bound to the borrower now (the vault's record); 409 `no_bound_card` without one."""
    try:
        record = context.vault.get(address)
    except RecordNotFound:
        raise ApiError(409, "no_bound_card", "no verified bank card is bound to this wallet") from None
    return mask_card(record.bank_card)


def next_nonce(session: Session, borrower: str) -> int:
    """Mandate nonces count per borrower from 1: each signature is good for one mandate only."""
    return (session.scalar(select(func.max(DebitMandate.nonce)).where(DebitMandate.borrower == borrower.lower()))
            or 0) + 1


def active(session: Session, loan_id: int, now: int | None = None) -> DebitMandate | None:
    """The loan's mandate in force (not revoked; not expired at `now`, if given)."""
    row = session.scalar(select(DebitMandate).where(DebitMandate.loan_id == loan_id, DebitMandate.revoked_at.is_(None))
                         .order_by(DebitMandate.id.desc()).limit(1))
    if row is not None and now is not None and row.valid_until < now:
        return None
    return row


def collections(session: Session, loan_id: int, limit: int = 50) -> list[CollectionIntent]:
    """The loan's automatic debits (the collection run's intents), newest first."""
    return list(session.scalars(select(CollectionIntent).where(CollectionIntent.loan_id == loan_id)
                                .order_by(CollectionIntent.id.desc()).limit(limit)))


@dataclass(frozen=True)
class Terms:
    max_amount: int
    valid_until: int


def to_sign(context, borrower: str, loan_id: int, terms: Terms) -> dict:
    """The DebitMandate message the borrower signs for these terms (the card bound now, the next nonce)."""
    with context.sessions() as session:
        nonce = next_nonce(session, borrower)
    return typed_data.debit_mandate(chain_id=context.w3.eth.chain_id, book=context.bindings.book.address,
                                    borrower=borrower, loan_id=loan_id, card=bound_card(context, borrower),
                                    max_amount=terms.max_amount, valid_until=terms.valid_until, nonce=nonce)


def default_valid_until(context, loan) -> int:
    """How long a mandate proposed without an expiry holds: until the loan's last due date and its default period
    after it (a debit may still be retried then), never for ever."""
    last = max((row.due_at for row in loan.schedule), default=0) or context.chain_time()
    return last + loan.default_after


def proposed_ceiling(context, loan) -> int:
    """The ceiling proposed when the borrower names none: what the loan book will ask on the next due date (the
    book's amountDue then, fees included), else (nothing scheduled after now) the principal."""
    now = context.chain_time()
    upcoming = upcoming_due_at(loan, now) if loan.status == LoanStatus.ACTIVE.solidity_name else None
    if upcoming is None:
        return loan.principal
    return sum(context.bindings.book.functions.amountDue(loan.id, upcoming).call()[:4])


def typed_to_sign(context, borrower: str, loan, terms: Terms, currency: str) -> dict:
    """The DebitMandate typed data for these terms, ready for eth_signTypedData_v4 (ledger.typed_data: the one
    definition), with what it authorises in plain words in both languages, as POST /debit-mandate then checks it."""
    typed = to_sign(context, borrower, loan.id, terms)
    message = typed["message"]
    words = {
        "zh-CN": f"授权从银行卡 {message['card']} 在借款（编号{loan.id}）每个还款日自动扣除应还金额，每次最多"
                 f"{yuan(terms.max_amount)}元，有效期至{local_date(terms.valid_until, 'zh-CN')}。可随时撤销。",
        "en": f"Let the rail debit card {message['card']} on each due date of loan {loan.id} for the amount due, at "
              f"most {currency} {yuan(terms.max_amount)} a time, until {local_date(terms.valid_until, 'en')}. "
              f"You can revoke it at any time.",
    }
    return {"loan_id": loan.id, "card": message["card"], "max_amount": terms.max_amount, "currency": currency,
            "valid_until": terms.valid_until, "nonce": message["nonce"], "summary": words, "typed_data": typed}


def _signed_by(message: dict, signature: bytes) -> str | None:
    try:
        return typed_data.recover(message, signature)
    except Exception:  # noqa: BLE001 - a malformed signature is refused like a wrong one
        return None


def create(context, borrower: str, loan_status: str, loan_id: int, terms: Terms, nonce: int, card: str,
           signature: bytes, request_id: str) -> DebitMandate:
    """Checks and keeps the borrower's signed mandate; the loan's previous mandate, if any, is replaced."""
    if loan_status != LoanStatus.ACTIVE.solidity_name:
        raise ApiError(409, "loan_not_active", f"loan {loan_id} is {loan_status}: only an active loan is debited")
    now = context.chain_time()
    if terms.valid_until <= now:
        raise ApiError(422, "mandate_expired", "valid_until is already past")
    bound = bound_card(context, borrower)
    if card != bound:
        raise ApiError(422, "mandate_card_mismatch", f"the card signed ({card}) is not the card bound ({bound})")
    message = typed_data.debit_mandate(chain_id=context.w3.eth.chain_id, book=context.bindings.book.address,
                                       borrower=borrower, loan_id=loan_id, card=card, max_amount=terms.max_amount,
                                       valid_until=terms.valid_until, nonce=nonce)
    signer = _signed_by(message, signature)
    if signer is None or signer.lower() != borrower.lower():
        raise ApiError(422, "mandate_signature_invalid", "the signature is not the borrower's over this "
                                                         "DebitMandate (loan, card, ceiling, expiry, nonce)")
    at = int(time.time())
    with context.sessions.begin() as session:
        if nonce != next_nonce(session, borrower):
            raise ApiError(409, "mandate_nonce_used", f"nonce {nonce} is not the next one: sign the message GET shows")
        previous = active(session, loan_id)
        if previous is not None:
            previous.revoked_at = at  # replaced: one mandate in force per loan
        row = DebitMandate(loan_id=loan_id, borrower=borrower.lower(), card=card, max_amount=terms.max_amount,
                           valid_until=terms.valid_until, nonce=nonce, signature="0x" + signature.hex(),
                           created_at=at, revoked_at=None, revocation_signature=None)
        session.add(row)
        session.flush()
        session.expunge(row)
    context.action_log.append(borrower, "loan.debit_mandate", request_id,
                              {"loan_id": loan_id, "mandate_id": row.id, "card": card, "max_amount": terms.max_amount,
                               "valid_until": terms.valid_until})
    return row


def revocation_to_sign(context, borrower: str, loan_id: int) -> dict | None:
    with context.sessions() as session:
        row = active(session, loan_id)
    if row is None or row.borrower != borrower.lower():
        return None
    return typed_data.revoke_debit_mandate(chain_id=context.w3.eth.chain_id, book=context.bindings.book.address,
                                           borrower=borrower, loan_id=loan_id, nonce=row.nonce)


def revoke(context, borrower: str, loan_id: int, signature: bytes, request_id: str) -> DebitMandate:
    """Revokes the loan's mandate in force with the borrower's RevokeDebitMandate signature."""
    with context.sessions.begin() as session:
        row = active(session, loan_id)
        if row is None or row.borrower != borrower.lower():
            raise ApiError(404, "no_active_mandate", f"loan {loan_id} has no debit mandate in force")
        message = typed_data.revoke_debit_mandate(chain_id=context.w3.eth.chain_id,
                                                  book=context.bindings.book.address, borrower=borrower,
                                                  loan_id=loan_id, nonce=row.nonce)
        signer = _signed_by(message, signature)
        if signer is None or signer.lower() != borrower.lower():
            raise ApiError(422, "mandate_signature_invalid",
                           "the signature is not the borrower's over RevokeDebitMandate for this mandate")
        row.revoked_at, row.revocation_signature = int(time.time()), "0x" + signature.hex()
        session.flush()
        session.expunge(row)
    context.action_log.append(borrower, "loan.debit_mandate_revoke", request_id,
                              {"loan_id": loan_id, "mandate_id": row.id})
    return row


# The collection run's states of a debit (oracle.collections), in the order a debit goes through them.
DEBIT_STATES = (PENDING_INTENT, SENT, COLLECTED, DECLINED, FAILED, SET_ASIDE)
DEBIT_ORDER = Keyset((CollectionIntent.id,), (int,))  # the order the collection run recorded them


def debits_query(state: str | None = None, loan_id: int | None = None):
    """Every automatic-debit attempt the collection run recorded (operator-wide), optionally of one state or loan;
    422 `invalid_state` for a state the run never writes."""
    query = select(CollectionIntent)
    if state is not None:
        if state not in DEBIT_STATES:
            raise ApiError(422, "invalid_state", f"state {state!r} is not one of {', '.join(DEBIT_STATES)}")
        query = query.where(CollectionIntent.status == state)
    if loan_id is not None:
        query = query.where(CollectionIntent.loan_id == loan_id)
    return query

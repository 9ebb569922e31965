"""Holding received money in suspense, from the oracle's side: every payment the rail says it moved has a home.

Two ways in, one item per received payment ((provider, reference) is unique, see
ledger/store/models/suspense.py):

- the webhook intake refuses the content of an authentic repayment (a loan id past uint256, an unknown
  currency...): `hold_refused_webhook` records it with the refusal, and no outbox row;
- the outbox worker settles a repayment `rejected` or `set_aside`: `outbox_item` builds the row it adds in
  the transaction that settles the item (oracle/outbox.py).

The item keeps the payment as the rail first sent it (an operator's apply re-points the outbox row, never the
item), so a redelivery is compared with `original_facts`: the same facts are a duplicate, other facts
under the same reference a conflicting replay.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ledger.encoding import to_0x_hex
from ledger.store.models.outbox import OutboxItem
from ledger.store.models.suspense import SuspenseItem, SuspenseState
from oracle.payments.inbound import (
    MAX_ID,
    MAX_PAID_AT,
    MAX_STORED,
    Confirmation,
    RefusedPayment,
)

OPEN, APPLIED, REVERSED = SuspenseState.OPEN, SuspenseState.APPLIED, SuspenseState.REVERSED
RAIL = "rail"  # who resolved an item the rail took back itself (a chargeback of a payment held in suspense)
TAKEN_FROM_SUSPENSE = "taken_from_suspense"  # the outcome of such a chargeback's outbox row (no transaction)
NO_CURRENCY = "XXX"  # ISO 4217's code for "no currency": what an item shows when the rail's was not a code


def find(session: Session, provider: str, reference: str) -> SuspenseItem | None:
    return session.scalar(select(SuspenseItem).where(SuspenseItem.provider == provider,
                                                     SuspenseItem.reference == reference))


def original_facts(item: SuspenseItem) -> tuple:
    """(kind, loan id, payment_ref, amount, currency, paid_at) as the rail first sent them."""
    return "repayment", item.loan_id, item.payment_ref, item.amount, item.currency, item.paid_at


def confirmation_facts(c: Confirmation, *, paid_at: int | None = None) -> tuple:
    """What `original_facts` would say of `c` once stored (values the store cannot hold as they are become
    what an item records instead); `paid_at` stands in for an item recorded before it kept one."""
    return (c.kind, _stored_id(c.loan_id), to_0x_hex(c.payment_ref), c.amount, _stored_currency(c.currency),
            _stored_paid_at(c.paid_at) if paid_at is None else paid_at)


def same_payment(item: SuspenseItem, c: Confirmation) -> bool:
    """Whether `c` repeats the payment the item holds (an item from before 0010 has no paid_at to compare)."""
    facts = original_facts(item)
    return facts[:5] == confirmation_facts(c)[:5] and (item.paid_at is None or facts[5] == _stored_paid_at(c.paid_at))


def hold_refused_webhook(sessions: sessionmaker, refused: RefusedPayment, now: int) -> tuple[SuspenseItem, bool]:
    """(the new item, True), or for a payment held before, (that item, False). An IntegrityError means the
    reference is taken by another row that vanished meanwhile: the caller answers 503 and the rail retries."""
    c = refused.confirmation
    item = SuspenseItem(outbox_item_id=None, provider=c.provider, reference=c.reference,
                        payment_ref=to_0x_hex(c.payment_ref), loan_id=_stored_id(c.loan_id), amount=c.amount,
                        currency=_stored_currency(c.currency), reason=refused.reason[:64],
                        detail=refused.message[:2000],
                        event_id=c.event_id if isinstance(c.event_id, str) and 1 <= len(c.event_id) <= MAX_ID
                        and c.event_id.isprintable() else None,
                        paid_at=_stored_paid_at(c.paid_at), received_at=now, state=OPEN, created_at=now,
                        updated_at=now)
    try:
        with sessions.begin() as session:
            session.add(item)
        return item, True
    except IntegrityError:
        with sessions() as session:
            existing = find(session, c.provider, c.reference)
        if existing is None:
            raise
        return existing, False


def outbox_item(row: OutboxItem, reason: str, detail: str | None, now: int) -> SuspenseItem:
    """The suspense item of a repayment the outbox settles rejected or set aside (added by the caller)."""
    return SuspenseItem(outbox_item_id=row.id, provider=row.provider, reference=row.reference,
                        payment_ref=row.payment_ref, loan_id=_stored_id(row.loan_id), amount=row.amount,
                        currency=_stored_currency(row.currency), reason=reason[:64],
                        detail=None if detail is None else detail[:2000], event_id=row.event_id,
                        paid_at=_stored_paid_at(row.paid_at), received_at=row.received_at, state=OPEN,
                        created_at=now, updated_at=now)


def received(sessions: sessionmaker, payment_ref: str) -> OutboxItem | None:
    """The outbox row of a payment reference, if a webhook for it was ever accepted."""
    with sessions() as session:
        return session.scalar(select(OutboxItem).where(OutboxItem.payment_ref == payment_ref))


def held(sessions: sessionmaker, provider: str, reference: str) -> SuspenseItem | None:
    with sessions() as session:
        return find(session, provider, reference)


def counts(sessions: sessionmaker) -> dict[str, int]:
    """Suspense items by state (for the oracle's /metrics)."""
    with sessions() as session:
        return dict(session.execute(select(SuspenseItem.state, func.count()).group_by(SuspenseItem.state)).all())


def _stored_id(loan_id) -> int:
    """The loan id as the rail sent it, or 0 (no loan) when the store cannot hold it (negative, past 10**78)."""
    return loan_id if _is_int(loan_id) and 0 <= loan_id <= MAX_STORED else 0


def _stored_currency(currency) -> str:
    return currency if isinstance(currency, str) and len(currency) == 3 and currency.isascii() \
        and currency.isalpha() and currency.isupper() else NO_CURRENCY


def _stored_paid_at(paid_at) -> int | None:
    return paid_at if _is_int(paid_at) and 1 <= paid_at <= MAX_PAID_AT else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

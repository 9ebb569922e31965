"""Suspense items and their refunds: money the rail delivered that the ledger could not apply, until resolved.

The outbox records a suspense item when it settles a repayment `rejected` or `set_aside` (oracle/outbox.py),
and the webhook intake when it refuses the content of an authentic repayment (oracle/suspense.py; no outbox
row then); here operators and auditors read them, and an operator refunds or applies one.

A refund follows the payout-order pattern (api/services/payouts.py): the order is recorded (`refund_orders`,
unique per suspense item) before the provider is called, with an idempotency key naming the received
payment, so the provider executes it at most once; an order whose answer was lost stays `sent`, and asking
again looks the key up at the provider before anything is re-sent. The item is `refunded` once the provider has answered with its reference.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from api.errors import ApiError
from api.services.provider_orders import (
    Detached,
    ProviderMissing,
    call,
    look_up,
    provider_named,
)
from ledger.book import read_loan
from ledger.store.models.outbox import OutboxItem
from ledger.store.models.suspense import RefundOrder, SuspenseItem, SuspenseState
from oracle.payments.provider import PaymentProvider
from oracle.payments.provider import RefundOrder as RefundRequest

log = logging.getLogger(__name__)

OPEN, REFUNDING, REFUNDED, APPLIED, REVERSED = (SuspenseState.OPEN, SuspenseState.REFUNDING, SuspenseState.REFUNDED,
                                               SuspenseState.APPLIED, SuspenseState.REVERSED)
ORDERED, SENT, FAILED = "ordered", "sent", "failed"  # refund order states besides `refunded`
REQUEUEABLE = ("rejected", "set_aside")  # outbox states of a payment received and not credited
_UINT96 = 2**96


class RefundUnavailable(ApiError):
    """The provider did not answer: the refund order stays as it is (`sent` if it may have been taken)."""

    def __init__(self, item_id: int, state: str, error: str):
        super().__init__(503, "rail_unavailable",
                         f"the payment provider did not answer for suspense item {item_id} (refund {state}): "
                         f"{error[:160]}; retry: the refund is recorded, and the provider is asked what became "
                         "of it before anything is re-sent")


@dataclass(frozen=True)
class Refund(Detached):
    id: int
    provider: str
    idempotency_key: str
    payment_reference: str
    amount: int
    currency: str
    state: str
    refund_reference: str | None
    attempts: int
    last_error: str | None
    ordered_by: str
    ordered_at: int
    sent_at: int | None
    refunded_at: int | None
    failed_at: int | None


@dataclass(frozen=True)
class Item:
    id: int
    provider: str
    reference: str
    payment_ref: str
    loan_id: int
    amount: int
    currency: str
    reason: str
    detail: str | None
    paid_at: int | None
    outbox_item_id: int | None
    received_at: int
    state: str
    resolved_by: str | None
    resolved_at: int | None
    refund: Refund | None


def refund_key(item: Item) -> str:
    """The provider-side idempotency key: one refund per received payment (the provider scopes its references)."""
    return f"refund:{item.provider}:{item.reference}"


def list_items(context, *, state: str | None = None, loan_id: int | None = None, limit: int = 100) -> list[Item]:
    """Suspense items, newest first, each with its refund order if it has one."""
    query = select(SuspenseItem).order_by(SuspenseItem.id.desc()).limit(limit)
    if state is not None:
        query = query.where(SuspenseItem.state == state)
    if loan_id is not None:
        query = query.where(SuspenseItem.loan_id == loan_id)
    with context.sessions() as session:
        rows = list(session.scalars(query))
        refunds = {r.suspense_item_id: Refund.of(r) for r in session.scalars(
            select(RefundOrder).where(RefundOrder.suspense_item_id.in_([row.id for row in rows])))}
        return [_item(row, refunds.get(row.id)) for row in rows]


def find(context, item_id: int) -> Item | None:
    with context.sessions() as session:
        row = session.get(SuspenseItem, item_id)
        if row is None:
            return None
        refund = session.scalar(select(RefundOrder).where(RefundOrder.suspense_item_id == item_id))
        return _item(row, None if refund is None else Refund.of(refund))


def refund(context, item_id: int, actor: str, request_id: str) -> Item:
    """Refunds a suspense item over the rail, once; asking again answers (and completes) the same refund."""
    item = find(context, item_id)
    if item is None:
        raise ApiError(404, "not_found", f"no suspense item {item_id}")
    if item.state == APPLIED:  # raced with apply, or applied before
        raise ApiError(409, "already_applied", f"suspense item {item_id} was applied to a loan: nothing to refund")
    if item.state == REVERSED:
        raise ApiError(409, "reversed", f"suspense item {item_id} was taken back by the rail (a chargeback): nothing "
                                        "to refund")
    order = item.refund or _record(context, item, actor, request_id)
    if order.state in (REFUNDED, FAILED):
        return find(context, item_id)
    provider = _provider(context, item)
    if order.state == SENT and order.refund_reference is None:
        order = _reconcile(context, provider, item, order)
    if order.refund_reference is not None:
        return _refunded(context, item, order, actor, request_id)
    return _send(context, provider, item, order, actor, request_id)


def apply(context, item_id: int, loan_id: int, actor: str, request_id: str) -> Item:
    """Queues the received payment as a repayment of the loan the operator names, with the same rail reference.

    The book never credited the item's reference, so the same reference is accepted for another loan. The
    outbox keeps one row per reference: a refused or set-aside row goes back to `pending` with the named loan;
    an item the intake held has no row yet, and gets one (pending, for the named loan). The item keeps the loan
    id the rail sent, and the action log both; if the book refuses it again the outbox reopens the item with
    the new reason.
    """
    item = find(context, item_id)
    if item is None:
        raise ApiError(404, "not_found", f"no suspense item {item_id}")
    if item.state != OPEN:
        raise ApiError(409, "not_open", f"suspense item {item_id} is {item.state}: only an open item can be applied")
    loan = read_loan(context.bindings.book, loan_id)  # an unknown loan: the API's 404 loan_book_unknown_loan
    if loan.currency != item.currency:
        raise ApiError(409, "currency_mismatch", f"loan {loan_id} is in {loan.currency}; the payment is in "
                                                 f"{item.currency}")
    if not loan.running:
        raise ApiError(409, "not_running", f"loan {loan_id} is {loan.status.solidity_name}: it takes no repayments")
    if not 0 < item.amount < _UINT96:
        raise ApiError(409, "amount_out_of_range", f"suspense item {item_id} is {item.amount} minor units: more "
                                                   "than the loan book can credit at once; refund it")
    now = int(time.time())
    try:
        with context.sessions.begin() as session:
            taken = session.execute(update(SuspenseItem).where(SuspenseItem.id == item_id, SuspenseItem.state == OPEN)
                                    .values(state=APPLIED, resolved_by=actor, resolved_at=now, updated_at=now)).rowcount
            if not taken:  # a concurrent refund or apply got there first
                raise ApiError(409, "not_open", f"suspense item {item_id} was resolved meanwhile")
            if item.outbox_item_id is None:
                _queue(session, item, loan_id, now)
            else:
                requeued = session.execute(update(OutboxItem).where(OutboxItem.id == item.outbox_item_id,
                                                                    OutboxItem.status.in_(REQUEUEABLE))
                                           .values(loan_id=loan_id, status="pending", attempts=0, next_attempt_at=0,
                                                   outcome=None, last_error=None, updated_at=now)).rowcount
                if not requeued:
                    raise ApiError(409, "not_rejected",
                                   f"the confirmation of suspense item {item_id} is no longer rejected or set aside")
    except IntegrityError:  # the outbox holds this reference or event id already: never queue it twice
        raise ApiError(409, "already_queued", f"the outbox already holds a confirmation for reference "
                                              f"{item.reference}; look at it before applying") from None
    context.action_log.append(actor, "suspense.applied", request_id,
                              {"suspense_item_id": item_id, "reference": item.reference, "from_loan_id": item.loan_id,
                               "to_loan_id": loan_id, "amount": item.amount, "currency": item.currency})
    return find(context, item_id)


def _queue(session, item: Item, loan_id: int, now: int) -> None:
    """The outbox row of an item the intake held: the repayment as the rail sent it, for the named loan.
    Its event id names the item (the webhook's own was refused with it, or never usable)."""
    row = OutboxItem(provider=item.provider, event_id=f"suspense:{item.id}", kind="repayment", loan_id=loan_id,
                     reference=item.reference, payment_ref=item.payment_ref, amount=item.amount,
                     currency=item.currency, paid_at=item.paid_at or item.received_at, received_at=item.received_at,
                     status="pending", attempts=0, next_attempt_at=0, updated_at=now)
    session.add(row)
    session.flush()
    session.execute(update(SuspenseItem).where(SuspenseItem.id == item.id).values(outbox_item_id=row.id))


# ---------------------------------------------------------------------------- steps


def _record(context, item: Item, actor: str, request_id: str) -> Refund:
    """Writes the refund order (state `ordered`) and marks the item `refunding`; a concurrent caller's row wins."""
    now = int(time.time())
    try:
        with context.sessions.begin() as session:
            row = RefundOrder(suspense_item_id=item.id, provider=item.provider, idempotency_key=refund_key(item),
                              payment_reference=item.reference, loan_id=item.loan_id, amount=item.amount,
                              currency=item.currency, state=ORDERED, attempts=0, ordered_by=actor, ordered_at=now,
                              updated_at=now)
            session.add(row)
            session.flush()
            session.execute(update(SuspenseItem).where(SuspenseItem.id == item.id)
                            .values(state=REFUNDING, refund_order_id=row.id, updated_at=now))
    except IntegrityError:
        return find(context, item.id).refund  # another request recorded it first: answer that order
    context.action_log.append(actor, "suspense.refund_ordered", request_id,
                              {"suspense_item_id": item.id, "reference": item.reference, "amount": item.amount,
                               "currency": item.currency, "reason": item.reason})
    return find(context, item.id).refund


def _reconcile(context, provider: PaymentProvider, item: Item, order: Refund) -> Refund:
    """Asks the provider what became of a sent refund; records its reference if it took it."""
    found = look_up(provider, order.idempotency_key)
    if found.unanswered:
        _update(context, order.id, last_error=found.unanswered)
        raise RefundUnavailable(item.id, order.state, found.unanswered)
    if found.reference is None:
        return order
    return _update(context, order.id, refund_reference=found.reference)


def _send(context, provider: PaymentProvider, item: Item, order: Refund, actor: str, request_id: str) -> Item:
    """Marks the order `sent` (persisted first: from here on its outcome is the provider's) and sends it."""
    _update(context, order.id, state=SENT, sent_at=int(time.time()), attempts=order.attempts + 1)
    request = RefundRequest(loan_id=item.loan_id, rail_reference=item.reference, amount=item.amount,
                            currency=item.currency, purpose="suspense")
    attempt = call(lambda: provider.order_refund(request, order.idempotency_key))
    if attempt.refused:
        log.warning("refund of suspense item %d refused by %s: %s", item.id, provider.name, attempt.refused)
        _update(context, order.id, state=FAILED, failed_at=int(time.time()), last_error=attempt.refused)
        _set_item(context, item.id, state=OPEN)  # still money owed back: it stays open for the operator
        context.action_log.append(actor, "suspense.refund_failed", request_id,
                                  {"suspense_item_id": item.id, "error": attempt.refused[:200]})
        return find(context, item.id)
    if attempt.unanswered:  # timeout, 5xx, dropped connection: it may have been taken
        log.warning("refund of suspense item %d unanswered by %s: %s", item.id, provider.name, attempt.unanswered)
        _update(context, order.id, last_error=attempt.unanswered)
        raise RefundUnavailable(item.id, SENT, attempt.unanswered)
    order = _update(context, order.id, refund_reference=attempt.reference)
    return _refunded(context, item, order, actor, request_id)


def _refunded(context, item: Item, order: Refund, actor: str, request_id: str) -> Item:
    now = int(time.time())
    with context.sessions.begin() as session:  # conditional: of two concurrent answers, one logs the refund
        done = session.execute(update(RefundOrder).where(RefundOrder.id == order.id, RefundOrder.state != REFUNDED)
                               .values(state=REFUNDED, refunded_at=now, last_error=None, updated_at=now)).rowcount
        session.execute(update(SuspenseItem).where(SuspenseItem.id == item.id, SuspenseItem.state != REFUNDED)
                        .values(state=REFUNDED, resolved_by=actor, resolved_at=now, updated_at=now))
    if not done:
        return find(context, item.id)
    context.action_log.append(actor, "suspense.refunded", request_id,
                              {"suspense_item_id": item.id, "reference": item.reference,
                               "refund_reference": order.refund_reference, "amount": item.amount,
                               "currency": item.currency})
    return find(context, item.id)


def _update(context, order_id: int, **values) -> Refund:
    with context.sessions.begin() as session:
        session.execute(update(RefundOrder).where(RefundOrder.id == order_id)
                        .values(**values, updated_at=int(time.time())))
    with context.sessions() as session:
        return Refund.of(session.get(RefundOrder, order_id))


def _set_item(context, item_id: int, **values) -> None:
    with context.sessions.begin() as session:
        session.execute(update(SuspenseItem).where(SuspenseItem.id == item_id)
                        .values(**values, updated_at=int(time.time())))


def _item(row: SuspenseItem, refund: Refund | None) -> Item:
    fields = {name: getattr(row, name) for name in Item.__dataclass_fields__ if name != "refund"}
    return Item(**fields, refund=refund)


def _provider(context, item: Item) -> PaymentProvider:
    """The provider that delivered the payment: the money goes back the way it came."""
    try:
        return provider_named(context, item.provider)
    except ProviderMissing as exc:
        raise RefundUnavailable(item.id, "not sent", str(exc)) from None

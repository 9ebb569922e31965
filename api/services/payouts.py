"""Payout orders: a loan is paid out once, however often (and however concurrently) it is asked.

The order is recorded (`payout_orders`, unique per loan) before the provider is called, with an
idempotency key naming the loan, so the provider executes it at most once. Before anything is re-sent,
an order whose answer was lost (a timeout, a 5xx, a dropped connection: state `sent`, no rail
reference) is reconciled: the provider is asked what became of that key, and the order is re-sent
(with the same key) only if it never took it. Asking again for a loan with an order answers that order.

An order is `settled` once the read model shows the loan disbursed: the indexer writes that from the
chain's LoanDisbursed, and orders are brought up to date with it whenever they are read or asked for
again (the projection stays a pure fold of events, and the order's last word comes from the chain).

A payout the receiving bank sends back (the rail's `payout.returned`, on-chain `DisbursementReversed`: the loan
is Approved again) fails its order, with the reason. Asking for the payout again answers that failed order: the
money came back for a reason (a closed account, a wrong name) that re-sending the same order would not cure.
An operator either cancels the loan or re-orders explicitly (`retry_payout`, `/disburse?retry=true`): the
order is recorded again with the next attempt number in its idempotency key (`...:retry1`), so the provider
takes it as a new order, once.
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
from ledger.book import LoanStatus, read_loan
from ledger.encoding import to_0x_hex
from ledger.store.models.chain import Loan, Payment
from ledger.store.models.payouts import PayoutOrder
from oracle.payments.config import ProviderConfigError, payout_provider
from oracle.payments.inbound import payment_ref
from oracle.payments.provider import PaymentOrder, PaymentProvider

log = logging.getLogger(__name__)

ORDERED, SENT, SETTLED, FAILED, CANCELLED = "ordered", "sent", "settled", "failed", "cancelled"
FINAL = frozenset({SETTLED, FAILED, CANCELLED})
DISBURSED = frozenset({"Active", "Repaid", "Defaulted", "WrittenOff", "Overpaid"})  # read-model statuses after a payout
CLOSED_UNPAID = frozenset({"Cancelled", "Rejected"})


class PayoutUnavailable(ApiError):
    """The provider did not answer: the order stays as it is (`sent` if it may have been taken)."""

    def __init__(self, loan_id: int, state: str, error: str):
        super().__init__(503, "rail_unavailable",
                         f"the payout provider did not answer for loan {loan_id} (order {state}): {error[:160]}; "
                         "retry: the order is recorded, and the provider is asked what became of it before "
                         "anything is re-sent")
        self.state = state


@dataclass(frozen=True)
class Order(Detached):
    """A payout order as read (detached from its session)."""

    loan_id: int
    provider: str
    idempotency_key: str
    amount: int
    currency: str
    state: str
    rail_reference: str | None
    attempts: int
    last_error: str | None
    ordered_at: int
    sent_at: int | None
    settled_at: int | None
    failed_at: int | None
    cancelled_at: int | None
    updated_at: int


def payout_key(context, loan_id: int) -> str:
    """The provider-side idempotency key: one per loan of this loan book on this chain."""
    return f"payout:{context.w3.eth.chain_id}:{context.bindings.book.address}:{loan_id}"


def order_payout(context, loan_id: int, actor: str, request_id: str) -> Order:
    """The loan's payout order, recorded and sent if it was not yet; raises `PayoutUnavailable` (503)."""
    order = find(context, loan_id) or _record(context, loan_id, actor, request_id)
    if order.state in FINAL:
        return order
    provider = _provider(context, order)
    if order.state == SENT:
        order = _reconcile(context, provider, order)
        if order.rail_reference is not None or order.state in FINAL:
            return order
    status = read_loan(context.bindings.book, loan_id).status
    if status is not LoanStatus.APPROVED:  # paid out already (the webhook beat the read model), or closed
        return _close(context, order, status)
    return _send(context, provider, order, actor, request_id)


def retry_payout(context, loan_id: int, actor: str, request_id: str) -> Order:
    """Orders a failed payout again, as a new order (the next attempt number in its key); 409 unless the
    loan's order failed and the loan is still Approved on-chain."""
    order = find(context, loan_id)
    if order is None or order.state != FAILED:
        raise ApiError(409, "payout_not_failed", f"loan {loan_id} has no failed payout order to retry "
                       f"(order: {order.state if order else 'none'})")
    if read_loan(context.bindings.book, loan_id).status is not LoanStatus.APPROVED:
        raise ApiError(409, "not_approved", f"loan {loan_id} is not approved (nothing to pay out)")
    retry = _retry_number(order.idempotency_key) + 1
    key = f"{payout_key(context, loan_id)}:retry{retry}"
    now = int(time.time())
    with context.sessions.begin() as session:  # one of two concurrent retries wins; the other answers its order
        changed = session.execute(
            update(PayoutOrder).where(PayoutOrder.loan_id == loan_id, PayoutOrder.state == FAILED,
                                      PayoutOrder.idempotency_key == order.idempotency_key)
            .values(state=ORDERED, idempotency_key=key, rail_reference=None, ordered_at=now, sent_at=None,
                    settled_at=None, failed_at=None, updated_at=now)).rowcount
    if changed:
        context.action_log.append(actor, "payout.reordered", request_id,
                                  {"loan_id": loan_id, "retry": retry, "previous_error": (order.last_error or "")[:200]})
    return order_payout(context, loan_id, actor, request_id)


def _retry_number(key: str) -> int:
    last = key.rsplit(":", 1)[-1]
    return int(last.removeprefix("retry")) if last.startswith("retry") and last[5:].isdigit() else 0


def find(context, loan_id: int) -> Order | None:
    _catch_up(context)
    with context.sessions() as session:
        row = session.scalar(select(PayoutOrder).where(PayoutOrder.loan_id == loan_id))
        return None if row is None else Order.of(row)


def list_orders(context, *, state: str | None = None, loan_id: int | None = None, limit: int = 100) -> list[Order]:
    """Orders newest first, brought up to date with the read model first."""
    _catch_up(context)
    query = select(PayoutOrder).order_by(PayoutOrder.id.desc()).limit(limit)
    if state is not None:
        query = query.where(PayoutOrder.state == state)
    if loan_id is not None:
        query = query.where(PayoutOrder.loan_id == loan_id)
    with context.sessions() as session:
        return [Order.of(row) for row in session.scalars(query)]


# ---------------------------------------------------------------------------- steps


def _record(context, loan_id: int, actor: str, request_id: str) -> Order:
    """Writes the order (state `ordered`) for an approved loan; a concurrent caller's row wins a race."""
    loan = read_loan(context.bindings.book, loan_id)
    if loan.status is not LoanStatus.APPROVED:
        raise ApiError(409, "not_approved", f"loan {loan_id} is not approved (nothing to pay out)")
    try:
        provider = payout_provider(context.settings, context.env or context.settings.environ)
    except ProviderConfigError as exc:
        raise PayoutUnavailable(loan_id, "not ordered", str(exc)) from None
    now = int(time.time())
    amount = loan.terms.principal - loan.terms.serviceFee  # the product's up-front fee stays with the lender
    try:
        with context.sessions.begin() as session:
            session.add(PayoutOrder(loan_id=loan_id, provider=provider.name, idempotency_key=payout_key(context, loan_id),
                                    amount=amount, currency=loan.currency, state=ORDERED, attempts=0,
                                    ordered_at=now, updated_at=now))
    except IntegrityError:
        return find(context, loan_id)  # another request recorded it first: answer that order
    context.action_log.append(actor, "payout.ordered", request_id,
                              {"loan_id": loan_id, "provider": provider.name, "amount": amount})
    return find(context, loan_id)


def _reconcile(context, provider: PaymentProvider, order: Order) -> Order:
    """Asks the provider what became of a sent order; records its reference if it took it."""
    if order.rail_reference is not None:
        return order
    found = look_up(provider, order.idempotency_key)
    if found.unanswered:
        _update(context, order.loan_id, last_error=found.unanswered)
        raise PayoutUnavailable(order.loan_id, order.state, found.unanswered)
    if found.reference is None:
        return order
    return _update(context, order.loan_id, rail_reference=found.reference, last_error=None)


def _send(context, provider: PaymentProvider, order: Order, actor: str, request_id: str) -> Order:
    """Marks the order `sent` (persisted first: from here on its outcome is the provider's) and sends it."""
    now = int(time.time())
    _update(context, order.loan_id, state=SENT, sent_at=now, attempts=order.attempts + 1)
    request = PaymentOrder(loan_id=order.loan_id, amount=order.amount, currency=order.currency,
                           paid_at=context.chain_time())
    attempt = call(lambda: provider.order_payout(request, order.idempotency_key))
    if attempt.refused:
        log.warning("payout of loan %d refused by %s: %s", order.loan_id, provider.name, attempt.refused)
        context.action_log.append(actor, "loan.payout_failed", request_id,
                                  {"loan_id": order.loan_id, "error": attempt.refused[:200]})
        return _update(context, order.loan_id, state=FAILED, failed_at=int(time.time()), last_error=attempt.refused)
    if attempt.unanswered:  # timeout, 5xx, dropped connection: it may have been taken
        log.warning("payout of loan %d unanswered by %s: %s", order.loan_id, provider.name, attempt.unanswered)
        context.action_log.append(actor, "loan.payout_unanswered", request_id,
                                  {"loan_id": order.loan_id, "error": attempt.unanswered[:200]})
        _update(context, order.loan_id, last_error=attempt.unanswered)
        raise PayoutUnavailable(order.loan_id, SENT, attempt.unanswered)
    context.action_log.append(actor, "loan.payout", request_id,
                              {"loan_id": order.loan_id, "provider": provider.name,
                               "rail_reference": attempt.reference, "amount": order.amount})
    return _update(context, order.loan_id, rail_reference=attempt.reference, last_error=None)


def _close(context, order: Order, status: LoanStatus) -> Order:
    """The loan is no longer Approved on-chain and the provider has not taken the order: settle or cancel it."""
    now = int(time.time())
    if status.solidity_name in DISBURSED:
        return _update(context, order.loan_id, state=SETTLED, settled_at=now)
    return _update(context, order.loan_id, state=CANCELLED, cancelled_at=now)


def _catch_up(context) -> None:
    """Open orders whose loan the read model shows disbursed become `settled`; orders never handed to the
    provider whose loan closed unpaid become `cancelled` (a `sent` one may have been taken: `order_payout`
    asks the provider before cancelling it)."""
    now = int(time.time())
    with context.sessions.begin() as session:
        rows = session.execute(select(PayoutOrder.loan_id, PayoutOrder.state, Loan.status, PayoutOrder.provider,
                                      PayoutOrder.rail_reference)
                               .join(Loan, Loan.id == PayoutOrder.loan_id)
                               .where(PayoutOrder.state.in_((ORDERED, SENT)))).all()
        for loan_id, state, status, provider, rail_reference in rows:
            if status in DISBURSED:
                values = {"state": SETTLED, "settled_at": now}
                if rail_reference is None:  # its answer was lost (a timeout, a crash): the confirmation names it
                    values["rail_reference"] = _disbursed_by(session, loan_id, provider)
            elif status in CLOSED_UNPAID and state == ORDERED:  # never handed over (a `sent` one is asked first)
                values = {"state": CANCELLED, "cancelled_at": now}
            else:
                continue
            session.execute(update(PayoutOrder).where(PayoutOrder.loan_id == loan_id,
                                                      PayoutOrder.state == state).values(**values, updated_at=now))
    _fail_returned(context, now)


def _fail_returned(context, now: int) -> None:
    """Orders whose payout the chain shows returned (a `payout_reversal` of it) become `failed`, with the reason.

    The reversal names the payout it returns; an order that never learnt its rail reference (its answer was
    lost, the webhook came) is matched by its loan being Approved again after it settled.
    """
    with context.sessions.begin() as session:
        rows = session.execute(
            select(PayoutOrder.loan_id, PayoutOrder.state, PayoutOrder.provider, PayoutOrder.rail_reference,
                   Loan.status, Payment.payment_ref, Payment.reverses, Payment.paid_at)
            .join(Loan, Loan.id == PayoutOrder.loan_id)
            .join(Payment, (Payment.loan_id == PayoutOrder.loan_id) & (Payment.kind == "payout_reversal"))
            .where(PayoutOrder.state.in_((SENT, SETTLED)))).all()
        for loan_id, state, provider, rail_reference, status, reversal_ref, reverses, returned_at in rows:
            if rail_reference is not None:
                if to_0x_hex(payment_ref(provider, rail_reference)) != reverses:
                    continue  # the return of an earlier attempt's payout
            elif not (state == SETTLED and status == "Approved"):
                continue
            reason = (f"the payout {rail_reference or ''} was returned by the receiving bank "
                      f"(reversal {reversal_ref}, at {returned_at}); the loan is Approved again")
            session.execute(update(PayoutOrder).where(PayoutOrder.loan_id == loan_id, PayoutOrder.state == state)
                            .values(state=FAILED, failed_at=now, last_error=reason, updated_at=now))
            log.warning("payout order of loan %d failed: %s", loan_id, reason)


def _disbursed_by(session, loan_id: int, provider: str) -> str | None:
    """The rail reference of the provider's payout the chain confirmed for the loan, if the oracle received it."""
    paid = session.scalars(select(Payment).where(Payment.loan_id == loan_id, Payment.kind == "disbursement")
                           .order_by(Payment.block_number.desc())).unique().first()
    return paid.rail_reference if paid is not None and paid.provider == provider else None


def _update(context, loan_id: int, **values) -> Order:
    with context.sessions.begin() as session:
        session.execute(update(PayoutOrder).where(PayoutOrder.loan_id == loan_id)
                        .values(**values, updated_at=int(time.time())))
    return find_raw(context, loan_id)


def find_raw(context, loan_id: int) -> Order:
    with context.sessions() as session:
        return Order.of(session.scalars(select(PayoutOrder).where(PayoutOrder.loan_id == loan_id)).one())


def _provider(context, order: Order) -> PaymentProvider:
    """The provider the order was recorded with (a later change of settings does not re-route it)."""
    try:
        return provider_named(context, order.provider)
    except ProviderMissing as exc:
        raise PayoutUnavailable(order.loan_id, order.state, str(exc)) from None

"""Credit refunds: an Overpaid loan's credit balance paid back over the rail, exactly once.

An overpayment closes its loan on-chain with the rest held as the borrower's credit (LoanBook:
`OverpaymentHeld`). Paying it back is an order to the provider that delivered the overpayment
(api.services.provider_orders: recorded first, with a key naming that payment, looked up before any
re-send). The provider's `refund.succeeded` webhook (purpose `credit`) is what the oracle confirms on-chain
(`confirmCreditRefund`), which closes the credit and the loan (Repaid); the order is `settled` once the read
model shows that refund. The amount is the credit the book holds when the order is recorded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from api.errors import ApiError
from api.services.provider_orders import (
    Attempt,
    Detached,
    ProviderMissing,
    call,
    look_up,
    provider_named,
)
from ledger.book import LoanStatus, read_loan, read_progress
from ledger.encoding import to_0x_hex
from ledger.store.models.chain import Loan, Payment
from ledger.store.models.credit_refunds import CreditRefundOrder
from oracle.payments.inbound import payment_ref
from oracle.payments.provider import PaymentProvider, RefundOrder

log = logging.getLogger(__name__)

ORDERED, SENT, SETTLED, FAILED = "ordered", "sent", "settled", "failed"
POLICY = "policy"  # the actor the automatic policy's orders are logged under
FINAL = frozenset({SETTLED, FAILED})


class RefundUnavailable(ApiError):
    """The provider did not answer: the order stays as it is (`sent` if it may have been taken)."""

    def __init__(self, loan_id: int, state: str, error: str):
        super().__init__(503, "rail_unavailable",
                         f"the payment provider did not answer for the credit refund of loan {loan_id} (order "
                         f"{state}): {error[:160]}; retry: the refund is recorded, and the provider is asked what "
                         "became of it before anything is re-sent")


@dataclass(frozen=True)
class CreditRefund(Detached):
    """A credit refund order as read (detached from its session)."""

    id: int
    loan_id: int
    payment_ref: str
    provider: str
    payment_reference: str
    idempotency_key: str
    amount: int
    currency: str
    state: str
    refund_reference: str | None
    attempts: int
    last_error: str | None
    ordered_by: str
    ordered_at: int
    sent_at: int | None
    settled_at: int | None
    failed_at: int | None


def refund_key(provider: str, payment_reference: str) -> str:
    """The provider-side idempotency key: one credit refund per overpaying payment."""
    return f"credit-refund:{provider}:{payment_reference}"


def order_credit_refund(context, loan_id: int, actor: str, request_id: str) -> CreditRefund:
    """The loan's credit refund, recorded and sent if it was not yet; raises `RefundUnavailable` (503)."""
    order = _open_order(context, loan_id) or _record(context, loan_id, actor, request_id)
    if order.state in FINAL or order.refund_reference is not None:
        return order
    try:
        provider = provider_named(context, order.provider)
    except ProviderMissing as exc:
        raise RefundUnavailable(loan_id, order.state, str(exc)) from None
    if order.state == SENT:
        found = look_up(provider, order.idempotency_key)
        if found.unanswered:
            _update(context, order.id, last_error=found.unanswered)
            raise RefundUnavailable(loan_id, order.state, found.unanswered)
        if found.reference is not None:
            return _taken(context, order, found.reference, actor, request_id)
    return _send(context, provider, order, actor, request_id)


def refund_all_credit(context, request_id: str) -> list[CreditRefund]:
    """The automatic policy's round: every Overpaid loan the read model shows without an open refund order
    gets one (as the operator's action would); a loan the provider cannot take now is tried next round."""
    with context.sessions() as session:
        overpaid = list(session.scalars(select(Loan.id).where(Loan.status == LoanStatus.OVERPAID.solidity_name,
                                                              Loan.credit_balance > 0)))
    ordered = []
    for loan_id in overpaid:
        if _open_order(context, loan_id) is not None:
            continue
        try:
            ordered.append(order_credit_refund(context, loan_id, POLICY, request_id))
        except ApiError as exc:  # not indexed yet, the rail away, the credit already gone: next round
            log.warning("automatic credit refund of loan %d not ordered: %s", loan_id, exc.message)
    return ordered


def list_orders(context, *, loan_id: int | None = None, state: str | None = None,
                limit: int = 100) -> list[CreditRefund]:
    """Orders newest first, brought up to date with the read model first."""
    _catch_up(context)
    query = select(CreditRefundOrder).order_by(CreditRefundOrder.id.desc()).limit(limit)
    if loan_id is not None:
        query = query.where(CreditRefundOrder.loan_id == loan_id)
    if state is not None:
        query = query.where(CreditRefundOrder.state == state)
    with context.sessions() as session:
        return [CreditRefund.of(row) for row in session.scalars(query)]


# ---------------------------------------------------------------------------- steps


def _open_order(context, loan_id: int) -> CreditRefund | None:
    """The loan's latest order unless it failed (a failed refund leaves the credit owed: order it again)."""
    orders = list_orders(context, loan_id=loan_id, limit=1)
    return orders[0] if orders and orders[0].state != FAILED else None


def _record(context, loan_id: int, actor: str, request_id: str) -> CreditRefund:
    """Writes the order for the credit the book holds now; a concurrent caller's row wins a race."""
    book = context.bindings.book
    loan = read_loan(book, loan_id)  # an unknown id: the API's 404 loan_book_unknown_loan
    credit = read_progress(book, loan_id).credit_balance
    if loan.status is not LoanStatus.OVERPAID or credit == 0:
        raise ApiError(409, "no_credit", f"loan {loan_id} is {loan.status.solidity_name} and holds no credit to "
                                         "refund")
    overpayment = _overpayment(context, loan_id)
    if overpayment is None:
        raise ApiError(409, "not_indexed_yet", f"the overpayment of loan {loan_id} is not in the read model yet, "
                                               "or was not confirmed by this oracle: retry in a moment")
    provider, reference, ref = overpayment
    now = int(time.time())
    try:
        with context.sessions.begin() as session:
            # A refund the provider refused leaves the credit owed: a new order, under a new key.
            failed = session.scalar(select(func.count()).select_from(CreditRefundOrder)
                                    .where(CreditRefundOrder.payment_ref == ref, CreditRefundOrder.state == FAILED))
            key = refund_key(provider, reference) + (f":retry-{failed}" if failed else "")
            session.add(CreditRefundOrder(loan_id=loan_id, payment_ref=ref, provider=provider, payment_reference=reference,
                                          idempotency_key=key, amount=credit, currency=loan.currency, state=ORDERED,
                                          attempts=0, ordered_by=actor, ordered_at=now, updated_at=now))
    except IntegrityError:
        order = _open_order(context, loan_id)  # another request recorded it first: answer that order
        if order is None:
            raise
        return order
    context.action_log.append(actor, "loan.credit_refund_ordered", request_id,
                              {"loan_id": loan_id, "amount": credit, "currency": loan.currency, "provider": provider,
                               "payment_reference": reference})
    return _open_order(context, loan_id)


def _overpayment(context, loan_id: int) -> tuple[str, str, str] | None:
    """(provider, rail reference, on-chain ref) of the repayment that left the loan's credit."""
    with context.sessions() as session:
        payment = session.scalars(select(Payment).where(Payment.loan_id == loan_id, Payment.kind == "repayment",
                                                        Payment.credit > 0)
                                  .order_by(Payment.block_number.desc(), Payment.log_index.desc())).first()
        if payment is None or payment.provider is None:
            return None
        return payment.provider, payment.rail_reference, payment.payment_ref


def _send(context, provider: PaymentProvider, order: CreditRefund, actor: str, request_id: str) -> CreditRefund:
    """Marks the order `sent` (persisted first: from here on its outcome is the provider's) and sends it."""
    _update(context, order.id, state=SENT, sent_at=int(time.time()), attempts=order.attempts + 1)
    request = RefundOrder(loan_id=order.loan_id, rail_reference=order.payment_reference, amount=order.amount,
                          currency=order.currency, purpose="credit")
    attempt: Attempt = call(lambda: provider.order_refund(request, order.idempotency_key))
    if attempt.refused:
        log.warning("credit refund of loan %d refused by %s: %s", order.loan_id, provider.name, attempt.refused)
        context.action_log.append(actor, "loan.credit_refund_failed", request_id,
                                  {"loan_id": order.loan_id, "error": attempt.refused[:200]})
        return _update(context, order.id, state=FAILED, failed_at=int(time.time()), last_error=attempt.refused)
    if attempt.unanswered:
        log.warning("credit refund of loan %d unanswered by %s: %s", order.loan_id, provider.name, attempt.unanswered)
        _update(context, order.id, last_error=attempt.unanswered)
        raise RefundUnavailable(order.loan_id, SENT, attempt.unanswered)
    return _taken(context, order, attempt.reference, actor, request_id)


def _taken(context, order: CreditRefund, reference: str, actor: str, request_id: str) -> CreditRefund:
    """The provider took the refund: its webhook brings it on-chain; the order settles when the index shows it."""
    updated = _update(context, order.id, refund_reference=reference, last_error=None)
    context.action_log.append(actor, "loan.credit_refund", request_id,
                              {"loan_id": order.loan_id, "provider": order.provider, "refund_reference": reference,
                               "amount": order.amount})
    return updated


def _catch_up(context) -> None:
    """Orders the provider took become `settled` once the read model shows their refund on the loan."""
    now = int(time.time())
    with context.sessions.begin() as session:
        open_orders = session.scalars(select(CreditRefundOrder).where(CreditRefundOrder.state == SENT,
                                                                      CreditRefundOrder.refund_reference.is_not(None)))
        for order in list(open_orders):
            ref = to_0x_hex(payment_ref(order.provider, order.refund_reference))
            if session.get(Payment, ref) is not None:
                order.state, order.settled_at, order.updated_at = SETTLED, now, now


def _update(context, order_id: int, **values) -> CreditRefund:
    with context.sessions.begin() as session:
        session.execute(update(CreditRefundOrder).where(CreditRefundOrder.id == order_id)
                        .values(**values, updated_at=int(time.time())))
    with context.sessions() as session:
        return CreditRefund.of(session.get(CreditRefundOrder, order_id))

"""The collection run (issue 17 "automatic debit"): on a loan's due date, debit the amount due from the card the
borrower's mandate names, through the payment rail.

Each round (a periodic task next to the risk monitor), for every mandate in force (api/services/mandates.py keeps
them) whose loan is active and has an installment that fell due within the last day (`WINDOW`; the index's
schedule), it asks the loan book for `amountDue(loan, now)` (never recomputing the schedule here), capped by the
mandate's ceiling, and:

1. records a collection intent with the key `debit-{mandate}-{due_at}-{attempt}` and commits it, BEFORE any call;
2. asks the rail for that key's order (`GET /v1/orders/{key}`): a call cut off last time (timeout, a process killed
   between recording and calling) may have been taken, so it is never simply sent again blind;
3. only if the rail never took it, orders the debit (`POST /v1/collections`, `Idempotency-Key: key`).

So a run that repeats, overlaps or dies anywhere debits once per (mandate, installment, attempt). The money itself
is credited as any payment: the rail's signed `payment.succeeded` webhook goes through the oracle's intake and
outbox (oracle/intake.py), which credit it on-chain by its reference once.

A decline arrives in the order's answer and as the rail's signed `collection.failed` webhook (the intake verifies it
and calls `record_decline`: the intent is marked declined, the next round applies the policy), whichever comes
first; the policy is applied once. A debit the bank declines for insufficient funds is retried by `RETRY_AFTER`: one
day after the first decline, three days after the second; the third decline sets the installment aside (logged at
ERROR and counted in the oracle's /healthz attention for an operator; the borrower repays as before, over the rail).
The borrower is sent one `debit_scheduled` notice per installment up to three days before its due date (the amount
the book says will be due then) and one `debit_failed` notice at its first decline (through the SMS notice queue, as
the risk monitor's notices). A revoked or expired mandate is not debited, nor retried. A loan with nothing due (the
borrower paid already) is not debited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from web3.contract import Contract

from ledger.book import LoanStatus
from ledger.store.models.chain import Loan, ScheduleRow
from ledger.store.models.mandates import CollectionIntent, DebitMandate
from ledger.store.models.notices import PENDING, NoticeDelivery
from ledger.store.models.notifications import Notification
from ledger.store.models.outbox import OutboxItem
from oracle.notify import Notice, SmsQueue
from oracle.payments.inbound import DeclinedDebit

log = logging.getLogger(__name__)

DAY = 86_400
# The documented retry policy after a declined debit: the n-th decline is retried RETRY_AFTER[n-1] seconds later;
# a decline past the last one sets the installment aside.
RETRY_AFTER = (1 * DAY, 3 * DAY)
WINDOW = DAY  # an installment is debited in the day after it falls due (a later run finds it past the window)
ANNOUNCE_AHEAD = 3 * DAY  # a `debit_scheduled` notice goes out this long before a mandated installment's due date

PENDING_INTENT, SENT, DECLINED, FAILED, SET_ASIDE = "pending", "sent", "declined", "failed", "set_aside"
COLLECTED = "collected"  # the outbox credited the rail's payment on-chain
OPEN = (PENDING_INTENT, SENT, DECLINED)  # a decline may still be applied to these


def counts(sessions: sessionmaker) -> dict[str, int]:
    """Collection intents by status (the oracle's /healthz and /metrics: `collections_set_aside` needs a person)."""
    with sessions() as session:
        return dict(session.execute(select(CollectionIntent.status, func.count())
                                    .group_by(CollectionIntent.status)).all())


def record_decline(sessions: sessionmaker, declined: DeclinedDebit, now: int) -> str:
    """The rail's signed `collection.failed` webhook (the intake verified it): the intent its order key names is
    marked declined; the next round applies the retry policy and the notice. "recorded", or "duplicate" (told
    before, or the run learnt it from the order's answer), or "unknown_order" (no intent has that key: kept in the
    log only, answered 200 so the rail stops)."""
    with sessions.begin() as session:
        row = session.scalar(select(CollectionIntent).where(CollectionIntent.key == declined.order_key)
                             .with_for_update())
        if row is None:
            log.error("%s: no collection intent has this order key", declined)
            return "unknown_order"
        if row.status not in (PENDING_INTENT, SENT):
            return "duplicate"
        row.status, row.reason, row.reference, row.updated_at = DECLINED, declined.reason, declined.reference, now
    return "recorded"


def intent_key(mandate_id: int, due_at: int, attempt: int) -> str:
    return f"debit-{mandate_id}-{due_at}-{attempt}"


@dataclass
class CollectionReport:
    as_of: int
    announced: list[tuple[int, int]] = field(default_factory=list)  # (loan, installment) debit_scheduled notices
    ordered: list[str] = field(default_factory=list)    # keys the rail took (now or before)
    declined: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # left pending: the next round asks the rail again

    def __bool__(self) -> bool:
        return bool(self.announced or self.ordered or self.declined or self.set_aside or self.unreachable)


class CollectionRun:
    """`rail`: an httpx client whose base URL is the rail's. `before_call(key)` (tests) runs between recording an
    intent and calling the rail: raising there is a process killed at the worst moment."""

    def __init__(self, sessions: sessionmaker, book: Contract, rail: httpx.Client, *,
                 clock: Callable[[], int] | None = None, before_call: Callable[[str], None] | None = None):
        self.sessions, self.book, self.rail = sessions, book, rail
        self.clock = clock or (lambda: book.w3.eth.get_block("latest")["timestamp"])
        self.before_call = before_call
        self.queue = SmsQueue(book.address)

    # ------------------------------------------------------------------ the round

    def run_once(self, now: int | None = None) -> CollectionReport:
        now = self.clock() if now is None else now
        report = CollectionReport(as_of=now)
        self._credited(now)
        self._announce(now, report)
        for mandate_id, due_at in self._due(now):
            self._collect(mandate_id, due_at, now, report)
        return report

    def _announce(self, now: int, report: CollectionReport) -> None:
        """One `debit_scheduled` notice per mandated installment due within ANNOUNCE_AHEAD: the amount the loan book
        says will be due on that date, capped by the mandate."""
        with self.sessions() as session:
            rows = session.execute(
                select(DebitMandate.loan_id, DebitMandate.max_amount, Loan.borrower, Loan.currency, ScheduleRow.number,
                       ScheduleRow.due_at)
                .join(Loan, Loan.id == DebitMandate.loan_id).join(ScheduleRow, ScheduleRow.loan_id == Loan.id)
                .where(DebitMandate.revoked_at.is_(None), DebitMandate.valid_until >= now,
                       Loan.status == LoanStatus.ACTIVE.solidity_name, ScheduleRow.due_at > now,
                       ScheduleRow.due_at <= now + ANNOUNCE_AHEAD)).all()
            told = set(session.execute(select(Notification.loan_id, Notification.installment).where(
                Notification.kind == "debit_scheduled", Notification.loan_id.in_({r[0] for r in rows}))).all())
        for loan_id, ceiling, borrower, currency, number, due_at in rows:
            if (loan_id, number) in told:
                continue
            amount = min(sum(self.book.functions.amountDue(loan_id, due_at).call()[:4]), ceiling)
            if amount > 0 and self._record_notice(Notice("debit_scheduled", loan_id, number, borrower, due_at, amount,
                                                         currency, {}), now):
                report.announced.append((loan_id, number))

    def _credited(self, now: int) -> None:
        """Sent intents whose payment the outbox credited on-chain (its rail reference) become collected."""
        with self.sessions.begin() as session:
            credited = select(OutboxItem.reference).where(OutboxItem.kind == "repayment", OutboxItem.status == "done",
                                                          OutboxItem.outcome.in_(("credited", "already_credited")))
            session.execute(update(CollectionIntent).where(CollectionIntent.status == SENT,
                                                           CollectionIntent.reference.in_(credited))
                            .values(status=COLLECTED, updated_at=now))

    def _due(self, now: int) -> list[tuple[int, int]]:
        """(mandate, installment due_at) pairs to act on: installments that fell due in the window, and earlier
        ones with an intent still pending or a retry due; each only while its mandate is in force."""
        active_status = LoanStatus.ACTIVE.solidity_name
        with self.sessions() as session:
            rows = session.execute(
                select(DebitMandate.id, ScheduleRow.due_at)
                .join(Loan, Loan.id == DebitMandate.loan_id).join(ScheduleRow, ScheduleRow.loan_id == Loan.id)
                .where(DebitMandate.revoked_at.is_(None), DebitMandate.valid_until >= now,
                       Loan.status == active_status, ScheduleRow.due_at <= now,
                       ScheduleRow.due_at > now - WINDOW)).all()
            again = session.execute(
                select(CollectionIntent.mandate_id, CollectionIntent.due_at)
                .join(DebitMandate, DebitMandate.id == CollectionIntent.mandate_id)
                .where(DebitMandate.revoked_at.is_(None), DebitMandate.valid_until >= now,
                       CollectionIntent.status.in_((PENDING_INTENT, DECLINED))
                       | ((CollectionIntent.status == FAILED) & (CollectionIntent.retry_at <= now)))).all()
        return sorted({(m, d) for m, d in [*rows, *again]})

    def _collect(self, mandate_id: int, due_at: int, now: int, report: CollectionReport) -> None:
        with self.sessions() as session:
            told = session.scalar(select(CollectionIntent).where(
                CollectionIntent.mandate_id == mandate_id, CollectionIntent.due_at == due_at,
                CollectionIntent.status == DECLINED))
            if told is not None:
                session.expunge(told)
        if told is not None:  # the rail's decline webhook came first: the policy is applied here
            self._declined(told, told.reason or "declined", now, report)
            return
        intent = self._record(mandate_id, due_at, now)
        if intent is None:
            return
        key = intent.key
        if self.before_call is not None:
            self.before_call(key)
        try:
            answer = self._order(intent)
        except httpx.HTTPError as exc:  # maybe taken, maybe not: the next round asks the rail by key
            self._update(key, now, last_error=f"{type(exc).__name__}: {exc}"[:500])
            report.unreachable.append(key)
            log.warning("collection %s: the rail did not answer (%s); asked again next round", key, exc)
            return
        if answer.get("status") == "failed":
            self._declined(intent, answer.get("reason") or "declined", now, report)
        else:
            self._settle(key, now, status=SENT, reference=answer["reference"], last_error=None)
            report.ordered.append(key)

    def _record(self, mandate_id: int, due_at: int, now: int) -> CollectionIntent | None:
        """The intent to send now (recorded and committed before any call), or None (nothing to do)."""
        with self.sessions.begin() as session:
            latest = session.scalar(select(CollectionIntent).where(
                CollectionIntent.mandate_id == mandate_id, CollectionIntent.due_at == due_at)
                .order_by(CollectionIntent.attempt.desc()).limit(1))
            if latest is not None and latest.status == PENDING_INTENT:
                session.expunge(latest)
                return latest  # recorded before, maybe sent: the rail is asked by its key first
            if latest is not None and not (latest.status == FAILED and latest.retry_at is not None
                                           and latest.retry_at <= now):
                return None  # taken, set aside, or its retry not due yet
            mandate = session.get(DebitMandate, mandate_id)
            loan = session.get(Loan, mandate.loan_id)
            currency = loan.currency
        # What is owed is the loan book's (fees, penalty, interest carried): never recomputed here.
        principal, interest, late_fee, penalty, _ = self.book.functions.amountDue(mandate.loan_id, now).call()
        amount = min(principal + interest + late_fee + penalty, mandate.max_amount)
        if amount <= 0:
            return None  # paid already
        attempt = 1 if latest is None else latest.attempt + 1
        intent = CollectionIntent(key=intent_key(mandate_id, due_at, attempt), mandate_id=mandate_id,
                                  loan_id=mandate.loan_id, due_at=due_at, attempt=attempt, amount=amount,
                                  currency=currency, status=PENDING_INTENT, reference=None, reason=None,
                                  retry_at=None, created_at=now, updated_at=now, last_error=None)
        try:
            with self.sessions.begin() as session:
                session.add(intent)
                session.flush()
                session.expunge(intent)
        except IntegrityError:  # another round recorded it first: it sends it
            return None
        return intent

    def _order(self, intent: CollectionIntent) -> dict:
        """The rail's answer for this key: the order it took before, else the one it takes now."""
        found = self.rail.get(f"/v1/orders/{intent.key}")
        if found.status_code == 200:
            return found.json()
        if found.status_code != 404:
            found.raise_for_status()
        with self.sessions() as session:
            card = session.get(DebitMandate, intent.mandate_id).card
        sent = self.rail.post("/v1/collections", headers={"Idempotency-Key": intent.key},
                              json={"loan_id": intent.loan_id, "amount": intent.amount, "currency": intent.currency,
                                    "card": card})
        sent.raise_for_status()
        return sent.json()

    def _declined(self, intent: CollectionIntent, reason: str, now: int, report: CollectionReport) -> None:
        """The retry policy for a declined attempt (once: an intent already failed or set aside is left alone)."""
        if intent.attempt <= len(RETRY_AFTER):
            retry_at = now + RETRY_AFTER[intent.attempt - 1]
            if not self._settle(intent.key, now, status=FAILED, reason=reason, retry_at=retry_at, last_error=None):
                return
            report.declined.append(intent.key)
            log.warning("collection %s declined (%s): retried at %d", intent.key, reason, retry_at)
        else:
            if not self._settle(intent.key, now, status=SET_ASIDE, reason=reason, retry_at=None, last_error=None):
                return
            report.set_aside.append(intent.key)
            log.error("collection of loan %d installment due %d declined %d times (%s): set aside; the borrower "
                      "repays over the rail", intent.loan_id, intent.due_at, intent.attempt, reason)
        if intent.attempt == 1:
            self._notify(intent, now)

    def _notify(self, intent: CollectionIntent, now: int) -> None:
        """One `debit_failed` notice per installment, queued for the API's notice sender (oracle/notify.py)."""
        with self.sessions() as session:
            loan = session.get(Loan, intent.loan_id)
            number = session.scalar(select(ScheduleRow.number).where(ScheduleRow.loan_id == intent.loan_id,
                                                                     ScheduleRow.due_at == intent.due_at)) or 0
            borrower = loan.borrower
        self._record_notice(Notice("debit_failed", intent.loan_id, number, borrower, intent.due_at, intent.amount,
                                   intent.currency, {"retry_at": now + RETRY_AFTER[0]}), now)

    def _record_notice(self, notice: Notice, now: int) -> bool:
        """Queues the notice once (its loan, installment and kind are unique); False if it was queued before."""
        try:
            with self.sessions.begin() as session:
                row = Notification(loan_id=notice.loan_id, installment=notice.installment, borrower=notice.borrower,
                                   kind=notice.kind, channel=self.queue.channel, status="queued",
                                   due_at=notice.due_at, amount_due=notice.amount_due, created_at=now, detail=None)
                session.add(row)
                session.flush()
                session.add(NoticeDelivery(
                    notification_id=row.id, borrower=notice.borrower,
                    idempotency_key=self.queue.idempotency_key(notice), facts=self.queue.facts(notice),
                    status=PENDING, attempts=0, next_attempt_at=0, created_at=now, updated_at=now))
        except IntegrityError:
            return False  # notified already
        return True

    def _settle(self, key: str, now: int, **values) -> bool:
        """Sets a declined outcome if the intent is still open; False if it was settled before."""
        with self.sessions.begin() as session:
            done = session.execute(update(CollectionIntent).where(CollectionIntent.key == key,
                                                                  CollectionIntent.status.in_(OPEN))
                                   .values(updated_at=now, **values))
            return done.rowcount == 1

    def _update(self, key: str, now: int, **values) -> None:
        with self.sessions.begin() as session:
            row = session.scalar(select(CollectionIntent).where(CollectionIntent.key == key))
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = now

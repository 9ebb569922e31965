"""The risk monitor: reminders before due dates, overdue warnings when grace ends, defaults declared.

It reads the indexed read model (which loans are active, their schedules) and asks the loan book for
what is owed (`amountDue`: the late fee and penalty maths live in the contract). Time is the chain's:
the latest block's timestamp, so a test or the demo that moves chain time moves the monitor with it.

A notice is recorded before it is sent: the row's unique (loan, installment, kind) key is the claim, so
two monitors, or one run twice, never nag a borrower twice. A failed delivery stays `failed` and is
retried on the next round; a row left `sending` by a crashed monitor is retried after a while.

With the `SmsQueue` sender (the borrower's phone) the monitor sends nothing itself: it records the notice `queued`
with a `NoticeDelivery` in the same transaction, and the API's notice sender, which holds the PII vault, renders
and sends it (oracle/notify.py says why); that sender retries and sets aside, so such rows are not retried here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload, sessionmaker
from web3.contract import Contract

from ledger.book import DAY, RUNNING_NAMES, LoanStatus, read_amount_due
from ledger.chain import ChainClient
from ledger.errors import ContractRevert
from ledger.store.models.chain import Loan
from ledger.store.models.notices import PENDING, NoticeDelivery
from ledger.store.models.notifications import Notification
from oracle.notify import DeliveryFailed, Notice, NotificationSender, SmsQueue

log = logging.getLogger(__name__)

STALE_SENDING = 300  # seconds after which a `sending` row is taken to belong to a dead monitor


@dataclass
class RiskReport:
    as_of: int
    reminders: int = 0
    overdue_warnings: int = 0
    defaults_declared: list[int] = field(default_factory=list)
    default_notices: int = 0
    failed: int = 0


class RiskMonitor:
    def __init__(self, sessions: sessionmaker, book: Contract, sender: NotificationSender, *,
                 client: ChainClient | None = None, reminder_days: int = 3,
                 on_default: Callable[[int, str], None] | None = None):
        """`client` (the oracle's or an operator's signer) declares defaults; without it they are only reported.

        `on_default(loan_id, borrower)` is called after a default is declared (e.g. to freeze the limit).
        """
        if reminder_days < 0:
            raise ValueError("reminder_days cannot be negative")
        self.sessions, self.book, self.sender, self.client = sessions, book, sender, client
        self.reminder_days, self.on_default = reminder_days, on_default

    def chain_time(self) -> int:
        return self.book.w3.eth.get_block("latest")["timestamp"]

    def run_once(self) -> RiskReport:
        now = self.chain_time()
        report = RiskReport(as_of=now)
        self._retry_failed(now, report)
        with self.sessions() as session:
            loans = list(session.scalars(select(Loan).where(Loan.status.in_(RUNNING_NAMES))
                                         .options(selectinload(Loan.schedule)).order_by(Loan.id)))
            # What was sent (or tried) already: such a notice needs no chain read and no insert attempt.
            recorded = {tuple(key) for key in session.execute(
                select(Notification.loan_id, Notification.installment, Notification.kind))}
        for loan in loans:
            try:
                self._check(loan, now, report, recorded)
            except ContractRevert as exc:  # the chain moved on since the index (repaid meanwhile): next round
                log.info("loan %d: %s; skipped this round", loan.id, exc)
        return report

    # ------------------------------------------------------------------ one loan

    def _check(self, loan: Loan, now: int, report: RiskReport, recorded: set[tuple[int, int, str]]) -> None:
        if loan.status == LoanStatus.DEFAULTED.solidity_name:
            if (loan.id, 0, "default_notice") not in recorded:  # declared by someone else: tell what is owed
                owed = read_amount_due(self.book, loan.id, now).total
                self._notify(Notice("default_notice", loan.id, 0, loan.borrower, loan.next_due_at or 0, owed,
                                    loan.currency, {}), now, report)
            return
        schedule = sorted(loan.schedule, key=lambda row: row.number)
        number = loan.paid_installments + 1
        if number > len(schedule):
            return
        row = schedule[number - 1]  # the oldest installment not fully paid: its due date is the loan book's
        if row.due_at - self.reminder_days * DAY <= now < row.due_at:
            if (loan.id, number, "reminder") not in recorded:
                self._notify(Notice("reminder", loan.id, number, loan.borrower, row.due_at,
                                    row.principal + row.interest, loan.currency,
                                    {"principal": row.principal, "interest": row.interest}), now, report)
            return
        if now <= row.due_at + loan.grace_period:
            return
        if now > row.due_at + loan.default_after and self.client is not None:
            if (loan.id, 0, "default_notice") in recorded:
                return  # declared already; the index has not caught up yet
            self._declare_default(loan, report)
            owed = read_amount_due(self.book, loan.id, now).total
            self._notify(Notice("default_notice", loan.id, 0, loan.borrower, row.due_at, owed, loan.currency,
                                {"oldest_due_at": row.due_at}), now, report)
            return
        if (loan.id, number, "overdue_warning") in recorded:
            return
        due = read_amount_due(self.book, loan.id, now)
        self._notify(Notice("overdue_warning", loan.id, number, loan.borrower, row.due_at, due.total, loan.currency,
                            {"principal": due.principal, "interest": due.interest, "late_fee": due.late_fee,
                             "penalty": due.penalty, "days_past_due": (now - row.due_at) // DAY}), now, report)

    def _declare_default(self, loan: Loan, report: RiskReport) -> None:
        try:
            self.client.transact(self.book.functions.declareDefault(loan.id))
        except ContractRevert as exc:
            if exc.name != "LoanBookInvalidStatus":  # someone else declared it first: fine
                raise
        else:
            report.defaults_declared.append(loan.id)
            log.warning("loan %d declared in default", loan.id)
            if self.on_default is not None:
                self.on_default(loan.id, loan.borrower)

    # ------------------------------------------------------------------ notices

    def _notify(self, notice: Notice, now: int, report: RiskReport) -> None:
        queue = self.sender if isinstance(self.sender, SmsQueue) else None
        try:
            with self.sessions.begin() as session:
                row = Notification(loan_id=notice.loan_id, installment=notice.installment, borrower=notice.borrower,
                                   kind=notice.kind, channel=self.sender.channel,
                                   status="queued" if queue else "sending",
                                   due_at=notice.due_at, amount_due=notice.amount_due, created_at=now, detail=None)
                session.add(row)
                session.flush()
                row_id = row.id
                if queue is not None:  # the API's notice sender takes it from here (wall-clock back-off: its own)
                    session.add(NoticeDelivery(
                        notification_id=row_id, borrower=notice.borrower, idempotency_key=queue.idempotency_key(notice),
                        facts=queue.facts(notice), status=PENDING, attempts=0, next_attempt_at=0, created_at=now,
                        updated_at=now))
        except IntegrityError:
            return  # sent (or being sent) already
        if queue is not None:
            self._count(notice, report)
            return
        self._deliver(row_id, notice, report)

    @staticmethod
    def _count(notice: Notice, report: RiskReport) -> None:
        attribute = {"reminder": "reminders", "overdue_warning": "overdue_warnings",
                     "default_notice": "default_notices"}[notice.kind]
        setattr(report, attribute, getattr(report, attribute) + 1)

    def _deliver(self, row_id: int, notice: Notice, report: RiskReport) -> None:
        try:
            receipt, status = self.sender.send(notice), "sent"
        except DeliveryFailed as exc:
            receipt, status = str(exc), "failed"
            report.failed += 1
            log.warning("notice %s for loan %d not delivered: %s", notice.kind, notice.loan_id, exc)
        with self.sessions.begin() as session:
            session.execute(update(Notification).where(Notification.id == row_id).values(
                status=status, channel=self.sender.channel, detail=receipt))
        if status == "sent":
            self._count(notice, report)

    def _retry_failed(self, now: int, report: RiskReport) -> None:
        with self.sessions() as session:
            rows = list(session.scalars(select(Notification).where(Notification.channel != SmsQueue.channel).where(
                (Notification.status == "failed")
                | ((Notification.status == "sending") & (Notification.created_at < now - STALE_SENDING)))))
            currencies = {loan.id: loan.currency for loan in session.scalars(
                select(Loan).where(Loan.id.in_({row.loan_id for row in rows})))}
        for row in rows:
            notice = Notice(row.kind, row.loan_id, row.installment, row.borrower, row.due_at, row.amount_due,
                            currencies.get(row.loan_id, ""), {"retry": True})
            self._deliver(row.id, notice, report)

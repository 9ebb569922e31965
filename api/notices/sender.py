"""The notice sender: the risk monitor's SMS notices rendered for their borrower and handed to the SMS provider.

It runs in the API process (a `Periodic` job, `notice_interval` seconds), because the API holds the PII vault the
phone numbers are sealed in and the oracle must not (oracle/notify.py). Each round takes the deliveries that are
due (pending and past their back-off, or claimed by a sender that died more than `stale_after` seconds ago), one at
a time: it claims the row (a compare-and-set on its status, so two API processes never send the same row at once),
reads the phone and the borrower's language, renders the catalogue's template and sends it with the row's
idempotency key. The answer is recorded on the delivery and on the notice (`sent`, `failed`, `set_aside`).

A failure is retried after `retry_after` seconds, doubling per attempt (at most an hour); after `max_attempts`, or
at once when the provider refuses the message itself or there is no phone on file, the row is set aside: logged at
ERROR and counted in the API's /healthz `attention` (`notices_set_aside`) for an operator. Every row stands alone, so
one bad number never holds up the others.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import sessionmaker

from api.notices.catalogue import language_or_default, render
from api.sms import SmsDelivery, SmsSender
from ledger.store.models.notices import (
    ACCEPTED,
    DEFAULT_TIME_ZONE,
    PENDING,
    SENDING,
    SET_ASIDE,
    BorrowerLanguage,
    NoticeDelivery,
)
from ledger.store.models.notifications import Notification
from ledger.vault import RecordNotFound, Vault

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600.0


@dataclass
class SendReport:
    accepted: int = 0
    failed: int = 0
    set_aside: int = 0

    def __bool__(self) -> bool:  # Periodic logs a round's result only when something happened
        return bool(self.accepted or self.failed or self.set_aside)


def set_aside_count(sessions: sessionmaker) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(NoticeDelivery)
                              .where(NoticeDelivery.status == SET_ASIDE)) or 0


class NoticeSender:
    def __init__(self, sessions: sessionmaker, vault: Vault, provider: SmsSender, *, max_attempts: int = 5,
                 retry_after: float = 60.0, stale_after: float = 300.0, batch: int = 100,
                 clock: Callable[[], float] = time.time, successor: Callable[[str], str] | None = None):
        self.sessions, self.vault, self.provider = sessions, vault, provider
        # A recovered wallet's successor (BorrowerRegistry.successorOf; the zero address if none): the loans of a lost
        # wallet stay its borrower's, whose record (the phone) moved to the new wallet (api.services.recovery).
        self.successor = successor
        self.max_attempts, self.retry_after, self.stale_after = max_attempts, retry_after, stale_after
        self.batch, self.clock = batch, clock
        self.set_aside: int | None = None  # set-aside deliveries as of the last round (None: no round yet)

    def run_once(self) -> SendReport:
        report = SendReport()
        now = int(self.clock())
        with self.sessions() as session:
            due = list(session.execute(
                select(NoticeDelivery.id, NoticeDelivery.status, NoticeDelivery.claimed_at).where(or_(
                    (NoticeDelivery.status == PENDING) & (NoticeDelivery.next_attempt_at <= now),
                    (NoticeDelivery.status == SENDING) & (NoticeDelivery.claimed_at < now - self.stale_after)))
                .order_by(NoticeDelivery.id).limit(self.batch)))
        for row_id, status, claimed_at in due:
            if self._claim(row_id, status, claimed_at, now):
                self._send(row_id, now, report)
        self.set_aside = set_aside_count(self.sessions)
        return report

    # ------------------------------------------------------------------ one delivery

    def _claim(self, row_id: int, status: str, claimed_at: int | None, now: int) -> bool:
        """Ours if no other sender took it since we read it (its status and claim unchanged)."""
        with self.sessions.begin() as session:
            claimed = session.execute(
                update(NoticeDelivery).where(NoticeDelivery.id == row_id, NoticeDelivery.status == status,
                                             NoticeDelivery.claimed_at.is_(None) if claimed_at is None
                                             else NoticeDelivery.claimed_at == claimed_at)
                .values(status=SENDING, claimed_at=now, attempts=NoticeDelivery.attempts + 1, updated_at=now))
            return claimed.rowcount == 1

    def _send(self, row_id: int, now: int, report: SendReport) -> None:
        with self.sessions() as session:
            row = session.get(NoticeDelivery, row_id)
            choice = session.get(BorrowerLanguage, row.borrower)
            facts, borrower, key, attempts = json.loads(row.facts), row.borrower, row.idempotency_key, row.attempts
        try:
            holder = self._holder(borrower)
        except Exception as exc:  # noqa: BLE001 - the node away: retried like a provider's failure
            self._record(row_id, SmsDelivery(False, reason=f"{type(exc).__name__}: {exc}"[:500]),
                         language_or_default(None), attempts, now, report)
            return
        if holder != borrower:
            with self.sessions() as session:
                choice = session.get(BorrowerLanguage, holder) or choice
        language = language_or_default(choice.language if choice else None)
        zone = choice.time_zone if choice else DEFAULT_TIME_ZONE
        try:
            phone = self.vault.get(holder).phone
        except RecordNotFound:
            delivery = SmsDelivery(False, reason="no phone on file: the borrower has no KYC record", permanent=True)
        else:
            text = render(facts["kind"], language, facts, zone)
            try:
                delivery = self.provider.send(phone, text, idempotency_key=key)
            except Exception as exc:  # noqa: BLE001 - a provider bug must not stop the round: recorded, retried
                delivery = SmsDelivery(False, reason=f"{type(exc).__name__}: {exc}"[:500])
        self._record(row_id, delivery, language, attempts, now, report)

    def _holder(self, borrower: str) -> str:
        """The wallet whose KYC record (the phone) is the borrower's now: `borrower`, or the wallet it was recovered
        to (and on, if that one was lost too)."""
        wallet = borrower
        for _ in range(16):  # a chain of recoveries is short; never loop on a registry that answers nonsense
            if self.vault.has_record(wallet) or self.successor is None:
                return wallet
            after = self.successor(wallet)
            if not after or int(after, 16) == 0:
                return borrower
            wallet = after
        return borrower

    def _record(self, row_id: int, delivery: SmsDelivery, language: str, attempts: int, now: int,
                report: SendReport) -> None:
        if delivery.accepted:
            values = {"status": ACCEPTED, "provider_reference": delivery.reference, "last_error": None}
            notice_status, detail = "sent", f"{self.provider.name}: {delivery.reference}"
            report.accepted += 1
        elif delivery.permanent or attempts >= self.max_attempts:
            values = {"status": SET_ASIDE, "last_error": delivery.reason}
            notice_status, detail = "set_aside", delivery.reason
            report.set_aside += 1
            log.error("notice delivery %d set aside after %d attempt(s): %s", row_id, attempts, delivery.reason)
        else:
            delay = min(self.retry_after * 2 ** (attempts - 1), MAX_BACKOFF)
            values = {"status": PENDING, "last_error": delivery.reason, "next_attempt_at": now + int(delay)}
            notice_status, detail = "failed", delivery.reason
            report.failed += 1
            log.warning("notice delivery %d failed (attempt %d), retrying in %.0fs: %s", row_id, attempts, delay,
                        delivery.reason)
        with self.sessions.begin() as session:
            row = session.get(NoticeDelivery, row_id)
            for name, value in {**values, "provider": self.provider.name, "language": language,
                                "updated_at": now}.items():
                setattr(row, name, value)
            session.execute(update(Notification).where(Notification.id == row.notification_id)
                            .values(status=notice_status, detail=detail))

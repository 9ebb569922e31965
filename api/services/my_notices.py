"""A borrower's own notices (reminders, overdue warnings, default notices, debit notices), newest first, each with
its text as the borrower reads it (api.notices.catalogue, in their language and time zone) and how its delivery
went. Only the caller's: the query is always by the signed-in address.

Paged by the notice id, descending, with api.paging's opaque cursors (a page boundary never repeats or drops a
notice while the risk monitor records new ones: they come before the first page, not inside a later one).
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.notices.catalogue import language_or_default, render
from api.paging import decode_cursor, next_cursor
from ledger.store.models.notices import DEFAULT_TIME_ZONE, BorrowerLanguage, NoticeDelivery
from ledger.store.models.notifications import Notification


def reading(session: Session, borrower: str, language: str | None) -> tuple[str, str]:
    """(language, time zone) the borrower reads notices in: `language` if asked, else their choice, else zh-CN."""
    choice = session.get(BorrowerLanguage, borrower)
    return (language_or_default(language or (choice.language if choice else None)),
            choice.time_zone if choice else DEFAULT_TIME_ZONE)


def _facts(notice: Notification, delivery: NoticeDelivery | None) -> dict:
    """What the text is filled from: the delivery's recorded facts (they carry the fee and penalty of a warning),
    else the notice's own row."""
    if delivery is not None:
        return json.loads(delivery.facts)
    return {"loan_id": notice.loan_id, "installment": notice.installment, "amount_due": notice.amount_due,
            "due_at": notice.due_at, "detail": {}}


def page(session: Session, borrower: str, language: str | None, cursor: str | None, limit: int) -> dict:
    """{language, notices, next_cursor}: up to `limit` of the borrower's notices older than the cursor's."""
    after = decode_cursor(cursor, (int,))
    language, zone = reading(session, borrower, language)
    query = select(Notification, NoticeDelivery).outerjoin(
        NoticeDelivery, NoticeDelivery.notification_id == Notification.id).where(Notification.borrower == borrower)
    if after is not None:
        query = query.where(Notification.id < after[0])
    rows = session.execute(query.order_by(Notification.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    notices = [{"id": n.id, "loan_id": n.loan_id, "installment": n.installment, "kind": n.kind, "due_at": n.due_at,
                "amount_due": n.amount_due, "created_at": n.created_at,
                "text": render(n.kind, language, _facts(n, d), zone),
                "delivery": d.status if d is not None else n.status} for n, d in rows]
    return {"language": language, "notices": notices,
            "next_cursor": next_cursor((rows[-1][0].id,)) if more else None}

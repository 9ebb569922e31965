"""Notices: the language a borrower reads them in (`/v1/me/language`), the borrower's own notices
(`/v1/me/notices`), and the operators' view of every notice the
risk monitor recorded with its delivery status (`/v1/operator/notices`). Thin routes over the store: the sending
itself is api/notices/sender.py's."""

from __future__ import annotations

import time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import Auditor, BorrowerOrApplicant, ContextDep
from api.errors import ApiError, error_responses
from api.services import my_notices
from api.schemas.notices import (
    DeliveryOut,
    LanguageIn,
    LanguageOut,
    MyNoticeList,
    NoticeList,
    NoticeOut,
)
from api.views import checksum_address
from ledger.store.models.notices import (
    DEFAULT_LANGUAGE,
    DEFAULT_TIME_ZONE,
    BorrowerLanguage,
    NoticeDelivery,
)
from ledger.store.models.notifications import Notification

router = APIRouter(tags=["notices"])
ERRORS = error_responses(401, 403, 422)


@router.get("/v1/me/language", response_model=LanguageOut, responses=ERRORS,
            summary="The language and time zone your notices are written in (default zh-CN, Asia/Shanghai)")
def my_language(context: ContextDep, who: BorrowerOrApplicant) -> LanguageOut:
    with context.sessions() as session:
        choice = session.get(BorrowerLanguage, who.address)
    if choice is None:
        return LanguageOut(language=DEFAULT_LANGUAGE, time_zone=DEFAULT_TIME_ZONE)
    return LanguageOut(language=choice.language, time_zone=choice.time_zone)


@router.put("/v1/me/language", response_model=LanguageOut, responses=ERRORS,
            summary="Choose the language (zh-CN or en) and time zone of your notices")
def set_my_language(body: LanguageIn, context: ContextDep, who: BorrowerOrApplicant) -> LanguageOut:
    if body.time_zone is not None:
        try:
            ZoneInfo(body.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ApiError(422, "unknown_time_zone", f"{body.time_zone!r} is not an IANA time zone") from None
    with context.sessions.begin() as session:
        choice = session.get(BorrowerLanguage, who.address)
        if choice is None:
            choice = BorrowerLanguage(borrower=who.address, time_zone=DEFAULT_TIME_ZONE)
            session.add(choice)
        choice.language, choice.updated_at = body.language, int(time.time())
        if body.time_zone is not None:
            choice.time_zone = body.time_zone
        return LanguageOut(language=choice.language, time_zone=choice.time_zone)


@router.get("/v1/me/notices", response_model=MyNoticeList, responses=ERRORS,
            summary="Your own notices (reminders, overdue warnings, default and debit notices), newest first, as "
                    "texted to you, with their delivery status",
            description="`language` (zh-CN or en) writes the texts in it; default: the language you chose. Paged: "
                        "pass `next_cursor` as `cursor` for older ones.")
def my_notice_list(context: ContextDep, who: BorrowerOrApplicant, language: Literal["zh-CN", "en"] | None = None,
                   cursor: Annotated[str | None, Query(max_length=200)] = None,
                   limit: int = Query(20, ge=1, le=100)) -> MyNoticeList:
    with context.sessions() as session:
        return MyNoticeList(**my_notices.page(session, who.address, language, cursor, limit))


@router.get("/v1/operator/notices", response_model=NoticeList, responses=ERRORS,
            summary="Notices the risk monitor recorded and their delivery, newest first (operators, admins, auditors)")
def list_notices(context: ContextDep, _: Auditor,
                 status: Literal["queued", "sending", "sent", "failed", "set_aside"] | None = None,
                 kind: Literal["reminder", "overdue_warning", "default_notice", "debit_scheduled", "debit_failed"]
                 | None = None,
                 loan_id: int | None = Query(None, ge=1, le=2**63 - 1),
                 borrower: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$")] = None,
                 limit: int = Query(100, ge=1, le=1000)) -> NoticeList:
    query = select(Notification, NoticeDelivery).outerjoin(
        NoticeDelivery, NoticeDelivery.notification_id == Notification.id)
    if status is not None:
        query = query.where(Notification.status == status)
    if kind is not None:
        query = query.where(Notification.kind == kind)
    if loan_id is not None:
        query = query.where(Notification.loan_id == loan_id)
    if borrower is not None:
        query = query.where(Notification.borrower == checksum_address(borrower))
    with context.sessions() as session:
        rows = session.execute(query.order_by(Notification.id.desc()).limit(limit)).all()
        return NoticeList(notices=[NoticeOut(
            id=n.id, loan_id=n.loan_id, installment=n.installment, kind=n.kind, borrower=n.borrower,
            channel=n.channel, status=n.status, due_at=n.due_at, amount_due=n.amount_due, created_at=n.created_at,
            detail=n.detail, delivery=DeliveryOut.model_validate(d) if d is not None else None) for n, d in rows])

"""The notice routes: a borrower chooses the language of their notices; operators list notices with their delivery
status; /healthz shows set-aside notices as needing attention."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from api.client import ApiError
from ledger.identity import KycRecord
from ledger.samples import sample_identity
from ledger.store.models.notices import BorrowerLanguage, NoticeDelivery
from ledger.store.models.notifications import Notification


def test_a_borrower_chooses_the_language_of_their_notices(client_for, keys, api):
    alice = client_for(keys["alice"])
    assert alice._request("GET", "/v1/me/language") == {"language": "zh-CN", "time_zone": "Asia/Shanghai"}
    assert alice._request("PUT", "/v1/me/language", json_body={"language": "en"}) == {
        "language": "en", "time_zone": "Asia/Shanghai"}
    assert alice._request("PUT", "/v1/me/language", json_body={"language": "en", "time_zone": "Europe/London"}) == {
        "language": "en", "time_zone": "Europe/London"}
    assert alice._request("GET", "/v1/me/language")["language"] == "en"
    with pytest.raises(ApiError) as refused:
        alice._request("PUT", "/v1/me/language", json_body={"language": "en", "time_zone": "Mars/Olympus"})
    assert (refused.value.status, refused.value.code) == (422, "unknown_time_zone")
    with pytest.raises(ApiError) as refused:
        alice._request("PUT", "/v1/me/language", json_body={"language": "fr"})
    assert refused.value.status == 422
    # bob's choice is his own
    assert client_for(keys["bob"])._request("GET", "/v1/me/language")["language"] == "zh-CN"
    with api[1].sessions() as session:
        assert session.get(BorrowerLanguage, keys["alice"].address).language == "en"


def _record(sessions, borrower: str, loan_id: int, kind: str, installment: int) -> None:
    """A notice as the risk monitor records it for the borrower's phone."""
    facts = {"kind": kind, "loan_id": loan_id, "installment": installment, "borrower": borrower,
             "due_at": 1_800_000_000, "amount_due": 40_000, "currency": "CNY", "detail": {}}
    with sessions.begin() as session:
        notice = Notification(loan_id=loan_id, installment=installment, borrower=borrower, kind=kind, channel="sms",
                              status="queued", due_at=1_800_000_000, amount_due=40_000, created_at=1_799_800_000)
        session.add(notice)
        session.flush()
        session.add(NoticeDelivery(notification_id=notice.id, borrower=borrower,
                                   idempotency_key=f"notice-test-{loan_id}-{kind}-{installment}",
                                   facts=json.dumps(facts), status="pending", attempts=0, next_attempt_at=0,
                                   created_at=1_799_800_000, updated_at=1_799_800_000))


def test_operators_list_notices_with_their_delivery_status_and_healthz_counts_the_set_aside(api, http, client_for,
                                                                                           keys):
    app, context = api
    alice, carol = keys["alice"].address, keys["carol"].address
    context.vault.put(alice, KycRecord(**sample_identity(0)))  # carol has no phone on file
    _record(context.sessions, alice, 1, "reminder", 1)
    _record(context.sessions, carol, 2, "reminder", 1)
    assert http.get("/healthz").json() == {"status": "ok"}
    done = app.state.notices.run_once()  # one round of the API's notice sender, to the development outbox
    assert (done.accepted, done.set_aside) == (1, 1)
    [sent] = app.state.sms.messages(sample_identity(0)["phone"])
    assert sent["text"].startswith("【LoanLedger】您的借款（编号1）第1期应还400.00元")

    operator = client_for(keys["operator"])
    listed = operator._request("GET", "/v1/operator/notices")["notices"]
    assert [(n["loan_id"], n["status"], n["delivery"]["status"]) for n in listed] == [
        (2, "set_aside", "set_aside"), (1, "sent", "accepted")]
    assert listed[0]["delivery"]["last_error"].startswith("no phone on file")
    assert listed[1]["delivery"]["provider"] == "outbox" and listed[1]["delivery"]["language"] == "zh-CN"
    only = operator._request("GET", "/v1/operator/notices", params={"status": "set_aside"})["notices"]
    assert [n["borrower"] for n in only] == [carol]
    assert operator._request("GET", "/v1/operator/notices", params={"borrower": alice.lower()})["notices"][0][
        "loan_id"] == 1
    assert operator._request("GET", "/v1/operator/notices", params={"kind": "default_notice"})["notices"] == []
    with pytest.raises(ApiError) as refused:
        client_for(keys["alice"])._request("GET", "/v1/operator/notices")
    assert refused.value.status == 403
    assert http.get("/healthz").json() == {"status": "ok", "attention": {"notices_set_aside": 1}}
    assert "loanledger_notices_set_aside 1.0" in http.get("/metrics").text
    with context.sessions() as session:
        assert session.scalar(select(Notification.status).where(Notification.loan_id == 1)) == "sent"

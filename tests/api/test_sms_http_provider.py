"""The HTTP SMS provider against a real local HTTP server the test starts: the documented payload, the idempotency
key on every attempt, failures retried with back-off until accepted, and set aside after the last attempt."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from api.notices.sender import NoticeSender
from api.sms import HttpSmsProvider, sms_provider
from ledger.config import Settings
from ledger.identity import KycRecord
from ledger.samples import sample_identity
from ledger.store.models.notices import NoticeDelivery
from ledger.store.models.notifications import Notification
from ledger.vault import Keyring, Vault

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


class Provider(BaseHTTPRequestHandler):
    """Answers the queued statuses in turn (the last one from then on); 0 means: hang past the client's timeout."""

    answers: list[int]
    seen: list[dict]

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.seen.append({"body": body, "key": self.headers["idempotency-key"],
                          "auth": self.headers.get("authorization")})
        status = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if status == 0:
            time.sleep(1.5)
            status = 503
        reply = json.dumps({"id": f"msg-{len(self.seen)}"} if status == 200 else {"error": "busy"}).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except BrokenPipeError:  # the client gave up (its timeout)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def provider_server():
    """start(answers) -> (url, requests seen)."""
    servers = []

    def start(answers: list[int]):
        handler = type("Handler", (Provider,), {"answers": list(answers), "seen": []})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/sms", handler.seen
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def queued(sessions):
    """One overdue warning for alice, as the risk monitor records it; the vault holding her phone."""
    vault = Vault(sessions, Keyring.generate())
    vault.put(ALICE, KycRecord(**sample_identity(0)))
    facts = {"kind": "overdue_warning", "loan_id": 3, "installment": 1, "borrower": ALICE, "due_at": 1_800_000_000,
             "amount_due": 42_130, "currency": "CNY", "detail": {"late_fee": 2_000, "penalty": 130,
                                                                "days_past_due": 4}}
    with sessions.begin() as session:
        notice = Notification(loan_id=3, installment=1, borrower=ALICE, kind="overdue_warning", channel="sms",
                              status="queued", due_at=1_800_000_000, amount_due=42_130, created_at=1_800_400_000)
        session.add(notice)
        session.flush()
        session.add(NoticeDelivery(notification_id=notice.id, borrower=ALICE, idempotency_key="notice-0xbook-3-ow-1",
                                   facts=json.dumps(facts), status="pending", attempts=0, next_attempt_at=0,
                                   created_at=1_800_400_000, updated_at=1_800_400_000))
    return vault


def state(sessions):
    with sessions() as session:
        delivery = session.scalars(select(NoticeDelivery)).one()
        notice = session.scalars(select(Notification)).one()
        return delivery, notice


def test_a_failed_send_is_retried_with_back_off_and_the_final_status_recorded(sessions, queued, provider_server,
                                                                              clock):
    url, seen = provider_server([503, 0, 200])  # busy, then too slow (the client's timeout), then accepted
    sender = NoticeSender(sessions, queued, HttpSmsProvider(url, "k3y", timeout=0.5), retry_after=60, clock=clock)
    start = int(clock.now)

    assert sender.run_once().failed == 1
    delivery, notice = state(sessions)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("pending", 1, start + 60)
    assert delivery.last_error.startswith("HTTP 503") and notice.status == "failed"
    assert sender.run_once().failed == 0 and len(seen) == 1  # not before its back-off

    clock.now += 60
    assert sender.run_once().failed == 1
    delivery, _ = state(sessions)
    assert delivery.attempts == 2 and delivery.next_attempt_at == start + 60 + 120  # doubled
    assert "Timeout" in delivery.last_error

    clock.now += 120
    assert sender.run_once().accepted == 1
    delivery, notice = state(sessions)
    assert (delivery.status, delivery.attempts, delivery.provider, delivery.provider_reference) == (
        "accepted", 3, "http", "msg-3")
    assert delivery.language == "zh-CN" and delivery.last_error is None
    assert (notice.status, notice.detail) == ("sent", "http: msg-3")
    assert sender.run_once().accepted == 0 and len(seen) == 3  # never again

    # Every attempt carried the same idempotency key, in the header and the documented payload.
    assert {r["key"] for r in seen} == {"notice-0xbook-3-ow-1"}
    assert all(r["auth"] == "Bearer k3y" for r in seen)
    body = seen[-1]["body"]
    assert set(body) == {"to", "text", "sender", "idempotency_key"}
    assert body["to"] == "+8613900000000" and body["sender"] == "LoanLedger"
    assert body["idempotency_key"] == "notice-0xbook-3-ow-1"
    assert "当前应还421.30元" in body["text"] and "滞纳金20.00元" in body["text"]


def test_after_the_last_attempt_the_notice_is_set_aside_for_an_operator(sessions, queued, provider_server, clock):
    url, seen = provider_server([503])
    sender = NoticeSender(sessions, queued, HttpSmsProvider(url, timeout=1), max_attempts=2, retry_after=10,
                          clock=clock)
    assert sender.run_once().failed == 1
    clock.now += 10
    done = sender.run_once()
    assert (done.failed, done.set_aside) == (0, 1) and sender.set_aside == 1
    delivery, notice = state(sessions)
    assert (delivery.status, delivery.attempts, notice.status) == ("set_aside", 2, "set_aside")
    clock.now += 10_000
    assert not sender.run_once() and len(seen) == 2  # set aside: no more attempts


def test_a_refused_message_is_set_aside_at_once(sessions, queued, provider_server, clock):
    url, seen = provider_server([400])  # the provider refuses the number or the text: no retry can fix that
    sender = NoticeSender(sessions, queued, HttpSmsProvider(url, timeout=1), clock=clock)
    assert sender.run_once().set_aside == 1 and len(seen) == 1
    assert state(sessions)[0].last_error.startswith("HTTP 400")


def test_the_settings_choose_the_provider(tmp_path):
    assert sms_provider(Settings(home=tmp_path)).name == "outbox"
    http = sms_provider(Settings(home=tmp_path, sms_provider="http", sms_url="http://127.0.0.1:9/sms",
                                 sms_api_key="k", sms_timeout=2.5))
    assert (http.name, http.url, http.timeout, http.headers) == ("http", "http://127.0.0.1:9/sms", 2.5,
                                                                 {"authorization": "Bearer k"})
    with pytest.raises(ValueError, match="sms_url"):
        sms_provider(Settings(home=tmp_path, sms_provider="http"))


def test_a_one_time_code_the_provider_failed_to_send_is_answered_503_not_lost(sessions, provider_server):
    from api.errors import ApiError
    from api.otp import OtpService
    from api.ratelimit import RateLimiter

    url, seen = provider_server([503, 200])
    otp = OtpService(sessions, HttpSmsProvider(url, timeout=1), RateLimiter("memory://"), b"s" * 32)
    with pytest.raises(ApiError) as refused:
        otp.send(ALICE, "phone", "+8613900000000")
    assert (refused.value.status, refused.value.code) == (503, "sms_unavailable")
    otp.send(ALICE, "phone", "+8613900000000")  # accepted: a fresh key per code, so the retry is not deduped away
    assert len(seen) == 2 and seen[0]["key"] != seen[1]["key"]
    assert "(phone)" in seen[1]["body"]["text"]

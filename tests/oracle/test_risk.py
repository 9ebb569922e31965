"""The risk monitor on a real anvil: reminders, overdue warnings with the contract's charges, defaults."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import select

from ledger.chain import ChainClient
from ledger.indexer import Indexer
from ledger.store import open_store
from ledger.store.models.notifications import Notification
from oracle.notify import LogSender, Notice, WebhookSender
from oracle.risk import RiskMonitor

DAY = 86_400


@pytest.fixture
def sessions(tmp_path):
    return open_store(f"sqlite:///{tmp_path / 'risk.db'}")


@pytest.fixture
def index(w3, stack, sessions):
    indexer = Indexer(w3, stack.manifest, sessions)
    return indexer.run_once


@pytest.fixture
def monitor(w3, stack, keys, sessions):
    return RiskMonitor(sessions, stack.book, LogSender(), client=ChainClient(w3, keys["oracle"], stack.errors),
                       reminder_days=3)


def notices(sessions) -> list[tuple[int, int, str, str]]:
    with sessions() as session:
        return [(n.loan_id, n.installment, n.kind, n.status)
                for n in session.scalars(select(Notification).order_by(Notification.id))]


def test_reminder_then_overdue_warning_then_default(w3, stack, keys, driver, sessions, index, monitor):
    loan_id = driver.active_loan(keys["alice"])
    disbursed = driver.now
    index()
    assert monitor.run_once().reminders == 0 and notices(sessions) == []  # 30 days to go: nothing yet

    driver.advance(27 * DAY + 3600)
    report = monitor.run_once()
    assert report.reminders == 1
    assert notices(sessions) == [(loan_id, 1, "reminder", "sent")]
    assert monitor.run_once().reminders == 0 and len(notices(sessions)) == 1  # never twice

    driver.advance(6 * DAY)  # past the due date and the 3-day grace
    report = monitor.run_once()
    assert report.overdue_warnings == 1
    with sessions() as session:
        warning = session.scalars(select(Notification).where(Notification.kind == "overdue_warning")).one()
    owed = stack.book.functions.amountDue(loan_id, report.as_of).call()
    assert owed[2] > 0  # the late fee, charged once grace ended
    assert warning.amount_due == sum(owed[:4]) and warning.installment == 1
    assert warning.due_at > disbursed

    driver.advance(86 * DAY)  # 27 + 6 + 86 days: 89 days past the first due date, not yet 90
    assert monitor.run_once().defaults_declared == []
    assert stack.book.functions.loanOf(loan_id).call()[2] == 5  # still Active
    driver.advance(2 * DAY)
    report = monitor.run_once()
    assert report.defaults_declared == [loan_id] and report.default_notices == 1
    assert stack.book.functions.loanOf(loan_id).call()[2] == 7  # Defaulted, on-chain
    index()
    again = monitor.run_once()
    assert again.defaults_declared == [] and again.default_notices == 0
    kinds = [kind for _, _, kind, _ in notices(sessions)]
    assert kinds.count("default_notice") == 1 and kinds.count("overdue_warning") == 1


def test_a_paid_installment_gets_no_warning_and_a_repaid_loan_nothing(w3, stack, keys, driver, sessions, index,
                                                                       monitor):
    loan_id = driver.active_loan(keys["bob"])
    driver.advance(28 * DAY)
    driver.repay(loan_id, driver.payoff(loan_id), b"payoff-bob")
    index()
    driver.advance(10 * DAY)
    report = monitor.run_once()
    assert (report.reminders, report.overdue_warnings, report.defaults_declared) == (0, 0, [])
    assert notices(sessions) == []


def test_without_a_signer_a_default_is_warned_about_not_declared(w3, stack, keys, driver, sessions, index):
    loan_id = driver.active_loan(keys["carol"])
    index()
    watcher = RiskMonitor(sessions, stack.book, LogSender(), client=None)
    driver.advance(200 * DAY)
    report = watcher.run_once()
    assert report.defaults_declared == [] and report.overdue_warnings == 1
    assert stack.book.functions.loanOf(loan_id).call()[2] == 5  # Active


class _Inbox(BaseHTTPRequestHandler):
    received: list[tuple[dict, bytes]] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_sender_signs_and_a_failed_delivery_is_retried(w3, stack, keys, driver, sessions, index,
                                                               unused_port):
    loan_id = driver.active_loan(keys["dave"])
    index()
    secret = b"notify-secret"
    down = RiskMonitor(sessions, stack.book, WebhookSender(f"http://127.0.0.1:{unused_port}/n", secret, timeout=1))
    driver.advance(28 * DAY)
    report = down.run_once()
    assert report.failed == 1 and notices(sessions) == [(loan_id, 1, "reminder", "failed")]

    _Inbox.received = []
    server = HTTPServer(("127.0.0.1", 0), _Inbox)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        up = RiskMonitor(sessions, stack.book, WebhookSender(f"http://127.0.0.1:{server.server_port}/n", secret))
        report = up.run_once()
    finally:
        server.shutdown()
    assert report.reminders == 1 and notices(sessions) == [(loan_id, 1, "reminder", "sent")]
    headers, body = _Inbox.received[0]
    expected = hmac.new(secret, headers["x-loanledger-timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-loanledger-signature"] == expected
    sent = json.loads(body)
    assert (sent["kind"], sent["loan_id"], sent["borrower"]) == ("reminder", loan_id, keys["dave"].address)


def test_notice_carries_no_personal_data():
    fields = set(Notice.__dataclass_fields__)
    assert fields == {"kind", "loan_id", "installment", "borrower", "due_at", "amount_due", "currency", "detail"}

"""Notices reach the borrower's phone: the risk monitor (oracle) records them, the API's notice sender (which holds
the vault) renders them in the borrower's language and sends them through the development outbox. Real anvil for
the amounts (the loan book's amountDue), real store on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from api.notices.catalogue import local_date, yuan
from api.notices.sender import NoticeSender
from api.sms import DevOutbox
from ledger.chain import ChainClient
from ledger.identity import KycRecord
from ledger.indexer import Indexer
from ledger.samples import sample_identity
from ledger.store.models.notices import BorrowerLanguage, NoticeDelivery
from ledger.store.models.notifications import Notification
from ledger.vault import Keyring, Vault
from oracle.notify import SmsQueue
from oracle.risk import RiskMonitor

DAY = 86_400


class Dies(BaseException):
    """The API process killed between the provider's answer and recording it."""


class DiesAfterSending:
    """The provider takes the message; the process dies before the answer is stored."""

    name = "outbox"

    def __init__(self, outbox: DevOutbox):
        self.outbox = outbox

    def send(self, phone, text, *, idempotency_key=None):
        self.outbox.send(phone, text, idempotency_key=idempotency_key)
        raise Dies()


@pytest.fixture
def phones(sessions, keys):
    """alice (no choice made: zh-CN) and bob (chose English) have KYC records holding their phones."""
    vault = Vault(sessions, Keyring.generate())
    for index, name in enumerate(("alice", "bob")):
        vault.put(keys[name].address, KycRecord(**sample_identity(index)))
    with sessions.begin() as session:
        session.add(BorrowerLanguage(borrower=keys["bob"].address, language="en", time_zone="Asia/Shanghai",
                                     updated_at=0))
    return vault


def statuses(sessions) -> list[tuple[int, str, str, str | None]]:
    with sessions() as session:
        return [(n.loan_id, n.kind, n.status, d.status if d else None) for n, d in session.execute(
            select(Notification, NoticeDelivery).outerjoin(NoticeDelivery,
                                                            NoticeDelivery.notification_id == Notification.id)
            .order_by(Notification.id))]


def test_reminder_warning_and_default_notice_reach_each_phone_in_its_language_once(w3, stack, keys, driver, sessions, phones,
                                                                          tmp_path, clock):
    index = Indexer(w3, stack.manifest, sessions).run_once
    monitor = RiskMonitor(sessions, stack.book, SmsQueue(stack.book.address),
                          client=ChainClient(w3, keys["oracle"], stack.errors), reminder_days=3)
    outbox = DevOutbox(tmp_path / "sms-outbox.jsonl")
    sender = NoticeSender(sessions, phones, outbox, clock=clock)
    alice_loan = driver.active_loan(keys["alice"])
    bob_loan = driver.active_loan(keys["bob"], ref=b"payout-2", report_id=2)
    alice_phone, bob_phone = (KycRecord(**sample_identity(i)).phone for i in (0, 1))

    driver.advance(27 * DAY + 3600)  # three days before the first due date
    index()
    assert monitor.run_once().reminders == 2
    assert monitor.run_once().reminders == 0  # recorded once, however often the monitor runs
    assert outbox.messages() == []  # the oracle texts no one: it holds no phone
    assert sender.run_once().accepted == 2
    [alice_reminder] = outbox.messages(alice_phone)
    [bob_reminder] = outbox.messages(bob_phone)
    with sessions() as session:
        reminder = {n.loan_id: n for n in session.scalars(select(Notification).where(Notification.kind == "reminder"))}
    assert alice_reminder["text"] == (
        f"【LoanLedger】您的借款（编号{alice_loan}）第1期应还{yuan(reminder[alice_loan].amount_due)}元，"
        f"还款日为{local_date(reminder[alice_loan].due_at, 'zh-CN')}。请按时还款。")
    assert bob_reminder["text"].startswith(
        f"LoanLedger: installment 1 of your loan {bob_loan}, CNY {yuan(reminder[bob_loan].amount_due)}, is due on "
        f"{local_date(reminder[bob_loan].due_at, 'en')}.")
    assert reminder[alice_loan].amount_due > 0

    driver.advance(6 * DAY)  # past the due date and the 3-day grace: the late fee is charged
    index()
    report = monitor.run_once()
    assert report.overdue_warnings == 2
    owed = {loan_id: stack.book.functions.amountDue(loan_id, report.as_of).call() for loan_id in (alice_loan, bob_loan)}
    assert all(o[2] > 0 for o in owed.values())  # the late fee, as the contract computes it
    # The API process dies after the provider took the first warning, before recording it: the row stays `sending`.
    with pytest.raises(Dies):
        NoticeSender(sessions, phones, DiesAfterSending(outbox), clock=clock).run_once()
    assert sender.run_once().accepted == 1  # the other warning; the claimed one waits for its claim to go stale
    clock.now += 301
    assert sender.run_once().accepted == 1  # sent again with the same idempotency key: the provider dedups it
    assert monitor.run_once().overdue_warnings == 0 and sender.run_once().accepted == 0

    keys_sent = Counter(m.get("key") for m in outbox.messages())
    assert len(keys_sent) == 4 and set(keys_sent.values()) == {1}  # two reminders, two warnings, each once
    alice_warning = outbox.messages(alice_phone)[-1]["text"]
    bob_warning = outbox.messages(bob_phone)[-1]["text"]
    principal, interest, late_fee, penalty = owed[alice_loan][:4]
    assert f"当前应还{yuan(principal + interest + late_fee + penalty)}元" in alice_warning
    assert f"滞纳金{yuan(late_fee)}元" in alice_warning and "已逾期" in alice_warning
    principal, interest, late_fee, penalty = owed[bob_loan][:4]
    assert f"Now due: CNY {yuan(principal + interest + late_fee + penalty)}" in bob_warning
    assert f"late fee of CNY {yuan(late_fee)}" in bob_warning
    assert statuses(sessions) == [(alice_loan, "reminder", "sent", "accepted"), (bob_loan, "reminder", "sent", "accepted"),
                                  (alice_loan, "overdue_warning", "sent", "accepted"),
                                  (bob_loan, "overdue_warning", "sent", "accepted")]

    driver.advance(88 * DAY)  # 91 days past the first due date: the monitor declares both loans in default
    report = monitor.run_once()
    assert sorted(report.defaults_declared) == sorted([alice_loan, bob_loan]) and report.default_notices == 2
    owed = {loan_id: sum(stack.book.functions.amountDue(loan_id, report.as_of).call()[:4])
            for loan_id in (alice_loan, bob_loan)}
    assert sender.run_once().accepted == 2
    assert outbox.messages(alice_phone)[-1]["text"] == (
        f"【LoanLedger】您的借款（编号{alice_loan}）已被认定为违约，当前欠款{yuan(owed[alice_loan])}元。"
        f"请尽快与我们联系，协商还款。")
    assert outbox.messages(bob_phone)[-1]["text"].startswith(
        f"LoanLedger: your loan {bob_loan} has been declared in default; CNY {yuan(owed[bob_loan])} is owed.")


def test_a_borrower_without_a_phone_on_file_is_set_aside_and_holds_up_no_one(w3, stack, keys, driver, sessions,
                                                                            phones, tmp_path, clock):
    index = Indexer(w3, stack.manifest, sessions).run_once
    monitor = RiskMonitor(sessions, stack.book, SmsQueue(stack.book.address), reminder_days=3)
    outbox = DevOutbox(tmp_path / "sms-outbox.jsonl")
    sender = NoticeSender(sessions, phones, outbox, clock=clock)
    carol_loan = driver.active_loan(keys["carol"])  # carol has no KYC record in this vault
    alice_loan = driver.active_loan(keys["alice"], ref=b"payout-2", report_id=2)
    driver.advance(27 * DAY + 3600)
    index()
    assert monitor.run_once().reminders == 2
    done = sender.run_once()
    assert (done.accepted, done.set_aside) == (1, 1) and sender.set_aside == 1
    assert [(loan, status) for loan, _, status, _ in statuses(sessions)] == [(carol_loan, "set_aside"),
                                                                             (alice_loan, "sent")]

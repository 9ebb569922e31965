"""The borrower app's pay area in a real phone-sized Chromium (issue 18), against the API on a real port, a real rail
process and the test chain: Alice reads the reminder the risk monitor sent her, pays her installment through the
rail's hosted checkout and sees it recorded then applied, sets up and revokes automatic debit by signing the
mandate the API writes; in English, she asks for more time, accepts the operator's offer by signing it, and pays
the loan off early with the exact payoff the contract computes, until the loan is repaid.

The rail's webhook is off in the `rail` fixture: what the oracle's intake would store on it is stored here as the
dashboard tests do (`confirm`), and the oracle's outbox worker sends it on-chain; the indexer (a thread of the
`api` fixture) shows it to the app, which polls until it sees the payment applied."""

from __future__ import annotations

import pytest
import step_up_codes
from app_steps import check, clean, cny, goto, leave_and_come_back, texted, through_checkout

from oracle.notify import SmsQueue
from oracle.risk import RiskMonitor

PASSCODE = "correct horse 7"
DAY = 86_400


@pytest.fixture
def loan(api, borrower, application, driver) -> int:
    """Alice's loan, applied for with the SDK, approved and paid out."""
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-app-pay")
    assert api[1].wait_indexed(driver.w3.eth.block_number)
    assert borrower.loan(loan_id)["status"] == "Active"
    return loan_id


def test_alice_reads_her_reminder_pays_through_the_checkout_and_sets_up_then_revokes_automatic_debit(
        api, w3, stack, keys, driver, borrower, loan, rail, confirm, phone_for):
    app, context = api
    # Three days before the first due date the risk monitor records her reminder; the API texts it.
    driver.advance(27 * DAY + 3600)
    assert context.wait_indexed(w3.eth.block_number)
    monitor = RiskMonitor(context.sessions, stack.book, SmsQueue(stack.book.address), reminder_days=3)
    assert monitor.run_once().reminders == 1
    reminder = f"【LoanLedger】您的借款（编号{loan}）第1期应还"
    sent = texted(app, keys["alice"].address, reminder)

    phone = phone_for("zh-CN")
    phone.seed_wallet(keys["alice"], PASSCODE)
    phone.sign_in(PASSCODE)
    phone.page.click("nav.tabs a[href='#/notices']")
    phone.wait_screen("notices")
    assert phone.page.inner_text("#notice-list .pay-notice-text") == sent["text"]
    assert "还款提醒" in phone.page.inner_text("#notice-list .pay-notice-kind")
    assert "已发送" in phone.page.inner_text("#notice-list .pay-notice")
    check(phone, "pay-notices-zh-CN")

    # Pay now: nothing is due yet, so the next installment as the book will ask it, through the rail's checkout.
    due = borrower.due(loan)
    goto(phone, f"pay?loan={loan}", "pay")
    shown = phone.page.inner_text("#pay-due")
    assert "¥0.00" in shown and f"¥{due['owed_at_next_due'] // 100:,}.{due['owed_at_next_due'] % 100:02d}" in shown
    check(phone, "pay-pay-zh-CN")
    phone.page.click("#pay-checkout")
    through_checkout(phone, rail, cny(due["owed_at_next_due"]), "pay", PASSCODE)
    check(phone, "pay-pay-recording-zh-CN")
    [reference] = confirm(loan)
    phone.page.wait_for_selector("#pay-status[data-state='applied']", timeout=30_000)
    after = borrower.loan(loan)
    assert after["paid_installments"] == 1 and after["status"] == "Active"
    assert "付款已记入您的借款" in phone.page.inner_text("#pay-status")
    applied = phone.page.inner_text("#pay-applied")
    assert f"¥{after['principal_repaid'] // 100:,}.{after['principal_repaid'] % 100:02d}" in applied

    # Automatic debit: the mandate the API writes, in words, signed after a step-up code read off her phone.
    phone.page.click("#link-debit")
    phone.wait_screen("debit")
    proposal = borrower._request("GET", f"/v1/loans/{loan}/debit-mandate/typed-data")
    words = phone.page.inner_text("#debit-words")
    assert proposal["card"] in words and f"{proposal['max_amount'] // 100:,}" in words
    check(phone, "pay-debit-zh-CN")
    phone.page.click("#debit-send")
    phone.page.wait_for_selector("#debit-sent:not(:empty)")
    phone.page.fill("#debit-code", step_up_codes.read_code(app, keys["alice"].address))
    phone.page.click("#debit-sign")
    phone.page.wait_for_selector("#debit-mandate")
    phone.wait_screen("debit")
    mandate = borrower.debit_mandate(loan)["mandate"]
    assert (mandate["card"], mandate["max_amount"], mandate["valid_until"]) == (
        proposal["card"], proposal["max_amount"], proposal["valid_until"])
    assert "自动扣款已开通" in phone.page.inner_text("#debit-done")
    check(phone, "pay-debit-on-zh-CN")
    phone.page.click("#debit-revoke")
    phone.page.wait_for_selector("#debit-form")
    phone.wait_screen("debit")
    assert borrower.debit_mandate(loan)["mandate"] is None
    assert "自动扣款已关闭" in phone.page.inner_text("#debit-done")
    clean(phone, rail)


def test_in_english_alice_asks_for_more_time_accepts_the_offer_and_pays_off_early(
        api, keys, driver, borrower, operator, loan, rail, confirm, phone_for):
    app, _ = api
    phone = phone_for("en")
    phone.seed_wallet(keys["alice"], PASSCODE)
    phone.sign_in(PASSCODE)
    phone.page.click("#language")
    phone.page.wait_for_selector("html[lang='en']")
    phone.wait_screen("home")

    # Hardship: the request, with a reason code and a step-up code.
    goto(phone, f"hardship?loan={loan}", "hardship")
    check(phone, "pay-hardship-en")
    phone.page.fill("#hardship-installments", "6")
    phone.page.select_option("#hardship-reason", "income_loss")
    phone.page.click("#hardship-ask-send")
    phone.page.wait_for_selector("#hardship-ask-sent:not(:empty)")
    phone.page.fill("#hardship-ask-code", step_up_codes.read_code(app, keys["alice"].address))
    phone.page.click("#hardship-request")
    phone.page.wait_for_selector("#hardship-status")
    phone.wait_screen("hardship")
    assert "Asked for 6 installments (Loss of income)" in phone.page.inner_text("#hardship-asked")
    assert [(r["installments"], r["reason"]) for r in operator.reschedule(loan)["requests"]] == [(6, "income_loss")]

    # The operator offers; the app shows it in words, and the raw typed data it signs one tap away.
    operator.offer_reschedule(loan, 6, driver.now + 7 * DAY)
    leave_and_come_back(phone, f"hardship?loan={loan}", "hardship")
    assert "in 6 installments from your next due date" in phone.page.inner_text("#hardship-words")
    phone.page.click("#hardship-raw summary")
    assert '"primaryType": "RescheduleAcceptance"' in phone.page.inner_text("#hardship-raw pre")
    check(phone, "pay-hardship-offer-en")
    phone.page.click("#hardship-accept-send")
    phone.page.wait_for_selector("#hardship-accept-sent:not(:empty)")
    phone.page.fill("#hardship-accept-code", step_up_codes.read_code(app, keys["alice"].address))
    phone.page.click("#hardship-sign")
    phone.page.wait_for_selector("#hardship-done")
    phone.wait_screen("hardship")
    rescheduled = borrower.loan(loan)
    assert rescheduled["installments"] == 6 and len(rescheduled["schedule"]) == 6
    assert phone.page.locator("#hardship-schedule tbody tr").count() == 6
    (done,) = borrower.reschedule(loan)["reschedules"]
    amount = done["current"]["installment_amount"]
    assert f"6 installments left of CN¥{amount // 100:,}.{amount % 100:02d}" in phone.page.inner_text(
        "#hardship-shapes")
    check(phone, "pay-hardship-done-en")

    # Early repayment: the contract's payoff, exactly, through the same checkout; then the loan is repaid.
    phone.page.click("#link-payoff")
    phone.wait_screen("payoff")
    payoff = borrower.due(loan)["payoff"]
    assert phone.page.inner_text("#payoff-amount") == f"CN¥{payoff // 100:,}.{payoff % 100:02d}"
    check(phone, "pay-payoff-en")
    phone.page.click("#payoff-checkout")
    through_checkout(phone, rail, cny(payoff), "payoff", PASSCODE)
    confirm(loan)
    phone.page.wait_for_selector("#pay-status[data-state='applied']", timeout=30_000)
    assert "your loan is repaid" in phone.page.inner_text("#pay-status")
    closed = borrower.loan(loan)
    assert closed["status"] == "Repaid" and closed["credit_balance"] == 0
    check(phone, "pay-payoff-repaid-en")
    clean(phone, rail)

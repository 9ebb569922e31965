"""Cancelling an application in the borrower app, in a real phone-sized Chromium against the real stack: the loan's
page offers it while the loan is not paid out; the cancellation is read in words with the raw typed data (the API's
CancelLoan: the app builds none) one tap away, the app's wallet signs it, and the page then shows it Cancelled, as
the chain does."""

from __future__ import annotations

import json
from app_steps import check, goto, switch_language

PASSCODE = "correct horse 7"


def test_a_borrower_cancels_an_application_before_the_payout(api, borrower, application, stack, keys, phone_for):
    loan_id = borrower.apply(**application)["loan_id"]  # Requested: no policy runs here
    phone = phone_for()
    phone.seed_wallet(keys["alice"], PASSCODE)
    phone.sign_in(PASSCODE, "loans")
    goto(phone, f"loan?id={loan_id}", "loan")
    assert phone.page.get_attribute("section.loan", "data-status") == "Requested"
    phone.page.click("#action-cancel")

    phone.wait_screen("cancel")
    assert phone.page.inner_text("#cancel-summary") == f"取消第 {loan_id} 笔借款 ¥1,200.00 的申请（已申请，等待审批）。"
    phone.page.click("#cancel-raw summary")
    raw = json.loads(phone.page.inner_text("#cancel-raw code"))
    assert raw["primaryType"] == "CancelLoan" and "EIP712Domain" in raw["types"]
    assert raw["domain"]["verifyingContract"] == stack.book.address
    assert raw["message"]["loanId"] == loan_id
    assert raw["message"]["nonce"] == stack.book.functions.nonces(keys["alice"].address).call()
    check(phone, "loans-cancel-zh-CN")
    switch_language(phone, "en", "cancel")  # drawn again in English (a fresh draft: the same loan and nonce)
    assert phone.page.inner_text("#cancel-summary") == \
        f"Cancel your application for loan {loan_id} of CN¥1,200.00 (Requested: waiting for a decision)."
    check(phone, "loans-cancel-en")
    switch_language(phone, "zh-CN", "cancel")

    phone.page.click("#sign-cancel")
    phone.wait_screen("loan")
    phone.page.wait_for_selector("section.loan[data-status='Cancelled']")
    assert phone.page.inner_text("#loan-status") == "已取消"
    assert phone.page.query_selector("#action-cancel") is None  # nothing left to cancel
    assert stack.book.functions.loanOf(loan_id).call()[2] == 4  # Cancelled on the chain
    assert borrower.loan(loan_id)["status"] == "Cancelled"
    check(phone, "loans-cancelled-zh-CN")
    phone.assert_clean()

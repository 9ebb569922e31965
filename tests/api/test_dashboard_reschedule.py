"""Hardship reschedules in the dashboard (issue 17), in a real headless Chromium against the API on a real port and
real contracts: a borrower asks (with a step-up code read off their phone), the operator reads the request in the
dashboard, offers new terms after reading what they do and signs them with the page's wallet; the offer is on the
loan book; the borrower accepts by signing; the book's schedule is the new one and the page says so.
"""

from __future__ import annotations

import pytest
from dashboard_browser import Tab, chromium  # noqa: F401 - chromium is a fixture
from dashboard_browser import table_rows
from eth_account import Account

from api.client import LoanLedgerClient

DAY = 86_400
ROWS = "#reschedules-table tbody tr"


@pytest.fixture
def active_loan(api, w3, borrower, application, driver) -> int:
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-dashboard-reschedule")
    assert api[1].wait_indexed(w3.eth.block_number)
    return loan_id


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def _open_requests(tab: Tab, account) -> None:
    tab.wallet_login(account)
    tab.wait_ready("portfolio")
    tab.page.click("#nav-reschedules")
    tab.wait_ready("reschedules")


def test_an_operator_offers_a_reschedule_in_the_dashboard_and_the_borrower_accepts_it(
        api, w3, stack, keys, borrower, active_loan, chromium, served):  # noqa: F811
    loan_id, operator = active_loan, keys["operator"].address
    book = stack.book.functions
    before = book.schedule(loan_id).call()
    assert len(before) == 3
    assert borrower.request_reschedule(loan_id, 6, "income_loss")["recorded"] is True

    tab = Tab(chromium, served)
    try:
        page = tab.page
        _open_requests(tab, keys["operator"])
        assert table_rows(page, ROWS, "data-loan-id", "data-offer-state", "data-status") == [
            (str(loan_id), "none", "Active")]
        row = page.locator(f"{ROWS}[data-loan-id='{loan_id}']")
        assert "loss of income" in row.text_content() and "6 installments" in row.text_content()
        assert row.locator(".offer-installments").input_value() == "6"  # what the borrower hoped for

        # Not longer than the three installments left: the loan book refuses it before anything is signed (the
        # form itself keeps to the product's longest term, 12).
        assert row.locator(".offer-installments").get_attribute("max") == "12"
        row.locator(".offer-installments").fill("2")
        row.locator(".review-offer").click()
        page.wait_for_selector("#notice:has-text('cannot be prepared')")
        assert page.text_content("#notice") == ("The decision cannot be prepared: LoanBookRescheduleOutsideProduct("
                                                f"loanId={loan_id}, installments=2, minInstallments=4, "
                                                "maxInstallments=12)")
        assert page.is_hidden("#review") and tab.typed_signed == []
        assert book.rescheduleOfferOf(loan_id).call()[0] == 0

        row.locator(".offer-installments").fill("6")
        row.locator(".review-offer").click()
        page.wait_for_selector("#review:not([hidden])")
        summary = page.text_content("#review-summary")
        assert summary.startswith(f"Offer {_short(borrower.account.address)} to reschedule loan {loan_id} over 6 "
                                  "installments from its next due date")
        assert tab.typed_signed == []  # nothing signed until the operator says so
        page.click("#review-sign")
        page.wait_for_selector("#notice:has-text('done, signed by')")
        assert page.text_content("#notice") == f"{summary}: done, signed by {operator}"
        (signed,) = tab.typed_signed
        assert (signed["message"]["from"], signed["message"]["to"]) == (operator, stack.book.address)

        # On the loan book: the offer, signed by the operator (the chain names them).
        offer_id, installments, expires_at, is_open, _ = book.rescheduleOfferOf(loan_id).call()
        assert (offer_id, installments, is_open) == (1, 6, True)
        assert expires_at == pytest.approx(api[1].chain_time() + 7 * DAY, abs=120)
        (offered,) = stack.book.events.RescheduleOffered().get_logs(argument_filters={"loanId": loan_id},
                                                                     from_block=0)
        assert (offered.args.actor, offered.args.installments) == (operator, 6)
        tab.wait_ready("reschedules")
        assert table_rows(page, ROWS, "data-offer-state") == [("open",)]
        state = row.locator(".offer-state").text_content()
        assert state.startswith("offer #1: 6 installments of about ") and "awaiting the borrower's signature" in state
        assert row.locator("form").count() == 0  # one open offer at a time

        # The borrower accepts by signing the offer the API shows them (and a step-up code off their phone).
        borrower.accept_reschedule(loan_id, expect_installments=6)
        after = book.schedule(loan_id).call()
        assert len(after) == 6 and after[0][0] == before[0][0]  # from the next due date on, over six
        assert book.rescheduleOfferOf(loan_id).call()[3] is False
        (accepted,) = stack.book.events.RescheduleAccepted().get_logs(argument_filters={"loanId": loan_id},
                                                                       from_block=0)
        assert (accepted.args.offerId, accepted.args.borrower) == (1, borrower.account.address)
        assert api[1].wait_indexed(w3.eth.block_number)

        page.reload()
        tab.wait_ready("reschedules")
        assert table_rows(page, ROWS, "data-loan-id", "data-offer-state") == [(str(loan_id), "accepted")]
        assert "the new schedule is in force" in row.locator(".offer-state").text_content()
        # The one error the browser saw is the loan book's refusal of 2 installments (it logs the 409 it fetched).
        assert tab.errors == ["console: Failed to load resource: the server responded with a status of 409 "
                              "(Conflict)"]
        tab.errors.clear()
        tab.assert_clean()
    finally:
        tab.close()


def test_an_auditor_reads_the_requests_and_is_offered_no_form(api, keys, borrower, active_loan, served,
                                                             chromium):  # noqa: F811
    account = Account.create()
    admin = LoanLedgerClient(served, keys["admin"])
    admin.login()
    admin.add_auditor(account.address)
    borrower.request_reschedule(active_loan, 0, "illness")
    tab = Tab(chromium, served)
    try:
        _open_requests(tab, account)
        row = tab.page.locator(f"{ROWS}[data-loan-id='{active_loan}']")
        assert "no preference" in row.text_content() and "illness" in row.text_content()
        assert row.locator("form").count() == 0 and "operators offer" in row.text_content()
        tab.assert_clean()
    finally:
        tab.close()

"""Hardship reschedule through the API (issue 17): the borrower asks, an operator offers with a signed decision, the
borrower accepts by signing the offer the API shows; the loan's view then has the new schedule, and the reschedule
view the replaced one. Refusals come back with the loan book's reason."""

from __future__ import annotations

import pytest
from api_outcomes import api_error


DAY = 86_400


@pytest.fixture
def active_loan(api, borrower, application, driver) -> int:
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-hardship-api")
    assert api[1].wait_indexed(driver.w3.eth.block_number)
    return loan_id


def logged_actions(context) -> set[str]:
    head = context.action_log.head()
    return {context.action_log.entry(seq).action for seq in range(1, head.seq + 1)} if head else set()


def test_a_reschedule_asked_offered_and_accepted_through_the_api(api, borrower, operator, active_loan, driver):
    loan_id = active_loan
    before = borrower.loan(loan_id)
    assert len(before["schedule"]) == 3
    asked = borrower.request_reschedule(loan_id, 6, "income_loss")
    assert asked == {"loan_id": loan_id, "installments": 6, "recorded": True}
    status = borrower.reschedule(loan_id)
    assert (status["offer"], status["to_sign"], status["reschedules"]) == (None, None, [])
    assert [(r["installments"], r["reason"]) for r in operator.reschedule(loan_id)["requests"]] == [(6, "income_loss")]
    (listed,) = operator.reschedule_requests()
    assert (listed["loan_id"], listed["borrower"], listed["reason"]) == (loan_id, borrower.account.address, "income_loss")

    expires_at = driver.now + 7 * DAY
    outside = api_error(operator.offer_reschedule, loan_id, 13, expires_at)  # the product's longest term is 12
    assert (outside.status, outside.code) == (409, "loan_book_reschedule_outside_product")
    sent = operator.offer_reschedule(loan_id, 6, expires_at)
    assert sent["signed_by"] == operator.account.address
    shown = borrower.reschedule(loan_id)
    assert shown["offer"] == {"offer_id": 1, "installments": 6, "expires_at": expires_at, "open": True}
    assert shown["to_sign"]["primaryType"] == "RescheduleAcceptance"
    assert operator.reschedule(loan_id)["to_sign"] is None  # only the borrower is given something to sign

    borrower.accept_reschedule(loan_id, expect_installments=6)
    after = borrower.loan(loan_id)
    assert len(after["schedule"]) == 6 and after["installments"] == 6
    assert after["schedule"][0]["due_at"] == before["schedule"][0]["due_at"]  # from the next due date on
    (done,) = borrower.reschedule(loan_id)["reschedules"]
    assert done["previous"]["installments"] == 3 and done["current"]["installments"] == 6
    assert done["current"]["installment_amount"] < done["previous"]["installment_amount"]
    assert done["previous_schedule"] == before["schedule"]  # the replaced schedule, rebuilt by the book's quote
    assert done["current_schedule"] == after["schedule"]
    assert borrower.reschedule(loan_id)["offer"]["open"] is False
    # Accepting again: the offer is closed (the book's reason), nothing relayed.
    again = api_error(borrower.accept_reschedule, loan_id)
    assert again.code == "no_open_offer"
    assert {"loan.reschedule_request", "loan.reschedule_offer", "loan.reschedule_accept"} <= logged_actions(api[1])


def test_only_the_borrower_asks_and_only_an_active_loan(api, borrower, client_for, kyc, keys, application, driver):
    loan_id = borrower.apply(**application)["loan_id"]  # requested, not active yet
    refused = api_error(borrower.request_reschedule, loan_id, 6)
    assert (refused.status, refused.code) == (409, "loan_not_active")
    bob = client_for(keys["bob"])
    kyc(bob, 12)
    bob.login()
    assert api_error(bob.request_reschedule, loan_id, 6).status == 404  # someone else's loan: not found

"""`GET /v1/loans/{id}/payments`: a borrower's own loan's payments as the chain recorded them (what the app's loan
page lists): the payout, then each repayment with where the loan book put it; another borrower's loan is not
found."""

from __future__ import annotations

from api_outcomes import api_error

DAY = 86_400


def test_a_borrower_sees_the_payout_and_each_repayments_allocation(api, borrower, application, policy, operator,
                                                                    driver, client_for, keys, w3):
    _, context = api
    operator.set_auto_approve(True)
    loan_id = borrower.apply(**application)["loan_id"]
    assert policy().decided == {loan_id: "approved"}
    assert borrower._request("GET", f"/v1/loans/{loan_id}/payments") == {"payments": [], "next_cursor": None}
    driver.disburse(loan_id, application["principal"], b"payments-payout")
    driver.advance(31 * DAY)  # the first installment is due (within its grace period)
    driver.repay(loan_id, 50_000, b"payments-repay")
    assert context.wait_indexed(w3.eth.block_number)

    payout, repayment = borrower._request("GET", f"/v1/loans/{loan_id}/payments")["payments"]
    assert (payout["kind"], payout["amount"]) == ("disbursement", application["principal"])
    assert (repayment["kind"], repayment["amount"]) == ("repayment", 50_000)
    parts = ("principal", "interest", "late_fee", "penalty", "credit")
    assert sum(repayment[k] for k in parts) == 50_000 and repayment["interest"] > 0
    loan = borrower.loan(loan_id)  # the loan's totals are the sum of its repayments' parts
    assert (loan["principal_repaid"], loan["interest_paid"], loan["late_fee_paid"], loan["penalty_paid"]) == (
        repayment["principal"], repayment["interest"], repayment["late_fee"], repayment["penalty"])

    bob = client_for(keys["bob"])
    error = api_error(bob._request, "GET", f"/v1/loans/{loan_id}/payments")
    assert (error.status, error.code) == (404, "not_found")

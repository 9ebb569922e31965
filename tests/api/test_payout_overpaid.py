"""A payout order whose loan was overpaid before the order was next read (found by the rail simulation):
the loan closed `Overpaid` on-chain, so it was paid out, and the order is `settled`, not left `sent`."""

from __future__ import annotations

import time

from sqlalchemy import select

from ledger.store.models.chain import Loan


def test_an_order_whose_loan_went_overpaid_before_it_was_read_is_settled(api, operator, borrower, driver, terms,
                                                                          rail):
    _, context = api
    loan_id = borrower.apply(terms)["loan_id"]
    operator.approve(loan_id)  # orders the payout; the rail takes it (webhooks off: confirmed by hand below)
    (payout,) = rail.payouts(loan_id)
    driver.disburse(loan_id, terms["principal"], b"payout-overpaid")
    driver.repay(loan_id, driver.payoff(loan_id) + 3_000, b"overpay")  # Active, then Overpaid, unread between
    deadline = time.monotonic() + 20
    while True:
        with context.sessions() as session:
            if session.scalar(select(Loan.status).where(Loan.id == loan_id)) == "Overpaid":
                break
        assert time.monotonic() < deadline, "the indexer never showed the loan Overpaid"
        time.sleep(0.05)

    (order,) = operator._request("GET", "/v1/operator/payouts", params={"loan_id": loan_id})["orders"]
    assert (order["state"], order["rail_reference"]) == ("settled", payout["reference"]) and order["settled_at"]
    again = operator._request("POST", f"/v1/operator/loans/{loan_id}/disburse", idempotency_key="d-overpaid")
    assert again["state"] == "settled"
    assert len(rail.payouts(loan_id)) == 1

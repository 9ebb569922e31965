"""Payout orders settled from the chain (both found by the rail simulation): an order whose loan was overpaid
before the order was next read is `settled`, not left `sent` (the loan closed `Overpaid`: it was paid out);
and an order whose answer was lost (the rail stalled) names, once settled, the payout the chain confirmed."""

from __future__ import annotations

import signal
import time

from sqlalchemy import select

from ledger.store.models.chain import Loan
from oracle.outbox import Outbox
from oracle.payments.inbound import Confirmation, payment_ref


def wait_for_status(context, loan_id: int, status: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        with context.sessions() as session:
            if session.scalar(select(Loan.status).where(Loan.id == loan_id)) == status:
                return
        assert time.monotonic() < deadline, f"the indexer never showed loan {loan_id} {status}"
        time.sleep(0.05)


def test_an_order_whose_loan_went_overpaid_before_it_was_read_is_settled(api, operator, borrower, driver, application,
                                                                          rail):
    _, context = api
    loan_id = borrower.apply(**application)["loan_id"]
    operator.approve(loan_id)  # orders the payout; the rail takes it (webhooks off: confirmed by hand below)
    (payout,) = rail.payouts(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-overpaid")
    driver.repay(loan_id, driver.payoff(loan_id) + 3_000, b"overpay")  # Active, then Overpaid, unread between
    wait_for_status(context, loan_id, "Overpaid")

    (order,) = operator._request("GET", "/v1/operator/payouts", params={"loan_id": loan_id})["orders"]
    assert (order["state"], order["rail_reference"]) == ("settled", payout["reference"]) and order["settled_at"]
    again = operator._request("POST", f"/v1/operator/loans/{loan_id}/disburse", idempotency_key="d-overpaid")
    assert again["state"] == "settled"
    assert len(rail.payouts(loan_id)) == 1


def test_an_order_whose_answer_was_lost_names_the_payout_the_chain_confirmed(api, operator, borrower, driver,
                                                                            application, rail):
    _, context = api
    loan_id = borrower.apply(**application)["loan_id"]
    rail.process.send_signal(signal.SIGSTOP)
    try:
        operator.approve(loan_id)  # the rail takes the order; its answer comes too late
    finally:
        rail.process.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 20
    while not rail.payouts(loan_id):
        assert time.monotonic() < deadline, "the rail never executed the order it had taken"
        time.sleep(0.05)
    (payout,) = rail.payouts(loan_id)
    # The oracle receives the rail's webhook (its outbox row keeps the rail's reference) and confirms it.
    ref = payment_ref("mockpay", payout["reference"])
    Outbox(context.sessions).put(Confirmation(
        kind="disbursement", loan_id=loan_id, reference=payout["reference"], payment_ref=ref,
        amount=payout["amount"], currency="CNY", paid_at=payout["paid_at"], provider="mockpay",
        event_id=payout["event_id"]))
    driver.disburse(loan_id, application["principal"], ref)
    wait_for_status(context, loan_id, "Active")

    (order,) = operator._request("GET", "/v1/operator/payouts", params={"loan_id": loan_id})["orders"]
    assert (order["state"], order["rail_reference"], order["attempts"]) == ("settled", payout["reference"], 1)
    assert len(rail.payouts(loan_id)) == 1

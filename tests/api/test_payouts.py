"""Payout orders against a real rail process (`loanledger rail`): a loan is paid out once, however often and
however concurrently it is asked, and a rail that stalls or dies between taking and answering an order
never gets a second order for the loan (issue 14, defects 1 and 2)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import pytest
from api_outcomes import call_status
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TIMEOUT = 1.0  # the provider's timeout in these tests, as the rail fixture's: a stalled rail answers 503 fast


def _disburse(operator, loan_id: int, key: str) -> dict:
    return operator._request("POST", f"/v1/operator/loans/{loan_id}/disburse", idempotency_key=key)


def _orders(operator, loan_id: int) -> list[dict]:
    return operator._request("GET", "/v1/operator/payouts", params={"loan_id": loan_id})["orders"]


def test_concurrent_approval_and_ten_disbursals_pay_out_once(api, operator, borrower, application, rail):
    loan_id = borrower.apply(**application)["loan_id"]
    results: list[tuple[int, str | None]] = []
    calls = [lambda: operator.approve(loan_id)] + [
        (lambda n=n: _disburse(operator, loan_id, f"d-{n}")) for n in range(10)]
    threads = [threading.Thread(target=lambda c=c: results.append(call_status(c))) for c in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # A disbursal that ran before the approval was mined is 409 not_approved; none may fail otherwise.
    assert {r for r in results} <= {(200, None), (409, "not_approved")}, results

    (payout,) = rail.payouts(loan_id)
    assert (payout["loan_id"], payout["amount"], payout["currency"]) == (loan_id, application["principal"], "CNY")
    (order,) = _orders(operator, loan_id)
    assert (order["state"], order["rail_reference"], order["amount"]) == ("sent", payout["reference"],
                                                                         application["principal"])
    assert _disburse(operator, loan_id, "d-after") == {"loan_id": loan_id, "ordered": True, "state": "sent",
                                                       "rail_reference": payout["reference"]}
    assert len(rail.payouts(loan_id)) == 1


def test_a_stalled_rail_leaves_the_order_sent_and_the_retry_reconciles_instead_of_paying_again(
        api, operator, borrower, application, rail):
    loan_id = borrower.apply(**application)["loan_id"]
    rail.process.send_signal(signal.SIGSTOP)
    try:
        operator.approve(loan_id)  # approval orders the payout; the rail takes the request but cannot answer
        (order,) = _orders(operator, loan_id)
        assert (order["state"], order["rail_reference"], order["attempts"]) == ("sent", None, 1)
        assert call_status(lambda: _disburse(operator, loan_id, "d-1")) == (503, "rail_unavailable")
        (order,) = _orders(operator, loan_id)
        assert (order["state"], order["rail_reference"], order["attempts"]) == ("sent", None, 1)  # not re-sent
        assert order["last_error"]
    finally:
        rail.process.send_signal(signal.SIGCONT)
    # The stalled order is executed once the rail resumes (a timeout is not "not ordered").
    deadline = time.monotonic() + 20
    while not rail.payouts(loan_id):
        assert time.monotonic() < deadline, "the rail never executed the order it had taken"
        time.sleep(0.05)
    (payout,) = rail.payouts(loan_id)
    answer = _disburse(operator, loan_id, "d-1")  # the advised retry: it asks the rail, it does not re-send
    assert answer == {"loan_id": loan_id, "ordered": True, "state": "sent", "rail_reference": payout["reference"]}
    (order,) = _orders(operator, loan_id)
    assert (order["rail_reference"], order["attempts"], order["last_error"]) == (payout["reference"], 1, None)
    assert len(rail.payouts(loan_id)) == 1


def test_a_rail_killed_with_an_order_in_flight_is_never_sent_a_blind_second_order(
        api, operator, borrower, application, rail):
    loan_id = borrower.apply(**application)["loan_id"]
    rail.process.send_signal(signal.SIGSTOP)
    operator.approve(loan_id)  # the order is in flight when the rail dies
    rail.stop()  # SIGKILL
    assert call_status(lambda: _disburse(operator, loan_id, "d-1")) == (503, "rail_unavailable")
    (order,) = _orders(operator, loan_id)
    assert (order["state"], order["rail_reference"], order["attempts"]) == ("sent", None, 1)  # asked, not re-sent

    rail.start()  # back on the same port; the stand-in keeps orders in memory: it never took this one
    answer = _disburse(operator, loan_id, "d-1")
    (payout,) = rail.payouts(loan_id)
    assert answer == {"loan_id": loan_id, "ordered": True, "state": "sent", "rail_reference": payout["reference"]}
    (order,) = _orders(operator, loan_id)
    assert (order["attempts"], order["rail_reference"]) == (2, payout["reference"])  # re-sent once, same key
    assert len(rail.payouts(loan_id)) == 1
    assert _disburse(operator, loan_id, "d-2")["rail_reference"] == payout["reference"]
    assert len(rail.payouts(loan_id)) == 1


def test_orders_are_settled_by_the_disbursement_on_chain_and_refused_orders_fail(
        api, operator, borrower, driver, application, rail, stack):
    loan_id = borrower.apply(**application)["loan_id"]
    operator.approve(loan_id)
    (payout,) = rail.payouts(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-settled")  # the confirmation the oracle would push
    deadline = time.monotonic() + 20
    while _orders(operator, loan_id)[0]["state"] != "settled":
        assert time.monotonic() < deadline, _orders(operator, loan_id)
        time.sleep(0.1)
    (order,) = _orders(operator, loan_id)
    assert order["settled_at"] and order["rail_reference"] == payout["reference"]
    assert _disburse(operator, loan_id, "d-settled")["state"] == "settled"
    assert len(rail.payouts(loan_id)) == 1


def test_a_loan_without_an_order_that_is_not_approved_is_409_and_records_nothing(api, operator, borrower, application,
                                                                                  rail):
    loan_id = borrower.apply(**application)["loan_id"]
    assert call_status(lambda: _disburse(operator, loan_id, "d-1")) == (409, "not_approved")
    assert _orders(operator, loan_id) == []
    assert rail.payouts(loan_id) == []


def test_a_loan_cancelled_while_its_order_was_unanswered_is_cancelled_once_the_rail_says_it_never_took_it(
        api, operator, borrower, application, rail):
    loan_id = borrower.apply(**application)["loan_id"]
    rail.process.send_signal(signal.SIGSTOP)
    operator.approve(loan_id)
    rail.stop()  # the order dies with the rail
    borrower.cancel(loan_id)
    (order,) = _orders(operator, loan_id)
    assert order["state"] == "sent"  # it may have been taken: not cancelled until the rail says
    rail.start()
    assert _disburse(operator, loan_id, "d-1") == {"loan_id": loan_id, "ordered": False, "state": "cancelled",
                                                   "rail_reference": None}
    (order,) = _orders(operator, loan_id)
    assert (order["state"], order["attempts"]) == ("cancelled", 1) and order["cancelled_at"]
    assert rail.payouts(loan_id) == []


@pytest.fixture
def tradepay(api, serve_app):
    """A provider in the hmac_json layout (no order lookup): its first answer comes too late (the order
    was taken), and while `refuse` is set it refuses every order (422)."""
    _, context = api
    seen: list[tuple[str, dict]] = []
    behaviour = {"slow": 1, "refuse": False}
    app = FastAPI()

    @app.post("/v1/transfers")
    async def transfers(request: Request):
        seen.append((request.headers["idempotency-key"], await request.json()))
        if behaviour["refuse"]:
            return JSONResponse({"error": "account closed"}, status_code=422)
        if behaviour["slow"]:
            behaviour["slow"] -= 1
            await asyncio.sleep(TIMEOUT * 2)  # taken, but answered after the caller gave up
        return JSONResponse({"trade_no": "T-0001", "status": "PROCESSING"},
                            headers={"Idempotent-Replayed": "true"} if len(seen) > 1 else {})

    with serve_app(app) as url:
        context.settings = context.settings.model_copy(update={"payment_providers": {
            "tradepay": {"kind": "hmac_json", "url": url, "timeout": TIMEOUT}}})
        yield seen, behaviour


def test_a_provider_without_lookup_is_re_sent_the_same_key_and_a_refusal_fails_the_order(
        api, operator, borrower, application, tradepay):
    seen, behaviour = tradepay
    loan_id = borrower.apply(**application)["loan_id"]
    operator.approve(loan_id)  # the answer comes too late: the order stays sent
    (order,) = _orders(operator, loan_id)
    assert (order["provider"], order["state"], order["rail_reference"]) == ("tradepay", "sent", None)
    answer = _disburse(operator, loan_id, "d-1")  # no lookup: re-sent with the key the provider honours
    assert answer == {"loan_id": loan_id, "ordered": True, "state": "sent", "rail_reference": "T-0001"}
    assert [key for key, _ in seen] == [order["idempotency_key"]] * 2

    refused = borrower.apply(**application)["loan_id"]
    behaviour["refuse"] = True
    operator.approve(refused)
    (order,) = _orders(operator, refused)
    assert (order["state"], order["rail_reference"]) == ("failed", None) and "account closed" in order["last_error"]
    assert _disburse(operator, refused, "d-2")["state"] == "failed"  # answered, not sent again
    assert len(seen) == 3


def test_a_returned_payout_fails_its_order_and_only_an_explicit_retry_orders_it_again(
        api, operator, borrower, driver, application, rail, stack, w3, keys):
    import httpx

    from ledger.chain import ChainClient
    from oracle.outbox import Outbox, OutboxWorker
    from oracle.payments.webhook import Confirmation, payment_ref

    outbox = Outbox(api[1].sessions)
    worker = OutboxWorker(outbox, ChainClient(w3, keys["oracle"], stack.errors), stack.book)

    def confirm(kind: str, reference: str, reverses: str | None = None) -> None:
        outbox.put(Confirmation(kind=kind, loan_id=loan_id, reference=reference, amount=application["principal"],
                                payment_ref=payment_ref("mockpay", reference), currency="CNY", paid_at=driver.now,
                                provider="mockpay", event_id=f"evt-{reference}", reverses=reverses))
        worker.drain_once()
        assert [i.outcome for i in outbox.items() if i.reference == reference] == ["credited"]

    def order_in(state: str) -> dict:
        deadline = time.monotonic() + 20
        while (order := _orders(operator, loan_id)[0])["state"] != state:
            assert time.monotonic() < deadline, order
            time.sleep(0.1)
        return order

    loan_id = borrower.apply(**application)["loan_id"]
    operator.approve(loan_id)
    (payout,) = rail.payouts(loan_id)
    confirm("disbursement", payout["reference"])
    first = order_in("settled")
    returned = httpx.post(f"{rail.url}/v1/payments/{payout['reference']}/return", timeout=10).json()
    assert (returned["kind"], returned["payment_reference"]) == ("return", payout["reference"])
    confirm("payout_reversal", returned["reference"], reverses=payout["reference"])

    failed = order_in("failed")
    assert failed["failed_at"] and "returned by the receiving bank" in failed["last_error"]
    assert _disburse(operator, loan_id, "d-again") == {"loan_id": loan_id, "ordered": False, "state": "failed",
                                                       "rail_reference": payout["reference"]}
    assert len(rail.payouts(loan_id)) == 1  # asking again answers the failed order: nothing re-sent

    retried = operator._request("POST", f"/v1/operator/loans/{loan_id}/disburse", idempotency_key="d-retry",
                                params={"retry": "true"})
    second = rail.payouts(loan_id)
    assert len(second) == 2 and retried["state"] == "sent" and retried["rail_reference"] == second[1]["reference"]
    (order,) = _orders(operator, loan_id)
    assert (order["state"], order["idempotency_key"]) == ("sent", f"{first['idempotency_key']}:retry1")
    assert call_status(lambda: operator._request("POST", f"/v1/operator/loans/{loan_id}/disburse",
                                             idempotency_key="d-retry-2", params={"retry": "true"})) == (
        409, "payout_not_failed")  # the order is not failed: a second retry re-orders nothing
    assert len(rail.payouts(loan_id)) == 2

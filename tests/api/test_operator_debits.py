"""Every automatic debit, for operators (`GET /v1/operator/debits`): what the real collection run recorded against a
real chain and the rail stand-in (a card short of funds: two retries by the policy, then set aside), paged by cursor
like the audit lists, filtered by state and loan; refusals by name."""

from __future__ import annotations

import pytest
from api_outcomes import api_error
from fastapi.testclient import TestClient

from oracle.collections import DAY, FAILED, SET_ASIDE, CollectionRun
from oracle.payments.rail import PaymentRail, create_app
from oracle.payments.signatures import RsaScheme


@pytest.fixture
def declined_three_times(api, borrower, application, driver) -> tuple[int, int]:
    """(loan id, first due date): a mandated loan whose card is short of funds on the due date and both retries."""
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-operator-debits")
    assert api[1].wait_indexed(driver.w3.eth.block_number)
    card = borrower.sign_debit_mandate(loan_id, 10**9, 2**39)["card"]
    due_at = borrower.loan(loan_id)["schedule"][0]["due_at"]
    rail = PaymentRail(provider="mockpay", scheme=RsaScheme.generate(), webhook_url=None)
    with TestClient(create_app(rail), base_url="http://rail") as http:
        assert http.put(f"/v1/cards/{card[-4:]}/funds", json={"sufficient": False}).status_code == 200
        run = CollectionRun(api[1].sessions, api[1].bindings.book, http)
        for at in (due_at, due_at + DAY):  # the due date, then the policy's first retry
            assert len(run.run_once(at).declined) == 1
        assert len(run.run_once(due_at + 4 * DAY).set_aside) == 1  # the second retry declined too: set aside
    return loan_id, due_at


def test_operators_page_through_every_debit_with_its_state_retry_and_set_aside(api, operator, borrower,
                                                                               declined_three_times, application):
    loan_id, due_at = declined_three_times
    first = operator.debits(limit=2)
    assert [(d["loan_id"], d["attempt"], d["state"], d["set_aside"]) for d in first["debits"]] == [
        (loan_id, 1, FAILED, False), (loan_id, 2, FAILED, False)]
    assert [(d["due_at"], d["retry_at"], d["reason"]) for d in first["debits"]] == [
        (due_at, due_at + DAY, "insufficient_funds"), (due_at, due_at + 4 * DAY, "insufficient_funds")]
    owed = first["debits"][0]["amount"]
    assert owed > 0 and first["debits"][0]["currency"] == "CNY"
    assert first["debits"][0]["key"] == f"debit-{first['debits'][0]['mandate_id']}-{due_at}-1"
    rest = operator.debits(limit=2, cursor=first["next_cursor"])
    ((last),) = rest["debits"]
    assert (last["attempt"], last["state"], last["set_aside"], rest["next_cursor"]) == (3, SET_ASIDE, True, None)
    # What needs a person, and one loan's.
    assert [d["id"] for d in operator.debits(state=SET_ASIDE)["debits"]] == [last["id"]]
    assert len(operator.debits(loan_id=loan_id)["debits"]) == 3 and operator.debits(loan_id=loan_id + 1)["debits"] == []

    bad = api_error(operator.debits, state="lost")
    assert (bad.status, bad.code) == (422, "invalid_state") and "set_aside" in bad.message
    assert api_error(operator.debits, cursor="not-a-cursor").code == "invalid_cursor"
    assert api_error(borrower.debits).status == 403  # a borrower reads their own loan's debits only

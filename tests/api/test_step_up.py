"""Step-up codes (issue 17): applying, changing the phone, asking for and accepting a reschedule each need a fresh
code texted to the borrower's verified phone, bound to that action and its parameters, single use, five minutes.

Each protected route refuses without a code, with a wrong one, with one for other parameters or another action,
with a used one and with an expired one (the service's clock moved past its five minutes), each by name and
changing nothing; it accepts the right one once. Codes are read off the development SMS outbox, as a borrower
reads their phone."""

from __future__ import annotations

import logging

import pytest
import step_up_codes
from api_outcomes import api_error

from api.client import LoanLedgerClient
from api.ratelimit import RateLimiter
from api.stepup import TTL, StepUpService, binding, protected_actions
from ledger.samples import sample_identity

DAY = 86_400


def bare(http, client) -> LoanLedgerClient:
    """The same signed-in borrower without the outbox reader: every code is the test's to give."""
    return LoanLedgerClient("http://testserver", client.account, http=http, token=client.token)


def refused(call, status: int, code: str) -> None:
    error = api_error(call)
    assert (error.status, error.code) == (status, code), error


def later(app, seconds: int):
    """The step-up service's clock `seconds` ahead (as the OTP tests move the OTP service's)."""
    service = app.state.step_up
    now = service.clock
    service.clock = lambda: now() + seconds
    return lambda: setattr(service, "clock", now)


def check_every_refusal(app, client, action: str, params: dict, other: dict, call, unchanged) -> None:
    """`call(code)` runs the protected request with `code`; `unchanged()` asserts it did nothing. Every refusal,
    then the right code once."""
    ask = lambda **p: step_up_codes.code_for(app, client, action, **p)
    refused(lambda: call(None), 428, "step_up_required")
    unchanged()
    right = ask(**params)
    refused(lambda: call("000000" if right != "000000" else "111111"), 422, "step_up_wrong")
    unchanged()
    ask(**other)  # a code for other parameters (it retires `right`)
    refused(lambda: call(step_up_codes.read_code(app, client.account.address)), 422, "step_up_other_action")
    unchanged()
    other_action = "reschedule_accept" if action != "reschedule_accept" else "debit_mandate"
    client.step_up(other_action, loan_id=1)
    refused(lambda: call(step_up_codes.read_code(app, client.account.address)), 422, "step_up_other_action")
    unchanged()
    refused(lambda: call(right), 422, "step_up_used")  # retired by the newer codes
    unchanged()
    stale = ask(**params)
    restore = later(app, TTL + 1)
    try:
        refused(lambda: call(stale), 422, "step_up_expired")
    finally:
        restore()
    unchanged()
    fresh = ask(**params)
    call(fresh)  # accepted
    return fresh


# ------------------------------------------------------------------ the binding


def test_the_binding_is_the_action_and_its_canonical_parameters():
    apply = {"product_id": 1, "principal": 100_000, "installments": 3}
    assert binding("apply", apply) == binding("apply", {k: str(v) for k, v in apply.items()})
    assert binding("apply", apply) != binding("apply", {**apply, "principal": 1_000_000})
    assert binding("apply", apply) != binding("reschedule_request", {"loan_id": 1, "installments": 3})
    assert binding("phone_change", {"phone": "13912345678"}) == binding("phone_change", {"phone": "+86 139 1234 5678"})
    with pytest.raises(Exception, match="exactly"):
        binding("apply", {"product_id": 1, "principal": 100_000})  # a parameter left out binds nothing


def test_the_setting_names_the_protected_actions_and_warns_about_each_left_out(caplog):
    assert protected_actions("apply, phone_change") == {"apply", "phone_change"}
    with pytest.raises(ValueError, match="aply"):
        protected_actions("aply")  # a typo must not unprotect an action silently
    with caplog.at_level(logging.WARNING, logger="api.stepup"):
        StepUpService(None, None, None, b"k", protected_actions("phone_change"))
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "OFF for apply" in warned and "OFF for reschedule_accept" in warned and "phone_change" not in warned


# ------------------------------------------------------------------ the protected routes


def test_applying_needs_a_code_for_exactly_that_application(api, http, borrower, application, stack):
    app, _ = api
    client = bare(http, borrower)
    params = {k: application[k] for k in ("product_id", "principal", "installments")}
    count = stack.book.functions.loanCount().call()

    def unchanged():
        assert stack.book.functions.loanCount().call() == count

    def call(code):
        return client.apply(**application, step_up_code=code, idempotency_key=f"k-{code}")

    check_every_refusal(app, client, "apply", params, {**params, "principal": params["principal"] * 10}, call,
                        unchanged)
    assert stack.book.functions.loanCount().call() == count + 1
    sms = app.state.sms.messages(sample_identity(11)["phone"])[-1]["text"]
    assert "(step_up)" in sms and f"apply for {params['principal']}" in sms  # the SMS says what it authorises


def test_a_used_code_is_refused_but_the_same_request_retried_gets_its_first_answer(api, http, borrower, application,
                                                                                    stack):
    app, _ = api
    client = bare(http, borrower)
    body = _signed_body(client, application)
    code = step_up_codes.apply_code(app, client, body)
    first = client._request("POST", "/v1/loans", idempotency_key="once", json_body=body, step_up_code=code)
    count = stack.book.functions.loanCount().call()
    # The same request (same key, same code) again, as the SDK retries after a timeout: its first answer.
    again = client._request("POST", "/v1/loans", idempotency_key="once", json_body=body, step_up_code=code, raw=True)
    assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (201, first, "true")
    # Another request with the spent code: refused by name, nothing relayed.
    refused(lambda: client._request("POST", "/v1/loans", idempotency_key="twice", json_body=body, step_up_code=code),
            422, "step_up_used")
    assert stack.book.functions.loanCount().call() == count


def _signed_body(client, application) -> dict:
    from ledger import typed_data
    params = client._request("GET", "/v1/loans/request-params")
    message = typed_data.loan_application(
        chain_id=params["chain_id"], book=params["loan_book"], borrower=client.account.address,
        product_id=application["product_id"], product_version=1, principal=application["principal"],
        installments=application["installments"], nonce=params["nonce"], deadline=params["deadline"])
    return {"product_id": application["product_id"], "product_version": 1, "principal": application["principal"],
            "installments": application["installments"], "deadline": params["deadline"],
            "signature": "0x" + typed_data.sign(client.account.key, message).hex()}


def test_changing_the_phone_needs_a_code_to_the_verified_phone_for_that_number(api, http, borrower):
    app, context = api
    client = bare(http, borrower)
    old = context.vault.get(borrower.account.address).phone
    new, other = "+8613900001111", "+8613900002222"

    def unchanged():
        assert context.vault.get(borrower.account.address).phone == old
        assert not any(m for m in app.state.sms.messages(new) if "(phone_change)" in m["text"])

    def call(code):
        return client.change_phone(new, step_up_code=code)

    check_every_refusal(app, client, "phone_change", {"phone": new}, {"phone": other}, call, unchanged)
    assert app.state.sms.last_code(new, "phone_change")  # accepted: the new number gets its own code
    assert all("(step_up)" not in m["text"] for m in app.state.sms.messages(new))  # step-up codes: the old phone


@pytest.fixture
def active_loan(api, borrower, application, driver) -> int:
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-step-up")
    assert api[1].wait_indexed(driver.w3.eth.block_number)
    return loan_id


def test_asking_for_and_accepting_a_reschedule_need_codes_for_that_loan(api, http, borrower, operator, active_loan,
                                                                        driver):
    app, _ = api
    client = bare(http, borrower)

    def asked():
        return borrower.reschedule(active_loan)["requests"]

    def no_request():
        assert asked() == []

    check_every_refusal(app, client, "reschedule_request", {"loan_id": active_loan, "installments": 6},
                        {"loan_id": active_loan, "installments": 12},
                        lambda code: client.request_reschedule(active_loan, 6, "illness", step_up_code=code),
                        no_request)
    assert [r["installments"] for r in asked()] == [6]

    operator.offer_reschedule(active_loan, 6, driver.now + 7 * DAY)

    def still_three():
        assert len(borrower.loan(active_loan)["schedule"]) == 3

    app.state.step_up.limiter = RateLimiter()  # a new sending window, as ten minutes later
    check_every_refusal(app, client, "reschedule_accept", {"loan_id": active_loan}, {"loan_id": active_loan + 1},
                        lambda code: client.accept_reschedule(active_loan, step_up_code=code), still_three)
    assert len(borrower.loan(active_loan)["schedule"]) == 6


# ------------------------------------------------------------------ sending


def test_sending_is_rate_limited_per_borrower_with_retry_after(api, http, borrower, application):
    client = bare(http, borrower)
    for n in range(10):
        client.step_up("apply", product_id=application["product_id"], principal=1_000 + n, installments=3)
    error = api_error(client.step_up, "apply", product_id=application["product_id"], principal=5_000, installments=3)
    assert error.status == 429 and error.retry_after and 0 < error.retry_after <= 601


def test_a_code_goes_only_to_a_verified_phone_and_never_in_the_answer(api, http, borrower, client_for, keys,
                                                                      application):
    answer = bare(http, borrower).step_up("reschedule_accept", loan_id=1)
    assert "****" in answer["sent_to"] and answer["header"] == "X-Step-Up-Code"  # masked
    code = step_up_codes.read_code(api[0], borrower.account.address)
    assert code not in str(answer)
    stranger = client_for(keys["bob"])  # signed in, never verified: no phone to text
    assert api_error(stranger.step_up, "reschedule_accept", loan_id=1).code == "not_verified"
    bad = api_error(bare(http, borrower).step_up, "apply", product_id=1)
    assert (bad.status, bad.code) == (422, "invalid_step_up_params")

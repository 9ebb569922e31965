"""What one borrower can make the lender pay for: applications per hour and open applications, both refused with a
429 naming the limit and a Retry-After before anything is relayed (the loan book's loanCount does not move).

The limits are set low per test through the settings (applications_per_hour, open_applications).
"""

from __future__ import annotations

import threading

import pytest
import step_up_codes

from api import idempotency
from api.client import ApiError
from api.errors import ApiError as ServerError
from api.ratelimit import RateLimiter
from ledger import typed_data


def _limits(context, *, per_hour: int = 100, open_: int = 100) -> None:
    context.settings = context.settings.model_copy(update={"applications_per_hour": per_hour,
                                                           "open_applications": open_})


def _post(http, client, application: dict, key: str):
    """`POST /v1/loans` as `client` signs it now (the book's current nonce), answered as is (headers included)."""
    params = client._request("GET", "/v1/loans/request-params")
    message = typed_data.loan_application(
        chain_id=params["chain_id"], book=params["loan_book"], borrower=client.account.address,
        product_id=application["product_id"], product_version=1, principal=application["principal"],
        installments=application["installments"], nonce=params["nonce"], deadline=params["deadline"])
    body = {"product_id": application["product_id"], "product_version": 1, "principal": application["principal"],
            "installments": application["installments"], "deadline": params["deadline"],
            "signature": "0x" + typed_data.sign(client.account.key, message).hex()}
    return body, http.post("/v1/loans", json=body, headers={"authorization": f"Bearer {client.token}",
                                                            "idempotency-key": key,
                                                            **step_up_codes.apply_header(http.app, client, body)})


def _refused(answer, code: str) -> str:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == code
    return answer.json()["error"]["message"]


@pytest.fixture
def bob(client_for, kyc, keys, driver):
    """A second verified, registered and scored borrower."""
    client = client_for(keys["bob"])
    kyc(client, 12)
    client.login()
    driver.score(keys["bob"], report_id=2)
    return client


def test_the_application_over_the_hourly_limit_is_429_with_retry_after_and_nothing_on_chain(
        api, http, borrower, bob, application, stack):
    _, context = api
    _limits(context, per_hour=2)
    body, first = _post(http, borrower, application, "first")
    assert first.status_code == 201
    forged_body = {**body, "principal": body["principal"] + 1}
    forged = http.post("/v1/loans", json=forged_body,
                       headers={"authorization": f"Bearer {borrower.token}", "idempotency-key": "forged",
                                **step_up_codes.apply_header(http.app, borrower, forged_body)})
    assert forged.status_code == 422  # a tampered application is refused unrelayed: it spends no slot of the hour
    assert borrower.apply(**application)["loan_id"] == 2
    count = stack.book.functions.loanCount().call()

    _, answer = _post(http, borrower, application, "third")
    message = _refused(answer, "too_many_applications")
    assert "2 per 1 hour" in message
    wait = int(answer.headers["retry-after"])
    assert 3_500 < wait <= 3_601 and f"{wait} s" in message
    assert stack.book.functions.loanCount().call() == count  # nothing relayed
    with pytest.raises(ApiError) as refused:  # the SDK says how long to wait
        borrower.apply(**application)
    assert (refused.value.status, refused.value.code) == (429, "too_many_applications")
    assert 3_500 < refused.value.retry_after <= 3_601

    assert bob.apply(**application)["loan_id"] == count + 1  # another borrower has their own window


def test_an_idempotent_replay_does_not_count_and_a_refused_key_is_not_stored(api, http, borrower, application, stack):
    _, context = api
    _limits(context, per_hour=2)
    body, first = _post(http, borrower, application, "same")
    assert first.status_code == 201
    code = first.request.headers["x-step-up-code"]  # the same request again: the code it spent lets it through
    for _ in range(3):  # replays: the first answer, not new applications
        again = http.post("/v1/loans", json=body, headers={"authorization": f"Bearer {borrower.token}",
                                                           "idempotency-key": "same", "x-step-up-code": code})
        assert (again.status_code, again.json()["loan_id"], again.headers.get("idempotent-replayed")) == (
            201, first.json()["loan_id"], "true")
    assert borrower.apply(**application)["loan_id"] == 2  # the second of two this hour
    _, refused = _post(http, borrower, application, "third")
    _refused(refused, "too_many_applications")
    assert stack.book.functions.loanCount().call() == 2


def test_open_applications_are_limited_and_a_cancellation_or_a_decision_frees_a_slot(
        api, http, borrower, bob, operator, application, stack):
    _, context = api
    _limits(context, open_=2)
    first, second = borrower.apply(**application)["loan_id"], borrower.apply(**application)["loan_id"]

    body, answer = _post(http, borrower, application, "over")
    code = answer.request.headers["x-step-up-code"]
    message = _refused(answer, "too_many_open_applications")
    assert "at most 2" in message and "cancel" in message
    assert int(answer.headers["retry-after"]) > 0
    assert stack.book.functions.loanCount().call() == 2
    assert bob.apply(**application)["loan_id"] == 3  # bob's open applications are his own

    operator.reject(first, "test")  # a decision frees a slot: the refused key runs now (it was not stored)
    retried = http.post("/v1/loans", json=body, headers={"authorization": f"Bearer {borrower.token}",
                                                         "idempotency-key": "over", "x-step-up-code": code})
    assert (retried.status_code, retried.json()["loan_id"]) == (201, 4)
    _refused(_post(http, borrower, application, "over-again")[1], "too_many_open_applications")

    borrower.cancel(second)  # so does a cancellation
    assert borrower.apply(**application)["loan_id"] == 5


def test_an_application_still_being_relayed_counts_as_open(api, http, borrower, application, stack, monkeypatch):
    """A second application while the first is being relayed (signed, not yet sent): neither the chain nor the read
    model shows the first, its claim in the store does, so the second is refused."""
    _, context = api
    _limits(context, open_=1)
    sending, release = threading.Event(), threading.Event()
    record_tx = idempotency.Claim.record_tx

    def slow_send(claim, tx_hash: str) -> None:
        record_tx(claim, tx_hash)
        if claim.key == "first":
            sending.set()
            release.wait(10)

    monkeypatch.setattr(idempotency.Claim, "record_tx", slow_send)
    answers: dict = {}
    first = threading.Thread(target=lambda: answers.update(first=_post(http, borrower, application, "first")[1]))
    first.start()
    try:
        assert sending.wait(30)
        _refused(_post(http, borrower, application, "second")[1], "too_many_open_applications")
        assert stack.book.functions.loanCount().call() == 0
    finally:
        release.set()
        first.join(60)
    assert answers["first"].status_code == 201
    assert stack.book.functions.loanCount().call() == 1


def test_parallel_applications_do_not_pass_the_open_limit(api, http, borrower, application, stack):
    _, context = api
    _limits(context, open_=2)
    borrower.apply(**application)
    statuses: list[int] = []

    def apply(n: int) -> None:
        # Each signs the nonce it reads; a nonce another thread spent meanwhile is refused (409/422): sign again.
        for attempt in range(4):
            _, answer = _post(http, borrower, application, f"parallel-{n}-{attempt}")
            statuses.append(answer.status_code)
            if answer.status_code not in (409, 422):
                return

    threads = [threading.Thread(target=apply, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert statuses.count(201) <= 1 and 429 in statuses, statuses
    assert stack.book.functions.loanCount().call() == 1 + statuses.count(201)  # at most the 2 open allowed


def test_every_documented_429_says_retry_after_and_the_application_route_documents_its_429(offline_app):
    spec = offline_app.openapi()
    too_many = {f"{method.upper()} {path}": operation["responses"]["429"]
                for path, operations in spec["paths"].items() for method, operation in operations.items()
                if "429" in operation["responses"]}
    assert {"POST /v1/loans", "POST /v1/auth/login"} <= set(too_many)
    assert all("Retry-After" in response.get("headers", {}) for response in too_many.values()), too_many
    assert "too_many_open_applications" in too_many["POST /v1/loans"]["description"]


def test_the_sign_in_and_code_limits_say_when_to_retry_too():
    limiter = RateLimiter()
    for _ in range(6):
        limiter.hit("otp_send_phone", "+8613800000000")
    with pytest.raises(ServerError) as refused:
        limiter.hit("otp_send_phone", "+8613800000000")
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert 0 < int(refused.value.headers["retry-after"]) <= 601
    assert f"{refused.value.headers['retry-after']} s" in refused.value.message

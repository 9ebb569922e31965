"""Applications relayed, the approval policy, operator actions, idempotency, and a chain that is down."""

from __future__ import annotations

import step_up_codes
from api_outcomes import api_error
from web3 import Web3

from ledger import typed_data
from oracle.payments.rail import PaymentRail, create_app
from oracle.payments.signatures import RsaScheme

DAY = 86_400


def _signed_body(borrower, application) -> dict:
    """The body of `POST /v1/loans`: `application` (latest version) signed by `borrower` with their next nonce."""
    params = borrower._request("GET", "/v1/loans/request-params")
    signed = {"product_version": 1, **application}
    message = typed_data.loan_application(
        chain_id=params["chain_id"], book=params["loan_book"], borrower=borrower.account.address,
        product_id=signed["product_id"], product_version=signed["product_version"], principal=signed["principal"],
        installments=signed["installments"], nonce=params["nonce"], deadline=params["deadline"])
    return {**signed, "deadline": params["deadline"],
            "signature": "0x" + typed_data.sign(borrower.account.key, message).hex()}


def test_the_same_idempotency_key_returns_the_first_answer_and_opens_one_loan(api, http, borrower, stack, application):
    body = _signed_body(borrower, application)
    headers = {"authorization": f"Bearer {borrower.token}", "idempotency-key": "apply-1",
               **step_up_codes.apply_header(http.app, borrower, body)}
    first = http.post("/v1/loans", json=body, headers=headers)
    again = http.post("/v1/loans", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert stack.book.functions.loanCount().call() == 1
    other_body = _signed_body(borrower, {**application, "installments": 6})
    other = http.post("/v1/loans", json=other_body,
                      headers={**headers, **step_up_codes.apply_header(http.app, borrower, other_body)})
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert stack.book.functions.loanCount().call() == 1
    no_key = http.post("/v1/loans", json=body, headers={"authorization": f"Bearer {borrower.token}"})
    assert (no_key.status_code, no_key.json()["error"]["code"]) == (400, "idempotency_key_required")


def test_policy_approves_within_limit_and_rejects_over_limit_and_stale_scores(api, operator, client_for, kyc, keys,
                                                                               driver, stack, application, w3, policy):
    operator.set_auto_approve(True)
    alice = client_for(keys["alice"])
    kyc(alice, 12)
    alice.login()
    driver.score(keys["alice"], limit=200_000)
    approved = alice.apply(**application)
    assert (approved["status"], approved["decision"]) == ("Requested", None)  # the policy's process decides
    assert policy().decided == {approved["loan_id"]: "approved"}
    over = alice.apply(**{**application, "principal": 100_000})  # 120,000 + 100,000 > 200,000
    assert policy().decided == {over["loan_id"]: "rejected:over_limit"}
    assert alice.loan(over["loan_id"])["status"] == "Rejected"

    bob = client_for(keys["bob"])
    kyc(bob, 13)
    bob.login()
    driver.score(keys["bob"], report_id=2)
    driver.advance(31 * DAY)  # the score is now older than the 30-day maximum
    stale = bob.apply(**application)
    assert policy().decided == {stale["loan_id"]: "rejected:stale_score"}
    states = [stack.book.functions.loanOf(i).call()[2] for i in (1, 2, 3)]
    assert states == [2, 3, 3]  # Approved, Rejected, Rejected
    assert bob.loan(stale["loan_id"])["status"] == "Rejected"
    (rejected,) = stack.book.events.LoanRejected().get_logs(from_block=0, argument_filters={"loanId": 3})
    assert (rejected.args.reason.rstrip(b"\0"), rejected.args.actor) == (b"stale_score", keys["policy"].address)


def test_operator_approves_and_rejects_by_hand_and_a_borrower_cannot(api, operator, borrower, stack, application):
    first = borrower.apply(**application)["loan_id"]
    second = borrower.apply(**{**application, "principal": 50_000})["loan_id"]
    assert api_error(borrower.approve, first).status == 403
    assert operator.approve(first)["decision"] == "approved"
    operator.reject(second, "documents")
    assert [stack.book.functions.loanOf(i).call()[2] for i in (first, second)] == [2, 3]
    assert api_error(operator.approve, second).code == "loan_book_invalid_status"


def test_cancel_before_disbursement_with_the_borrowers_signature(api, borrower, stack, application):
    loan_id = borrower.apply(**application)["loan_id"]
    borrower.cancel(loan_id)
    assert stack.book.functions.loanOf(loan_id).call()[2] == 4  # Cancelled
    assert borrower.loan(loan_id)["status"] == "Cancelled"


def test_what_is_due_comes_from_the_contract_at_chain_time(api, borrower, driver, keys, stack, application):
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-due")
    driver.advance(40 * DAY)  # first installment 10 days late: late fee and penalty
    due = borrower.due(loan_id)
    view = stack.book.functions.amountDue(loan_id, due["as_of"]).call()
    assert [due["principal"], due["interest"], due["late_fee"], due["penalty"]] == list(view[:4])
    assert due["late_fee"] > 0 and due["penalty"] > 0
    assert due["payoff"] == stack.book.functions.payoffAmount(loan_id, due["as_of"]).call()
    instructions = borrower.repayment_instructions(loan_id)
    assert instructions["body"] == {"loan_id": loan_id, "amount": due["total"], "currency": "CNY"}




def test_after_a_payment_ahead_of_schedule_the_next_date_asks_what_the_book_says(
        api, borrower, driver, stack, application):
    _, context = api
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-ahead")
    driver.advance(10 * DAY)
    driver.repay(loan_id, 60_000, b"repay-ahead")  # pays installment 1 ahead of its date and prepays principal
    assert context.wait_indexed(stack.book.w3.eth.block_number)
    due = borrower.due(loan_id)
    loan = borrower.loan(loan_id)
    assert (due["total"], loan["paid_installments"]) == (0, 1)
    second = next(r for r in loan["schedule"] if r["number"] == 2)
    assert due["next_due_at"] == second["due_at"] > due["as_of"]
    assert due["owed_at_next_due"] == sum(stack.book.functions.amountDue(loan_id, second["due_at"]).call()[:4])
    # Installment 1 was paid 20 days early: those days' interest on the principal still owed is carried into
    # installment 2, so the book asks more than the plan's row.
    assert due["owed_at_next_due"] > second["principal"] + second["interest"]
def test_payout_with_the_rail_down_is_503_and_the_key_can_be_retried(api, operator, borrower, application):
    loan_id = borrower.apply(**application)["loan_id"]
    operator.approve(loan_id)
    key = "payout-1"
    for _ in range(2):  # a 503 frees the key: the retry runs again (and fails again: the rail is still down)
        error = api_error(operator._request, "POST", f"/v1/operator/loans/{loan_id}/disburse", idempotency_key=key)
        assert (error.status, error.code) == (503, "rail_unavailable")


def test_a_payout_is_ordered_once_from_the_configured_provider_however_often_it_is_asked(
        api, operator, borrower, application, serve_app):
    _, context = api
    rail = PaymentRail("mockpay", RsaScheme.generate())  # no webhook URL: the payout stays with the rail
    with serve_app(create_app(rail)) as url:
        context.settings = context.settings.model_copy(update={"rail_url": url})  # the stand-in is the default provider
        loan_id = borrower.apply(**application)["loan_id"]
        operator.approve(loan_id)  # approving orders the payout
        first = operator._request("POST", f"/v1/operator/loans/{loan_id}/disburse", idempotency_key="d-1")
        again = operator._request("POST", f"/v1/operator/loans/{loan_id}/disburse", idempotency_key="d-2")
    (payment,) = rail.payments.values()  # three orders, one payout: the order's key names the loan
    assert (payment.direction, payment.loan_id, payment.amount, payment.currency) == (
        "payout", loan_id, application["principal"], "CNY")
    assert first == again == {"loan_id": loan_id, "ordered": True, "state": "sent",
                              "rail_reference": payment.reference}


def test_pause_stops_applications_with_a_clear_error(api, client_for, keys, borrower, stack, application):
    assert api_error(borrower.pause).status == 403
    pauser = client_for(keys["pauser"])
    assert len(pauser.pause()) == len(stack.all) == 6  # one transaction per contract (FourEyes' too)
    error = api_error(borrower.apply, **application)
    assert (error.status, error.code) == (503, "enforced_pause")
    pauser.unpause()
    assert borrower.apply(**application)["status"] == "Requested"


def test_roles_granted_and_revoked_through_the_api_take_effect(api, client_for, keys, stack):
    admin = client_for(keys["admin"])
    carol = keys["carol"].address
    admin.grant_role("operator", carol)
    role = stack.book.functions.OPERATOR_ROLE().call()
    # Where a contract checks it, as the deploy grants it: the registry and the book; not the credit oracle or the
    # catalogue (which check no operator: FourEyes changes products), nor the anchor (the oracle's alone), nor
    # FourEyes, whose operators only two admins name (a FourEyes proposal).
    held = {c.address: c.functions.hasRole(role, carol).call() for c in stack.all}
    checked = {stack.registry.address, stack.book.address}
    assert held == {c.address: c.address in checked for c in stack.all}
    assert "operator" in client_for(keys["carol"]).me()["roles"]
    admin.revoke_role("operator", carol)
    assert not any(c.functions.hasRole(role, carol).call() for c in stack.all)


def test_rotating_the_score_signer(api, client_for, keys, stack):
    admin = client_for(keys["admin"])
    role = stack.oracle.functions.SCORE_SIGNER_ROLE().call()
    old, new = keys["signer"].address, keys["dave"].address
    admin.rotate_signer(old, new)
    assert stack.oracle.functions.hasRole(role, new).call() and not stack.oracle.functions.hasRole(role, old).call()


def test_a_node_that_is_down_is_503_never_a_stack_trace(api, http, borrower):
    _, context = api
    context.w3.provider.endpoint_uri = "http://127.0.0.1:9"
    context.w3.provider.cache_allowed_requests = False
    api[0].state.roles.forget()
    answer = http.get("/v1/loans/1/due", headers={"authorization": f"Bearer {borrower.token}"})
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "node_unavailable" and "Traceback" not in answer.text
    ready = http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["node"].startswith("unavailable")


def test_an_unknown_loan_is_404(api, borrower, client_for, keys):
    assert api_error(borrower.loan, 999).status == 404
    assert api_error(borrower.due, 999).code == "not_found"


def test_health_readiness_metrics_and_request_ids(api, http, borrower):
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz").json()
    assert ready["ready"] and set(ready["checks"]) == {"store", "node", "deployment", "indexer"}
    answer = http.get("/v1/loans", headers={"authorization": f"Bearer {borrower.token}", "x-request-id": "req-42"})
    assert answer.headers["x-request-id"] == "req-42"
    metrics = http.get("/metrics").text
    assert 'loanledger_http_requests_total{method="GET",route="/v1/loans",status="200"}' in metrics
    assert Web3.is_address(borrower.account.address)


def test_default_declared_then_written_off_through_the_api(api, operator, borrower, driver, stack, application,
                                                           client_for, keys):
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-default")
    early = api_error(operator.declare_default, loan_id, idempotency_key="default-early")
    assert (early.status, early.code) == (409, "loan_book_not_in_default")
    driver.advance(121 * DAY)  # 91 days past the first due date
    # A retry sends the same signed request under the same key: the first answer, one default.
    (signed,) = operator.sign_prepared(operator.prepare("loan.declare_default", loan_id=loan_id))
    path = f"/v1/operator/loans/{loan_id}/declare-default"
    first = operator._request("POST", path, json_body=signed, idempotency_key="d-1")
    again = operator._request("POST", path, json_body=signed, idempotency_key="d-1")
    assert first == again and stack.book.functions.loanOf(loan_id).call()[2] == 7  # Defaulted, once
    proposed = operator.write_off(loan_id)  # two operators decide a write-off: proposed, then confirmed
    assert stack.book.functions.loanOf(loan_id).call()[2] == 7
    client_for(keys["operator2"]).confirm(proposed["proposal_id"])
    assert stack.book.functions.loanOf(loan_id).call()[2] == 8  # WrittenOff
    assert borrower.loan(loan_id)["status"] == "WrittenOff"


def test_a_store_that_is_down_is_503_never_a_stack_trace(api, http, borrower):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    _, context = api
    token = borrower.token
    context.sessions = sessionmaker(create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none",
                                                  connect_args={"connect_timeout": 2}))
    answer = http.get("/v1/loans", headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "store_unavailable" and "Traceback" not in answer.text
    ready = http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["store"].startswith("unavailable")

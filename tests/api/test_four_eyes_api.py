"""Maker-checker through the API (issue 16): what moves or forgives money is proposed by one operator and made only
when a second, different operator confirms it before it expires. Real anvil, real contracts: the chain refuses the
proposer confirming their own proposal, and its events name both people.
"""

from __future__ import annotations

import pytest
from api_outcomes import api_error as _error
from api_outcomes import loan_status as _status
from eth_account.messages import encode_typed_data
from dashboard_browser import Tab, chromium  # noqa: F401 - the dashboard tests' browser (a fixture) and tab
from dashboard_browser import table_rows as _table

from api.services.four_eyes import VALIDITY
from ledger import forwarding
from ledger.deploy import RENOUNCED_BY_ADMIN

DAY = 86_400
REQUESTED, APPROVED, DEFAULTED, WRITTEN_OFF = 1, 2, 7, 8
PRODUCT = {"name": "6-month", "currency": "CNY", "min_principal": 1_000, "max_principal": 1_000_000,
           "min_installments": 6, "max_installments": 6, "frequency": "FixedInterval", "interval": 30 * DAY,
           "annual_rate_bps": 1800, "amortization": "Annuity", "grace_period": 3 * DAY, "late_fee_bps": 500,
           "penalty_rate_bps": 1200, "default_after": 90 * DAY, "service_fee_bps": 0, "auto_approve": False,
           "auto_approve_max_principal": 0}


def _post(client, path: str, body: dict) -> dict:
    return client._request("POST", path, json_body=body, idempotency_key=client.new_key())


@pytest.fixture
def second(client_for, keys):
    """The second operator: holds OPERATOR_ROLE on FourEyes only (confirming is all they do)."""
    return client_for(keys["operator2"])


@pytest.fixture
def defaulted(borrower, driver, application, operator) -> int:
    """A disbursed loan of the borrower's, declared in default by the operator."""
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-4eyes")
    driver.advance(121 * DAY)
    operator.declare_default(loan_id)
    return loan_id


def test_one_operator_cannot_write_off_alone_and_a_second_one_confirms(api, operator, second, keys, stack, w3,
                                                                        defaulted):
    prepared = operator.prepare("loan.write_off", loan_id=defaulted)
    assert prepared.requests[0].typed_data["message"]["to"] == stack.four_eyes.address
    assert prepared.summary.startswith(f"Propose: Write off loan {defaulted} of ")
    assert "a second operator, not you, confirms it before " in prepared.summary

    proposed = operator.write_off(defaulted)
    assert (proposed["state"], proposed["proposer"]) == ("awaiting confirmation", keys["operator"].address)
    assert (proposed["contract"], proposed["function"], proposed["args"]) == ("LoanBook", "writeOff",
                                                                            {"loanId": defaulted})
    assert proposed["expires_at"] == pytest.approx(api[1].chain_time() + VALIDITY, abs=10)
    assert _status(stack, defaulted) == DEFAULTED
    listed = second.proposals()
    assert [(p["proposal_id"], p["proposer"], p["summary"]) for p in listed] == [
        (proposed["proposal_id"], keys["operator"].address, f"Write off loan {defaulted}")]

    # The proposer confirming their own proposal: FourEyes refuses it, named, whether asked to prepare it...
    refused = _error(operator.confirm, proposed["proposal_id"])
    assert (refused.status, refused.code) == (403, "four_eyes_same_person")
    # ... or handed a confirmation they signed themselves (built without the API's preparation).
    call = stack.four_eyes.functions.confirm(bytes.fromhex(proposed["proposal_id"][2:]), stack.book.address,
                                             stack.book.functions.writeOff(defaulted)._encode_transaction_data(),
                                             proposed["expires_at"])
    typed = forwarding.build_request(stack.forwarder, keys["operator"].address, call,
                                     api[1].chain_time() + 300, gas=500_000)
    signature = keys["operator"].sign_message(encode_typed_data(full_message=typed)).signature.to_0x_hex()
    refused = _error(_post, operator, f"/v1/operator/proposals/{proposed['proposal_id']}/confirm",
                     {"request": typed["message"], "signature": signature})
    assert (refused.status, refused.code) == (403, "four_eyes_same_person")
    assert _status(stack, defaulted) == DEFAULTED

    confirmed = second.confirm(proposed["proposal_id"])
    assert (confirmed["state"], confirmed["proposer"], confirmed["confirmer"]) == (
        "executed", keys["operator"].address, keys["operator2"].address)
    assert confirmed["result"]["LoanWrittenOff"]["loanId"] == defaulted
    assert _status(stack, defaulted) == WRITTEN_OFF
    receipt = w3.eth.get_transaction_receipt(confirmed["tx_hash"])
    (executed,) = stack.four_eyes.events.Executed().process_receipt(receipt)
    assert (executed.args.proposer, executed.args.confirmer) == (keys["operator"].address, keys["operator2"].address)
    (proposal_event,) = stack.four_eyes.events.Proposed().get_logs(
        argument_filters={"proposalId": executed.args.proposalId}, from_block=0)
    assert proposal_event.args.proposer == keys["operator"].address
    assert second.proposals() == []
    again = _error(second.confirm, proposed["proposal_id"])  # a replay: the proposal is no longer pending
    assert (again.status, again.code) == (409, "four_eyes_not_pending")


def test_a_write_off_proposal_is_checked_to_be_this_loans(api, operator, borrower, driver, application, stack,
                                                          defaulted):
    other = borrower.apply(**application)["loan_id"]
    (signed,) = operator.sign_prepared(operator.prepare("loan.write_off", loan_id=defaulted))
    refused = _error(_post, operator, f"/v1/operator/loans/{other}/write-off", signed)
    assert (refused.status, refused.code) == (422, "request_mismatch")
    assert f"FourEyes.propose(LoanBook.writeOff(loanId={defaulted})" in refused.message
    # A direct write-off (no proposal) is refused before anything is sent: the route takes proposals only.
    direct = stack.book.functions.writeOff(defaulted)
    typed = forwarding.build_request(stack.forwarder, operator.account.address, direct, api[1].chain_time() + 300,
                                     gas=300_000)
    signature = operator.account.sign_message(encode_typed_data(full_message=typed)).signature.to_0x_hex()
    refused = _error(_post, operator, f"/v1/operator/loans/{defaulted}/write-off",
                     {"request": typed["message"], "signature": signature})
    assert (refused.status, refused.code) == (422, "request_mismatch")
    assert "FourEyes.propose" in refused.message
    assert operator.proposals() == [] and _status(stack, defaulted) == DEFAULTED


def test_an_expired_proposal_cannot_be_confirmed(api, operator, second, driver, stack, defaulted):
    proposed = operator.write_off(defaulted)
    driver.advance(VALIDITY + 60)
    assert second.proposals() == []
    assert second.proposal(proposed["proposal_id"])["state"] == "expired"
    refused = _error(second.confirm, proposed["proposal_id"])
    assert (refused.status, refused.code) == (409, "four_eyes_expired")
    assert _status(stack, defaulted) == DEFAULTED


def test_an_approval_above_the_payout_threshold_needs_a_second_operator(api, operator, second, borrower, publish,
                                                                        driver, keys, stack):
    threshold = stack.book.functions.payoutThreshold().call()
    product_id = publish(max_principal=4 * threshold, auto_approve=False, auto_approve_max_principal=0)
    driver.score(keys["alice"], limit=4 * threshold, report_id=2)
    big = borrower.apply(product_id=product_id, principal=threshold + 100, installments=3)["loan_id"]
    small = borrower.apply(product_id=product_id, principal=threshold, installments=3)["loan_id"]
    assert operator.approve(small)["decision"] == "approved"  # up to the threshold: one operator
    prepared = operator.prepare("loan.approve", loan_id=big)
    assert "above the payout threshold: two operators decide" in prepared.summary
    proposed = operator.approve(big)
    assert (proposed["state"], proposed["function"]) == ("awaiting confirmation", "approve")
    assert _status(stack, big) == REQUESTED
    refused = _error(operator.confirm, proposed["proposal_id"])
    assert (refused.status, refused.code) == (403, "four_eyes_same_person")
    confirmed = second.confirm(proposed["proposal_id"])
    assert confirmed["confirmer"] == keys["operator2"].address and _status(stack, big) == APPROVED
    assert confirmed["result"]["LoanApproved"]["loanId"] == big


def test_a_product_needs_two_operators_and_the_proposal_is_the_product_signed(api, operator, second, keys, stack,
                                                                              http):
    count = stack.catalog.functions.productCount().call()
    (signed,) = operator.sign_prepared(operator.prepare("product.create", **PRODUCT))
    other = {**PRODUCT, "annual_rate_bps": 1_200}
    refused = _error(_post, operator, "/v1/operator/products", {**other, **signed})
    assert (refused.status, refused.code) == (422, "request_mismatch")
    proposed = _post(operator, "/v1/operator/products", {**PRODUCT, **signed})
    assert proposed["state"] == "awaiting confirmation" and proposed["summary"] == "Publish a new product"
    assert stack.catalog.functions.productCount().call() == count
    assert http.get("/v1/products").json()["products"] == []
    confirmed = second.confirm(proposed["proposal_id"])
    product_id = confirmed["result"]["ProductCreated"]["productId"]
    assert product_id == count + 1
    assert [p["id"] for p in http.get("/v1/products").json()["products"]] == [product_id]


def test_a_proposal_is_cancelled_by_its_proposer_not_by_the_other_operator(api, operator, second, stack, defaulted):
    proposed = operator.write_off(defaulted)
    refused = _error(second.cancel_proposal, proposed["proposal_id"])
    assert (refused.status, refused.code) == (403, "four_eyes_not_proposer")
    assert operator.cancel_proposal(proposed["proposal_id"])["state"] == "cancelled"
    assert second.proposals() == []
    refused = _error(second.confirm, proposed["proposal_id"])
    assert (refused.status, refused.code) == (409, "four_eyes_not_pending")
    assert _status(stack, defaulted) == DEFAULTED


def test_the_proposals_are_for_operators_and_admins(api, borrower, client_for, keys, second):
    refused = _error(borrower.proposals)
    assert refused.status == 403
    assert "operator" in second.me()["roles"]  # FourEyes' operator: the API lets them confirm
    assert client_for(keys["admin"]).proposals() == []
    unknown = _error(second.confirm, "0x" + "ab" * 32)
    assert (unknown.status, unknown.code) == (404, "unknown_proposal")


def test_where_the_admin_renounced_a_role_change_needs_a_second_admin(api, client_for, keys, stack, w3):
    admin_role = b"\0" * 32
    # As the deploy's --admin-renounces leaves it: the admin no longer administers the loan book alone.
    renounce = stack.book.functions.renounceRole(admin_role, keys["admin"].address)
    assert w3.eth.wait_for_transaction_receipt(renounce.transact({"from": keys["admin"].address})).status == 1
    admin, dave = client_for(keys["admin"]), keys["dave"].address
    pauser = stack.book.functions.PAUSER_ROLE().call()
    prepared = admin.prepare("role.grant", role="pauser", account=dave, contracts=["CreditOracle", "LoanBook"])
    assert [r.summary.split(".")[0] for r in prepared.requests] == [
        f"Grant the pauser role to {dave} on CreditOracle", f"Propose: Grant the pauser role to {dave} on LoanBook"]
    assert "a second admin, not you, confirms it" in prepared.requests[1].summary
    answer = admin.grant_role("pauser", dave, ["CreditOracle", "LoanBook"])
    assert len(answer["transactions"]) == 1 and stack.oracle.functions.hasRole(pauser, dave).call()
    (proposed,) = answer["proposals"]
    assert (proposed["role"], proposed["function"], proposed["contract"]) == ("admin", "grantRole", "LoanBook")
    assert not stack.book.functions.hasRole(pauser, dave).call()
    for who, status, code in ((keys["admin"], 403, "four_eyes_same_person"),
                              (keys["operator2"], 403, "four_eyes_missing_role")):  # an operator is no admin
        refused = _error(client_for(who).confirm, proposed["proposal_id"])
        assert (refused.status, refused.code) == (status, code)
    assert not stack.book.functions.hasRole(pauser, dave).call()
    confirmed = client_for(keys["admin2"]).confirm(proposed["proposal_id"])
    assert (confirmed["proposer"], confirmed["confirmer"]) == (keys["admin"].address, keys["admin2"].address)
    assert stack.book.functions.hasRole(pauser, dave).call()


@pytest.fixture
def renounced(stack, keys, w3):
    """The session's stack (deployed with admin_renounces=False) as the default deploy leaves it: the admin renounces
    DEFAULT_ADMIN_ROLE on RENOUNCED_BY_ADMIN, as deploy_stack does; FourEyes holds it on each."""
    admin = keys["admin"].address
    for name in RENOUNCED_BY_ADMIN:
        renounce = stack.by_name(name).functions.renounceRole(b"\0" * 32, admin)
        assert w3.eth.wait_for_transaction_receipt(renounce.transact({"from": admin})).status == 1
    assert not any(stack.by_name(n).functions.hasRole(b"\0" * 32, admin).call() for n in RENOUNCED_BY_ADMIN)


def test_on_the_default_deploy_one_admin_alone_grants_no_role_a_second_admin_confirms(api, client_for, keys, stack,
                                                                                     http, renounced):
    admin, carol = client_for(keys["admin"]), keys["carol"].address
    role = stack.book.functions.OPERATOR_ROLE().call()
    prepared = admin.prepare("role.grant", role="operator", account=carol)
    response = http.post("/v1/operator/roles/grant",
                         json={"role": "operator", "account": carol, "requests": admin.sign_prepared(prepared)},
                         headers={"authorization": f"Bearer {admin.token}"})
    assert response.status_code == 202, response.text  # proposed, not done
    answer = response.json()
    assert answer["transactions"] == []  # nothing granted by one admin
    assert [(p["contract"], p["function"]) for p in answer["proposals"]] == [
        ("BorrowerRegistry", "grantRole"), ("LoanBook", "grantRole")]
    assert not any(c.functions.hasRole(role, carol).call() for c in stack.all)
    admin2 = client_for(keys["admin2"])
    for proposed in answer["proposals"]:
        admin2.confirm(proposed["proposal_id"])
    held = {c.address: c.functions.hasRole(role, carol).call() for c in stack.all}
    assert held == {c.address: c.address in (stack.registry.address, stack.book.address) for c in stack.all}


def test_where_the_admin_renounced_the_score_signer_rotation_is_proposed_and_takes_effect_when_confirmed(
        api, client_for, keys, stack, http, renounced):
    admin, role = client_for(keys["admin"]), stack.oracle.functions.SCORE_SIGNER_ROLE().call()
    old, new = keys["signer"].address, keys["dave"].address
    prepared = admin.prepare("oracle_signer.rotate", old=old, new=new)
    assert [r.typed_data["message"]["to"] for r in prepared.requests] == [stack.four_eyes.address] * 2
    assert [r.summary.split(".")[0] for r in prepared.requests] == [
        f"Propose: Admit {new} as a score signer on CreditOracle",
        f"Propose: Retire {old} as a score signer on CreditOracle"]
    answer = http.post("/v1/operator/oracle-signer/rotate",
                       json={"old": old, "new": new, "requests": admin.sign_prepared(prepared)},
                       headers={"authorization": f"Bearer {admin.token}"})
    assert answer.status_code == 202, answer.text
    admitted, retired = answer.json()
    assert (admitted["account"], retired["account"]) == (new, old)
    assert admitted["transactions"] == retired["transactions"] == []
    (grant,), (revoke,) = admitted["proposals"], retired["proposals"]
    assert [(p["function"], p["contract"], p["role"]) for p in (grant, revoke)] == [
        ("grantRole", "CreditOracle", "admin"), ("revokeRole", "CreditOracle", "admin")]
    # Proposed is not done: the old key still signs, the new one does not, until a second admin confirms.
    assert stack.oracle.functions.hasRole(role, old).call() and not stack.oracle.functions.hasRole(role, new).call()
    refused = _error(admin.confirm, grant["proposal_id"])
    assert (refused.status, refused.code) == (403, "four_eyes_same_person")
    assert not stack.oracle.functions.hasRole(role, new).call()
    admin2 = client_for(keys["admin2"])
    assert admin2.confirm(grant["proposal_id"])["confirmer"] == keys["admin2"].address
    assert stack.oracle.functions.hasRole(role, new).call() and stack.oracle.functions.hasRole(role, old).call()
    admin2.confirm(revoke["proposal_id"])
    assert stack.oracle.functions.hasRole(role, new).call() and not stack.oracle.functions.hasRole(role, old).call()


# ---------------------------------------------------------------------------------------------- the page in Chromium

def test_the_dashboard_proposes_a_write_off_and_only_a_second_operator_confirms_it(api, w3, stack, keys, defaulted,
                                                                                  chromium, served):  # noqa: F811
    """The operator proposes the write-off from the loan page with the page's wallet; their own confirmation is
    refused; the second operator, in their own browser, sees it awaiting confirmation, reads what it does and who
    proposed it, and confirms it with their wallet: the loan is written off and the chain names both."""
    _, context = api
    operator, operator2 = keys["operator"].address, keys["operator2"].address
    assert context.wait_indexed(w3.eth.block_number)
    first = Tab(chromium, served)
    try:
        page = first.page
        first.wallet_login(keys["operator"])
        first.wait_ready("portfolio")
        page.goto(f"{first.base_url}/dashboard#/loans/{defaulted}")
        first.wait_ready("loan")
        assert [b.text_content() for b in page.query_selector_all("#decision-buttons button")] == ["Write off"]
        page.click("#decide-write-off")
        page.wait_for_selector("#review:not([hidden])")
        assert page.text_content("#review-summary").startswith(f"Propose: Write off loan {defaulted} of ")
        page.click("#review-sign")
        page.wait_for_selector("#notice:has-text('proposed by')")
        assert page.text_content("#notice").startswith(
            f"Write off loan {defaulted}: proposed by {operator}; a second operator must confirm it by ")
        assert _status(stack, defaulted) == DEFAULTED
        page.click("#nav-proposals")
        first.wait_ready("proposals")
        ((proposal_id, proposer),) = _table(page, "#proposals-table tbody tr", "data-proposal-id", "data-proposer")
        assert proposer == operator
        page.click(".confirm-proposal")  # their own proposal: FourEyes refuses it before anything is signed
        page.wait_for_selector("#notice:has-text('cannot be prepared')")
        assert "you proposed it" in page.text_content("#notice") and len(first.typed_signed) == 1
        assert page.is_hidden("#review")
        # The refusal is the one error the browser saw (it logs the 403 it fetched).
        assert first.errors == ["console: Failed to load resource: the server responded with a status of 403 "
                                "(Forbidden)"]
    finally:
        first.close()

    second = Tab(chromium, served)
    try:
        page = second.page
        second.wallet_login(keys["operator2"])
        second.wait_ready("portfolio")
        page.click("#nav-proposals")
        second.wait_ready("proposals")
        assert _table(page, "#proposals-table tbody tr", "data-proposal-id", "data-proposer") == [
            (proposal_id, operator)]
        assert page.text_content("#proposals-table tbody td") == f"Write off loan {defaulted}"
        page.click(".confirm-proposal")
        page.wait_for_selector("#review:not([hidden])")
        assert page.text_content("#review-summary").startswith(
            f"Confirm: Write off loan {defaulted} (proposed by {operator}, expires ")
        assert second.typed_signed == []
        page.click("#review-sign")
        page.wait_for_selector("#notice:has-text('confirmed by')")
        assert page.text_content("#notice") == (f"Write off loan {defaulted}: confirmed by {operator2}, "
                                                f"proposed by {operator}")
        (signed,) = second.typed_signed
        assert (signed["message"]["from"], signed["message"]["to"]) == (operator2, stack.four_eyes.address)
        assert _status(stack, defaulted) == WRITTEN_OFF
        (executed,) = stack.four_eyes.events.Executed().get_logs(from_block=w3.eth.block_number - 3)
        assert (executed.args.proposer, executed.args.confirmer) == (operator, operator2)
        second.wait_ready("proposals")
        assert page.text_content("#proposals-table tbody") == "Nothing awaits confirmation."
        second.assert_clean()
    finally:
        second.close()

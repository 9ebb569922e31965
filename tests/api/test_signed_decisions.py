"""Decisions signed by the person who makes them (issue 16): the API prepares what to sign, the staff member signs
it with their own key, the route checks it is theirs and is this route's decision, and a role-less relayer sends it.

The test operator, admin and pauser sign with their own anvil keys (the SDK's clients hold them); the API is left
with no key but the relayer's where a test says so.
"""

from __future__ import annotations

import pytest
from api_outcomes import api_error, loan_status
from eth_account import Account
from eth_account.messages import encode_typed_data

from api.services.signed_requests import REQUEST_TTL
from ledger.chain import SignerNotConfigured

REQUESTED, APPROVED, REJECTED = 1, 2, 3


def _signed(client, action: str, **params) -> dict:
    """`client`'s wallet's signature of what the API prepares for `action`: the `{request, signature}` body."""
    (body,) = client.sign_prepared(client.prepare(action, **params))
    return body


def _post(client, path: str, body: dict) -> dict:
    return client._request("POST", path, json_body=body, idempotency_key=client.new_key())


@pytest.fixture
def loans(borrower, application) -> tuple[int, int]:
    """Two applications of the borrower, both Requested (the automatic policy is off)."""
    return borrower.apply(**application)["loan_id"], borrower.apply(**{**application, "principal": 50_000})["loan_id"]


@pytest.fixture
def second_operator(client_for, keys):
    """Carol, made an operator by the admin (signing the grant with the admin's own key)."""
    client_for(keys["admin"]).grant_role("operator", keys["carol"].address)
    carol = client_for(keys["carol"])
    assert "operator" in carol.me()["roles"]
    return carol


def test_the_prepared_request_is_the_signers_own_with_the_decision_in_words(api, operator, keys, stack, loans):
    loan_id, _ = loans
    prepared = operator.prepare("loan.approve", loan_id=loan_id)
    (item,) = prepared.requests
    message = item.typed_data["message"]
    assert (prepared.signer, message["from"]) == (keys["operator"].address, keys["operator"].address)
    assert item.typed_data["domain"]["verifyingContract"] == stack.forwarder.address
    assert (message["to"], message["nonce"], message["value"]) == (
        stack.book.address, stack.forwarder.functions.nonces(keys["operator"].address).call(), 0)
    assert message["deadline"] == pytest.approx(api[1].chain_time() + REQUEST_TTL, abs=5)
    borrower = keys["alice"].address
    assert prepared.summary == f"Approve loan {loan_id}: pay out ¥1,200.00 to {borrower[:6]}…{borrower[-4:]}"


def test_a_request_signed_by_another_staff_member_is_refused_and_changes_nothing(
        api, operator, second_operator, keys, stack, loans):
    loan_id, _ = loans
    path = f"/v1/operator/loans/{loan_id}/approve"
    carols = _signed(second_operator, "loan.approve", loan_id=loan_id)
    refused = api_error(_post, operator, path, carols)
    assert (refused.status, refused.code) == (403, "request_not_signed_by_caller")
    # The operator's own request, signed with Carol's key: the signature is not the signed-in operator's either.
    mine = operator.prepare("loan.approve", loan_id=loan_id).requests[0].typed_data
    forged = keys["carol"].sign_message(encode_typed_data(full_message=mine)).signature.to_0x_hex()
    refused = api_error(_post, operator, path, {"request": mine["message"], "signature": forged})
    assert (refused.status, refused.code) == (403, "request_not_signed_by_caller")
    assert loan_status(stack, loan_id) == REQUESTED
    # Carol's own request, sent by Carol, goes through and names her.
    assert _post(second_operator, path, carols)["signed_by"] == keys["carol"].address
    assert loan_status(stack, loan_id) == APPROVED


def test_a_signed_approval_is_refused_at_another_loan_and_at_another_decision(api, operator, stack, loans):
    first, second = loans
    approve_first = _signed(operator, "loan.approve", loan_id=first)
    for path, body in ((f"/v1/operator/loans/{second}/approve", approve_first),
                       (f"/v1/operator/loans/{first}/write-off", approve_first),
                       (f"/v1/operator/loans/{first}/declare-default", approve_first),
                       (f"/v1/operator/loans/{first}/reject", {**approve_first, "reason": "documents"})):
        refused = api_error(_post, operator, path, body)
        assert (refused.status, refused.code) == (422, "request_mismatch"), path
        assert f"LoanBook.approve(loanId={first})" in refused.message
    assert [loan_status(stack, i) for i in loans] == [REQUESTED, REQUESTED]
    assert _post(operator, f"/v1/operator/loans/{first}/approve", approve_first)["decision"] == "approved"
    assert [loan_status(stack, i) for i in loans] == [APPROVED, REQUESTED]


def test_a_replayed_request_is_refused(api, operator, stack, loans):
    loan_id, _ = loans
    reject = {**_signed(operator, "loan.reject", loan_id=loan_id, reason="documents"), "reason": "documents"}
    path = f"/v1/operator/loans/{loan_id}/reject"
    _post(operator, path, reject)
    again = api_error(_post, operator, path, reject)  # a new Idempotency-Key: a second decision, not a retry
    assert (again.status, again.code) == (409, "request_already_used")
    assert loan_status(stack, loan_id) == REJECTED


def test_an_expired_request_is_refused(api, operator, driver, stack, loans):
    loan_id, _ = loans
    approve = _signed(operator, "loan.approve", loan_id=loan_id)
    driver.advance(REQUEST_TTL + 60)
    late = api_error(_post, operator, f"/v1/operator/loans/{loan_id}/approve", approve)
    assert (late.status, late.code) == (422, "request_expired")
    assert loan_status(stack, loan_id) == REQUESTED


def test_the_action_log_and_the_chain_name_the_signer_and_the_relayer_sends(api, operator, keys, stack, w3, loans):
    _, context = api
    loan_id, _ = loans
    answer = operator.approve(loan_id)
    assert (answer["decision"], answer["signed_by"]) == ("approved", keys["operator"].address)
    entry = next(e for e in (context.action_log.entry(seq) for seq in range(context.action_log.head().seq, 0, -1))
                 if e.action == "loan.approve")
    assert (entry.actor, entry.data["signed_by"], entry.data["loan_id"]) == (
        keys["operator"].address, keys["operator"].address, loan_id)
    receipt = w3.eth.get_transaction_receipt(entry.data["tx"])
    assert receipt["from"] == context.signer("relayer").address != keys["operator"].address
    (approved,) = stack.book.events.LoanApproved().process_receipt(receipt)
    assert (approved.args.loanId, approved.args.actor) == (loan_id, keys["operator"].address)


def test_decisions_need_no_role_key_in_the_api(api, client_for, operator, keys, stack, loans):
    """The API keeps only its relayer's key: approving, pausing and granting still work, each signed by its maker."""
    _, context = api
    context.env = {"LOANLEDGER_RELAYER_KEY": context.env["LOANLEDGER_RELAYER_KEY"]}
    context._clients.clear()
    loan_id, other = loans
    assert operator.approve(loan_id)["signed_by"] == keys["operator"].address
    assert operator.reject(other, "documents")["signed_by"] == keys["operator"].address
    pauser = client_for(keys["pauser"])
    paused = pauser.pause()
    assert len(paused) == len(stack.all) and {t["signed_by"] for t in paused} == {keys["pauser"].address}
    assert all(c.functions.paused().call() for c in stack.all)
    pauser.unpause()
    admin = client_for(keys["admin"])
    granted = admin.grant_role("pauser", keys["dave"].address)
    assert {t["signed_by"] for t in granted["transactions"]} == {keys["admin"].address}
    for role_key in ("operator", "admin", "pauser"):
        with pytest.raises(SignerNotConfigured):
            context.signer(role_key)


def test_a_decision_is_prepared_only_for_a_role_that_takes_it(api, client_for, keys, loans):
    pauser = client_for(keys["pauser"])
    refused = api_error(pauser.prepare, "loan.approve", loan_id=loans[0])
    assert (refused.status, refused.code) == (403, "forbidden")
    operator = client_for(keys["operator"])
    refused = api_error(operator.prepare, "role.grant", role="operator", account=keys["dave"].address)
    assert (refused.status, refused.code) == (403, "forbidden")
    invalid = api_error(operator.prepare, "loan.reject", loan_id=loans[0])
    assert (invalid.status, invalid.code) == (422, "invalid_request") and "reason" in invalid.message


def test_the_sdk_signs_nothing_the_review_declines(api, http, keys, loans, stack):
    from api.client import DecisionDeclined, LoanLedgerClient

    shown = []
    operator = LoanLedgerClient("http://testserver", keys["operator"], http=http,
                                review=lambda prepared: shown.append(prepared.summary) or False)
    operator.login()
    with pytest.raises(DecisionDeclined):
        operator.approve(loans[0])
    assert shown == [operator.prepare("loan.approve", loan_id=loans[0]).summary]
    assert loan_status(stack, loans[0]) == REQUESTED


def test_the_sdk_refuses_to_sign_a_request_prepared_for_someone_else(api, operator, keys, loans):
    prepared = operator.prepare("loan.approve", loan_id=loans[0])
    prepared.requests[0].typed_data["message"]["from"] = Account.create().address
    refused = api_error(operator.sign_prepared, prepared)
    assert refused.code == "not_my_request"


def test_an_operator_registers_and_revokes_a_borrower_with_their_own_signature(api, client_for, kyc, operator, keys,
                                                                               stack, w3):
    _, context = api
    context.settings = context.settings.model_copy(update={"auto_register": False})
    bob = client_for(keys["bob"])
    assert kyc(bob, 14)["status"] == "registering"  # not registered: an operator decides
    address = keys["bob"].address
    prepared = operator.prepare("borrower.register", address=address)
    assert prepared.summary.startswith(f"Register borrower {address} (KYC verified; valid until ")
    registered = operator.register_borrower(address)
    assert registered["signed_by"] == keys["operator"].address
    assert stack.registry.functions.isEligible(address).call()
    (event,) = stack.registry.events.BorrowerRegistered().process_receipt(
        w3.eth.get_transaction_receipt(registered["tx_hash"]))
    assert event.args.actor == keys["operator"].address
    refused = api_error(client_for(keys["carol"]).register_borrower, address)  # no operator: nothing prepared
    assert (refused.status, refused.code) == (403, "forbidden")
    revoked = operator.revoke_borrower(address, "fraud")
    assert revoked["signed_by"] == keys["operator"].address
    assert not stack.registry.functions.isEligible(address).call()


def test_approving_what_the_book_would_refuse_is_signing_its_rejection_with_the_reason(
        api, client_for, kyc, operator, driver, keys, stack, w3, application):
    bob = client_for(keys["bob"])
    kyc(bob, 15)
    bob.login()
    driver.score(keys["bob"], limit=100_000, report_id=2)
    loan_id = bob.apply(**application)["loan_id"]  # 120,000 over a limit of 100,000
    prepared = operator.prepare("loan.approve", loan_id=loan_id)
    assert prepared.summary.startswith(f"Reject loan {loan_id} (over_limit)")
    answer = operator.approve(loan_id)
    assert (answer["decision"], answer["signed_by"]) == ("rejected:over_limit", keys["operator"].address)
    assert loan_status(stack, loan_id) == REJECTED
    (event,) = stack.book.events.LoanRejected().get_logs(from_block=w3.eth.block_number - 3)
    assert (event.args.loanId, event.args.reason.rstrip(b"\0"), event.args.actor) == (
        loan_id, b"over_limit", keys["operator"].address)


def test_every_action_the_prepare_route_accepts_is_one_it_can_prepare():
    from api.schemas.signed import ACTIONS
    from api.services.decision_requests import ACTIONS as PREPARED

    assert set(ACTIONS) == set(PREPARED)

"""A borrower's journey over HTTP: sign in, KYC with codes, score, quote, apply, see the loan."""

from __future__ import annotations

import pytest

from api.client import ApiError


def test_sign_in_kyc_apply_and_see_the_loan(api, keys, driver, client_for, kyc, application):
    alice = client_for(keys["alice"])
    assert alice.me()["roles"] == ["applicant"]
    status = kyc(alice, 1)  # the API records the registration; the fixture runs the oracle's worker
    assert status["status"] == "registering" and status["tx_hash"] is None
    assert alice.kyc_status()["status"] == "registered"
    assert status["record"]["bank_card"].endswith(status["record"]["bank_card"][-4:])
    alice.login()
    assert alice.me()["roles"] == ["borrower"]
    driver.score(keys["alice"])
    quote = alice.quote(application["product_id"], application["principal"], application["installments"])
    assert sum(row["principal"] for row in quote["schedule"]) == application["principal"]
    assert len(quote["schedule"]) == 3
    applied = alice.apply(**application)
    assert applied["status"] == "Requested"
    loans = alice.loans()
    assert [loan["id"] for loan in loans] == [applied["loan_id"]]
    assert loans[0]["status"] == "Requested" and loans[0]["principal"] == application["principal"]


def test_another_borrowers_loan_is_not_found(api, keys, driver, client_for, kyc, application):
    alice, bob = client_for(keys["alice"]), client_for(keys["bob"])
    kyc(alice, 1)
    kyc(bob, 2)
    driver.score(keys["alice"])
    loan_id = alice.apply(**application)["loan_id"]
    with pytest.raises(ApiError) as caught:
        bob.loan(loan_id)
    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_credit_shows_the_oracles_score_limit_and_what_is_available(api, keys, driver, client_for, kyc, application,
                                                                     stack):
    alice = client_for(keys["alice"])
    kyc(alice, 14)
    alice.login()
    before = alice.credit()
    assert (before["score"], before["credit_limit"], before["fresh"]) == (None, 0, False)
    driver.score(keys["alice"], score=690, limit=500_000)
    loan_id = alice.apply(**application)["loan_id"]
    driver.approve(loan_id)
    after = alice.credit()
    assert (after["score"], after["credit_limit"], after["fresh"]) == (690, 500_000, True)
    principal = application["principal"]
    assert (after["outstanding_principal"], after["available"]) == (principal, 500_000 - principal)
    assert after["score_age"] == driver.now - after["updated_at"]
    # Past the oracle's maxScoreAge the book approves nothing on the score: nothing is available on it.
    driver.advance(stack.oracle.functions.maxScoreAge().call() + 1)
    stale = alice.credit()
    assert (stale["fresh"], stale["available"], stale["credit_limit"]) == (False, 0, 500_000)
    assert stale["score_age"] > stack.oracle.functions.maxScoreAge().call()


def test_the_oracle_anchors_the_apis_action_log_on_chain(api, w3, keys, client_for, kyc, stack):
    """The API keeps no anchoring thread; the oracle's anchorer (oracle/anchoring.py) anchors the shared store's log
    with the oracle's key."""
    from ledger.chain import ChainClient
    from oracle.anchoring import Anchorer

    app, context = api
    assert not hasattr(app.state, "anchorer")
    kyc(client_for(keys["carol"]), 15)
    anchorer = Anchorer(context.sessions, ChainClient(w3, keys["oracle"], stack.errors), stack.anchor)
    anchored = anchorer.anchor_once()
    assert anchored is not None and anchored.seq == context.action_log.head().seq
    assert stack.anchor.functions.anchorCount().call() == 1
    assert anchorer.anchor_once() is None  # nothing new: no transaction
    assert stack.anchor.functions.anchorCount().call() == 1

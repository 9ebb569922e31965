"""Issue 14, defect 6: an application whose API process died mid-request is answered from the chain on retry.

The crash is reproduced in the store and on the chain as it leaves them: a claim owned by a process that no
longer exists, holding the hash of the transaction it signed (mined, or never sent). The retry with the same
Idempotency-Key must answer the loan that transaction made, or run again, and never make a second loan.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from fastapi.encoders import jsonable_encoder

from api.client import ApiError
from api.schemas import ApplyIn, TermsIn
from ledger import typed_data
from ledger.encoding import to_0x_hex
from ledger.store.models.api import IdempotencyRecord
from ledger.typed_data import LoanTerms

DEAD_OWNER = "{host}|999999999|0|deadbeef0000"  # this host, a pid no process has


def signed_body(api, account, terms: dict) -> dict:
    _, context = api
    book = context.bindings.book
    deadline = context.chain_time() + 3600
    nonce = book.functions.nonces(account.address).call()
    message = typed_data.loan_request(chain_id=context.w3.eth.chain_id, book=book.address, borrower=account.address,
                                      terms=TermsIn(**terms).to_terms(), nonce=nonce, deadline=deadline)
    return {"terms": terms, "deadline": deadline, "signature": to_0x_hex(typed_data.sign(account.key, message))}


def crashed_claim(api, borrower: str, key: str, body: dict, tx_hash: str | None, owner: str | None = None) -> None:
    """The row a request leaves when its process is killed after recording its transaction."""
    from api import idempotency
    _, context = api
    digest = hashlib.sha256(json.dumps(jsonable_encoder(ApplyIn.model_validate(body).model_dump()),
                                       sort_keys=True).encode()).hexdigest()
    with context.sessions.begin() as session:
        session.add(IdempotencyRecord(principal=borrower, key=key, route="POST /v1/loans", request_hash=digest,
                                      status_code=None, response=None, created_at=int(time.time()),
                                      owner=owner or DEAD_OWNER.format(host=idempotency._HOST), tx_hash=tx_hash))


def loans_of(stack, borrower: str) -> int:
    return len(stack.book.events.LoanRequested().get_logs(from_block=0, argument_filters={"borrower": borrower}))


@pytest.fixture
def alice(api, keys, driver, client_for, kyc):
    client = client_for(keys["alice"])
    kyc(client, 1)
    client.login()
    driver.score(keys["alice"])
    return client


def relay(api, body: dict, borrower: str) -> str:
    """Sends the signed request as the crashed API process did; returns the mined transaction's hash."""
    _, context = api
    terms: LoanTerms = TermsIn(**body["terms"]).to_terms()
    receipt = context.signer("relayer").transact(context.bindings.book.functions.requestLoan(
        terms.as_tuple(), borrower, body["deadline"], bytes.fromhex(body["signature"][2:])))
    return to_0x_hex(receipt["transactionHash"])


def test_a_retry_after_a_crash_once_the_loan_was_mined_answers_that_loan(api, stack, keys, alice, terms):
    borrower = keys["alice"].address
    body = signed_body(api, keys["alice"], terms)
    tx_hash = relay(api, body, borrower)
    crashed_claim(api, borrower, "key-1", body, tx_hash)
    assert loans_of(stack, borrower) == 1

    answer = alice._request("POST", "/v1/loans", idempotency_key="key-1", json_body=body, raw=True)

    assert answer.status_code == 201, answer.text
    loan = answer.json()
    assert loan["tx_hash"] == tx_hash and loan["status"] == "Requested"
    assert loans_of(stack, borrower) == 1
    again = alice._request("POST", "/v1/loans", idempotency_key="key-1", json_body=body, raw=True)
    assert (again.status_code, again.json()) == (201, loan)  # stored: a replay now
    assert again.headers["idempotent-replayed"] == "true"


def test_a_retry_after_a_crash_before_the_send_runs_the_application_once(api, stack, keys, alice, terms):
    borrower = keys["alice"].address
    body = signed_body(api, keys["alice"], terms)
    crashed_claim(api, borrower, "key-2", body, "0x" + "ab" * 32)  # signed, never seen by the node

    loan = alice._request("POST", "/v1/loans", idempotency_key="key-2", json_body=body)

    assert loan["status"] == "Requested" and loan["tx_hash"] != "0x" + "ab" * 32
    assert loans_of(stack, borrower) == 1


def test_a_claim_whose_owner_is_alive_is_still_in_progress(api, stack, keys, alice, terms):
    from api import idempotency
    borrower = keys["alice"].address
    body = signed_body(api, keys["alice"], terms)
    crashed_claim(api, borrower, "key-3", body, None, owner=idempotency._process() + "|live")
    with pytest.raises(ApiError) as refused:
        alice._request("POST", "/v1/loans", idempotency_key="key-3", json_body=body)
    assert (refused.value.status, refused.value.code) == (409, "idempotency_in_progress")
    assert loans_of(stack, borrower) == 0


def test_the_same_signed_request_under_a_new_key_names_the_first_loan(api, stack, keys, alice, terms):
    borrower = keys["alice"].address
    body = signed_body(api, keys["alice"], terms)
    first = alice._request("POST", "/v1/loans", idempotency_key="key-a", json_body=body)
    with pytest.raises(ApiError) as refused:
        alice._request("POST", "/v1/loans", idempotency_key="key-b", json_body=body)
    assert (refused.value.status, refused.value.code) == (409, "loan_request_replayed")
    assert f"loan {first['loan_id']}" in refused.value.message
    assert loans_of(stack, borrower) == 1

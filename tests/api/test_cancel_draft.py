"""`GET /v1/loans/{loan_id}/cancel-draft`: the CancelLoan a wallet that builds no typed data itself (the phone app)
signs. Signed as eth_signTypedData_v4 takes it (eth-account's full-message form), `POST .../cancel` accepts it;
another wallet's signature is refused and the loan stays; a loan paid out is refused by name, by the draft and by
the cancellation alike, and someone else's loan is not found."""

from __future__ import annotations

from api_outcomes import api_error
from eth_account import Account

from ledger import typed_data


def _draft(client, loan_id: int) -> dict:
    return client._request("GET", f"/v1/loans/{loan_id}/cancel-draft")


def _cancel(http, client, loan_id: int, draft: dict, signer, key: str):
    body = {"deadline": draft["deadline"], "signature": "0x" + typed_data.sign(signer.key, draft["typed_data"]).hex()}
    return http.post(f"/v1/loans/{loan_id}/cancel", json=body,
                     headers={"authorization": f"Bearer {client.token}", "idempotency-key": key})


def test_the_draft_signed_by_the_borrower_cancels_and_anothers_signature_is_refused(
        api, http, borrower, driver, stack, w3, application):
    _, context = api
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)  # approved, not paid out: still cancellable (its exposure is released)
    draft = _draft(borrower, loan_id)
    nonce = stack.book.functions.nonces(borrower.account.address).call()
    assert draft["typed_data"] == typed_data.cancel_loan(chain_id=w3.eth.chain_id, book=stack.book.address,
                                                         loan_id=loan_id, nonce=nonce, deadline=draft["deadline"])
    assert draft["nonce"] == nonce and 0 < draft["deadline"] - context.chain_time() <= 3600
    assert draft["summary"] == {"loan_id": loan_id, "status": "Approved", "principal": 120_000, "currency": "CNY",
                                "text": f"Cancel the application for loan {loan_id} (¥1,200.00, Approved): "
                                        "nothing is paid out and nothing is owed"}

    refused = _cancel(http, borrower, loan_id, draft, Account.create(), "cancel-other")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "loan_book_invalid_signature")
    assert borrower.loan(loan_id)["status"] == "Approved"
    assert stack.book.functions.nonces(borrower.account.address).call() == nonce  # nothing was spent

    done = _cancel(http, borrower, loan_id, draft, borrower.account, "cancel-mine")
    assert done.status_code == 200, done.text
    assert borrower.loan(loan_id)["status"] == "Cancelled"
    assert stack.book.functions.loanOf(loan_id).call()[2] == 4  # Cancelled on the chain
    assert api_error(_draft, borrower, loan_id).code == "loan_not_cancellable"


def test_a_paid_out_loan_is_refused_by_name_and_someone_elses_is_not_found(
        api, http, borrower, driver, stack, application, client_for, keys, kyc):
    loan_id = borrower.apply(**application)["loan_id"]
    draft = _draft(borrower, loan_id)  # drafted while Requested, sent once paid out
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-cancel")
    error = api_error(_draft, borrower, loan_id)
    assert (error.status, error.code) == (409, "loan_not_cancellable") and "Active" in str(error)
    refused = _cancel(http, borrower, loan_id, draft, borrower.account, "cancel-late")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "loan_not_cancellable")
    nonce = stack.book.functions.nonces(borrower.account.address).call()
    assert nonce == draft["nonce"]  # nothing was relayed: the nonce is unspent

    other = client_for(keys["bob"])
    kyc(other, 12)
    other.login()  # a registered borrower now: someone else's loan is not found, as any other read of it
    error = api_error(_draft, other, loan_id)
    assert (error.status, error.code) == (404, "not_found")

"""`POST /v1/loans/application-draft`: the LoanApplication a wallet that builds no typed data itself (the phone app)
signs, with the quote's numbers. Signed as eth_signTypedData_v4 takes it (eth-account's full-message form), it is
what `POST /v1/loans` accepts; another wallet's signature of it is refused; the catalogue's refusals come first."""

from __future__ import annotations

import step_up_codes
from api_outcomes import api_error
from eth_account import Account

from ledger import typed_data


def _draft(client, **body) -> dict:
    return client._request("POST", "/v1/loans/application-draft", json_body=body)


def _apply(http, client, draft: dict, signer) -> object:
    """POST /v1/loans of `draft` signed by `signer`, with the borrower's step-up code and a new key."""
    message = draft["typed_data"]["message"]
    body = {"product_id": message["productId"], "product_version": message["productVersion"],
            "principal": message["principal"], "installments": message["installments"],
            "deadline": draft["deadline"],
            "signature": "0x" + typed_data.sign(signer.key, draft["typed_data"]).hex()}
    headers = {"authorization": f"Bearer {client.token}", "idempotency-key": f"draft-{signer.address}",
               **step_up_codes.apply_header(http.app, client, body)}
    return http.post("/v1/loans", json=body, headers=headers)


def test_the_draft_is_the_typed_data_the_book_takes_and_the_quotes_numbers(api, http, borrower, publish, stack,
                                                                            w3):
    _, context = api
    product_id = publish(annual_rate_bps=1_200, service_fee_bps=100)
    draft = _draft(borrower, product_id=product_id, product_version=1, principal=120_000, installments=3)
    nonce = stack.book.functions.nonces(borrower.account.address).call()
    # ledger/typed_data.py's definition, field for field: the one the contracts verify.
    assert draft["typed_data"] == typed_data.loan_application(
        chain_id=w3.eth.chain_id, book=stack.book.address, borrower=borrower.account.address, product_id=product_id,
        product_version=1, principal=120_000, installments=3, nonce=nonce, deadline=draft["deadline"])
    assert draft["typed_data"]["types"]["EIP712Domain"] and draft["nonce"] == nonce
    assert 0 < draft["deadline"] - context.chain_time() <= 3600

    quote = borrower.quote(product_id, 120_000, 3)
    amounts = [row["principal"] + row["interest"] for row in quote["schedule"]]
    summary = draft["summary"]
    assert {k: summary[k] for k in ("principal", "installments", "total_interest", "service_fee", "total_cost",
                                    "net_paid_out", "total_repaid", "currency", "interval", "frequency")} == {
        k: quote[k] for k in ("principal", "installments", "total_interest", "service_fee", "total_cost",
                              "net_paid_out", "total_repaid", "currency", "interval", "frequency")}
    assert (summary["first_installment"], summary["smallest_installment"], summary["largest_installment"]) == (
        amounts[0], min(amounts), max(amounts))
    assert summary["service_fee"] == 1_200 and summary["net_paid_out"] == 118_800
    assert summary["text"].startswith("Borrow ¥1,200.00 in 3 installments (every 30 days)")

    applied = _apply(http, borrower, draft, borrower.account)
    assert applied.status_code == 201, applied.text
    loan = borrower.loan(applied.json()["loan_id"])
    assert (loan["status"], loan["product_id"], loan["principal"], loan["service_fee"]) == (
        "Requested", product_id, 120_000, 1_200)


def test_someone_elses_signature_of_the_draft_is_refused_and_nothing_is_on_chain(api, http, borrower, publish,
                                                                                  stack):
    product_id = publish()
    draft = _draft(borrower, product_id=product_id, product_version=1, principal=120_000, installments=3)
    refused = _apply(http, borrower, draft, Account.create())
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_signature")
    assert stack.book.functions.loanCount().call() == 0


def test_the_draft_refuses_what_the_catalogue_would_and_only_a_registered_borrower_gets_one(
        api, borrower, operator, publish, client_for, keys):
    product_id = publish()
    cases = [((product_id, 1, 999, 3), 422, "product_catalog_principal_out_of_range"),
             ((product_id, 1, 120_000, 24), 422, "product_catalog_installments_out_of_range"),
             ((999, 1, 120_000, 3), 404, "product_catalog_unknown_product")]
    for (pid, version, principal, installments), status, code in cases:
        error = api_error(_draft, borrower, product_id=pid, product_version=version, principal=principal,
                          installments=installments)
        assert (error.status, error.code) == (status, code), (pid, version, principal, installments)
    # A new version since the quote: a draft for the old one is refused, as its application would be.
    product = {k: v for k, v in operator.product(product_id).items()
               if k not in ("id", "version", "latest_version", "retired")}
    second = client_for(keys["operator2"])
    second.confirm(operator.change_product(product_id, {**product, "annual_rate_bps": 1_800})["proposal_id"])
    error = api_error(_draft, borrower, product_id=product_id, product_version=1, principal=120_000, installments=3)
    assert (error.status, error.code) == (409, "product_catalog_version_changed")
    assert _draft(borrower, product_id=product_id, product_version=2, principal=120_000,
                  installments=3)["typed_data"]["message"]["productVersion"] == 2
    stranger = client_for(Account.create())  # signed in, not registered: nothing to sign yet
    error = api_error(_draft, stranger, product_id=product_id, product_version=1, principal=120_000, installments=3)
    assert error.status == 403

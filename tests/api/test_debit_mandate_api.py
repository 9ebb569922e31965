"""Automatic debit, the mandate (issue 17): a borrower signs a DebitMandate for one active loan and the card bound
(masked), with a step-up code; the API keeps it only if the signature is the borrower's over exactly those terms.
A forged signature or another wallet's is refused by name; revoking is signed too and leaves no mandate in force."""

from __future__ import annotations

import pytest
from api_outcomes import api_error
from eth_account import Account

from ledger import typed_data
from ledger.encoding import to_0x_hex

DAY = 86_400


@pytest.fixture
def active_loan(api, borrower, application, driver) -> int:
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-debit-mandate")
    assert api[1].wait_indexed(driver.w3.eth.block_number)
    return loan_id


def signed_body(client, loan_id: int, signer=None, **changes) -> dict:
    params = client.debit_mandate(loan_id)["sign_params"]
    terms = {"card": params["card"], "max_amount": 50_000, "valid_until": 2**39, "nonce": params["nonce"]}
    terms.update(changes)
    message = typed_data.debit_mandate(chain_id=params["chain_id"], book=params["loan_book"],
                                       borrower=client.account.address, loan_id=loan_id, card=terms["card"],
                                       max_amount=terms["max_amount"], valid_until=terms["valid_until"],
                                       nonce=terms["nonce"])
    signature = typed_data.sign((signer or client.account).key, message)
    return {**terms, "signature": to_0x_hex(signature)}


def post(client, loan_id: int, body: dict) -> dict:
    code = client._step_up_code(None, "debit_mandate", loan_id=loan_id)
    return client._request("POST", f"/v1/loans/{loan_id}/debit-mandate", json_body=body, step_up_code=code)


def test_a_mandate_signed_shown_and_revoked(api, borrower, operator, active_loan):
    loan_id = active_loan
    shown = borrower.debit_mandate(loan_id)
    assert shown["mandate"] is None and shown["revocation_to_sign"] is None
    card = shown["sign_params"]["card"]
    assert card.startswith("**** ") and len(card) == 9  # the last four digits only
    made = borrower.sign_debit_mandate(loan_id, 50_000, 2**39)
    assert (made["loan_id"], made["card"], made["max_amount"], made["nonce"]) == (loan_id, card, 50_000, 1)
    assert made["borrower"] == borrower.account.address.lower() and made["revoked_at"] is None
    assert borrower.debit_mandate(loan_id)["mandate"]["id"] == made["id"]
    seen = operator.debit_mandate(loan_id)  # staff read it; they are given nothing to sign
    assert seen["mandate"]["id"] == made["id"] and seen["sign_params"] is None
    # The card number is nowhere but in its last four digits.
    number = api[1].vault.get(borrower.account.address).bank_card
    assert number not in str(seen) and number not in str(made)

    revoked = borrower.revoke_debit_mandate(loan_id)
    assert revoked["id"] == made["id"] and revoked["revoked_at"] is not None
    assert borrower.debit_mandate(loan_id)["mandate"] is None
    assert api_error(borrower.revoke_debit_mandate, loan_id).code == "no_active_mandate"


def test_forged_other_wallet_and_replayed_signatures_are_refused_by_name(api, borrower, active_loan):
    loan_id = active_loan
    mallory = Account.create()
    forged = api_error(post, borrower, loan_id, signed_body(borrower, loan_id, signer=mallory))
    assert (forged.status, forged.code) == (422, "mandate_signature_invalid")
    # Signed for 50,000, sent as 5,000,000: the signature does not cover the terms sent.
    stretched = {**signed_body(borrower, loan_id), "max_amount": 5_000_000}
    assert api_error(post, borrower, loan_id, stretched).code == "mandate_signature_invalid"
    other_card = api_error(post, borrower, loan_id, signed_body(borrower, loan_id, card="**** 0000"))
    assert other_card.code == "mandate_card_mismatch"
    assert borrower.debit_mandate(loan_id)["mandate"] is None  # nothing kept

    body = signed_body(borrower, loan_id)
    post(borrower, loan_id, body)
    replay = api_error(post, borrower, loan_id, body)  # the same signature again: its nonce is spent
    assert (replay.status, replay.code) == (409, "mandate_nonce_used")


def test_without_a_step_up_code_nothing_is_kept(api, borrower, active_loan):
    loan_id = active_loan
    refused = api_error(borrower._request, "POST", f"/v1/loans/{loan_id}/debit-mandate",
                        json_body=signed_body(borrower, loan_id))
    assert (refused.status, refused.code) == (428, "step_up_required")
    assert borrower.debit_mandate(loan_id)["mandate"] is None


def test_only_the_borrower_of_an_active_loan(api, borrower, client_for, kyc, keys, application):
    loan_id = borrower.apply(**application)["loan_id"]  # requested, not disbursed
    refused = api_error(post, borrower, loan_id, signed_body(borrower, loan_id))
    assert (refused.status, refused.code) == (409, "loan_not_active")
    bob = client_for(keys["bob"])
    kyc(bob, 12)
    bob.login()
    assert api_error(bob.debit_mandate, loan_id).status == 404  # someone else's loan: not found

"""A wallet recovered onto (BorrowerRegistry.recoverBorrower) reads and repays its identity's earlier loans, which
stay on-chain under the lost wallet's address: the list and every read of the loan (due, payments, the rail's
checkout) answer for the new wallet; what needs the on-chain borrower's signature (cancel, debit mandate,
reschedule) is refused by name, the lost wallet's key being gone; someone else's loan stays not found. Real API,
real registration worker, real rail stand-in, real anvil."""

from __future__ import annotations

import re

import httpx
from api_outcomes import api_error
from eth_account import Account

from ledger.samples import sample_identity

APP = "http://testserver/app/"


def test_a_recovered_wallet_lists_reads_and_pays_the_lost_wallets_loan_and_a_third_party_still_gets_404(
        api, borrower, application, driver, keys, stack, client_for, kyc, registrar, rail, confirm):
    app, context = api
    context.settings = context.settings.model_copy(update={"recovery_review_principal": 10**12})  # no operator step
    old, person = keys["alice"].address, sample_identity(11)
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-recovered-loans")
    assert context.wait_indexed(driver.w3.eth.block_number)
    as_alice = borrower.loan(loan_id), borrower._request("GET", f"/v1/loans/{loan_id}/payments")["payments"]

    new = Account.create()
    me = client_for(new)
    assert me.loans() == [] and api_error(me.loan, loan_id).status == 404  # before the recovery: not theirs
    me._request("POST", "/v1/kyc/recovery", json_body=person)
    sms = app.state.sms
    me.kyc_verify(sms.last_code(person["phone"], "phone"), sms.last_code(person["phone"], "card"))
    assert registrar().recovered == 1
    app.state.roles.forget(new.address)
    me.login()

    # Reads: the list, the loan, what is due, its payments, its reschedule (nothing for this wallet to sign).
    assert [(loan["id"], loan["borrower"]) for loan in me.loans()] == [(loan_id, old)]
    assert (me.loan(loan_id), me._request("GET", f"/v1/loans/{loan_id}/payments")["payments"]) == as_alice
    due = me.due(loan_id)
    assert due["payoff"] == stack.book.functions.payoffAmount(loan_id, due["as_of"]).call() > 0
    assert me._request("GET", f"/v1/loans/{loan_id}/reschedule")["to_sign"] is None

    # What needs the on-chain borrower's signature: refused by name, before any code is asked for.
    for method, path in (("GET", f"/v1/loans/{loan_id}/cancel-draft"),
                         ("GET", f"/v1/loans/{loan_id}/debit-mandate/typed-data"),
                         ("POST", f"/v1/loans/{loan_id}/reschedule-requests")):
        body = {"installments": 6, "reason": "income_loss"} if method == "POST" else None
        error = api_error(me._request, method, path, json_body=body)
        assert (error.status, error.code) == (409, "loan_of_earlier_wallet"), path
        assert old in str(error)

    # Paying over the rail: the hosted checkout for the payoff, paid, confirmed; the loan is repaid.
    how = me._request("GET", f"/v1/loans/{loan_id}/repayment-instructions",
                      params={"return_to": f"{APP}#/pay?loan={loan_id}", "pay": "payoff"})
    assert how["checkout_amount"] == due["payoff"] > 0
    page = httpx.get(how["checkout_url"], timeout=10)
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
    form["return"] = form["return"].replace("&amp;", "&")
    paid = httpx.post(f"{rail.url}/checkout", data=form, timeout=10)
    assert paid.status_code == 303 and "rail_status=paid" in paid.headers["location"]
    assert len(confirm(loan_id)) == 1
    assert me.loan(loan_id)["status"] == "Repaid" and me.due(loan_id)["payoff"] == 0

    # Someone else, registered and signed in: the loan is not found, and not in their list.
    carol = client_for(keys["carol"])
    kyc(carol, 13)
    carol.login()
    assert api_error(carol.loan, loan_id).status == 404 and carol.loans() == []
    assert api_error(carol.due, loan_id).status == 404

"""Applications by product over HTTP, end to end: the borrower signs a product version, a principal and a number of
installments; the API checks the signature, relays it, and the contracts take every other term from the product.

What the catalogue or the book refuses comes back as a 4xx naming the rule, and nothing is on-chain; the automatic
policy approves only what the product lets it; a service fee comes out of the payout.
"""

from __future__ import annotations

import pytest
import step_up_codes
from api_outcomes import api_error
from eth_account import Account
from web3.exceptions import ContractCustomError

from api.schemas import EXAMPLE_DISBURSED_AT, EXAMPLE_LOAN, EXAMPLE_SCHEDULE
from api.schemas.products import EXAMPLE_PRODUCT, EXAMPLE_QUOTE
from ledger import typed_data
from oracle.payments.rail import PaymentRail, create_app
from oracle.payments.signatures import RsaScheme

DAY = 86_400


def _body(borrower, signer, *, product_id: int, version: int, principal: int, installments: int) -> dict:
    """`POST /v1/loans` for `borrower` (signed in), the application signed by `signer`'s key."""
    params = borrower._request("GET", "/v1/loans/request-params")
    message = typed_data.loan_application(
        chain_id=params["chain_id"], book=params["loan_book"], borrower=borrower.account.address,
        product_id=product_id, product_version=version, principal=principal, installments=installments,
        nonce=params["nonce"], deadline=params["deadline"])
    return {"product_id": product_id, "product_version": version, "principal": principal,
            "installments": installments, "deadline": params["deadline"],
            "signature": "0x" + typed_data.sign(signer.key, message).hex()}


def test_a_quote_and_an_application_for_a_product_give_the_products_terms(api, borrower, publish, stack):
    product_id = publish(name="12-month", annual_rate_bps=1_200, service_fee_bps=100, min_installments=6,
                         early_repayment="ReduceInstallmentAmount", auto_approve=False, auto_approve_max_principal=0)
    quote = borrower.quote(product_id, 240_000, 12)
    assert (quote["product_id"], quote["product_version"], quote["currency"], quote["annual_rate_bps"]) == (
        product_id, 1, "CNY", 1_200)
    assert (quote["service_fee"], quote["net_paid_out"], quote["auto_approvable"]) == (2_400, 237_600, False)
    terms = borrower.product(product_id)
    schedule = stack.book.functions.quote((240_000, b"CNY", 1_200, 0, 12, 30 * DAY, terms["grace_period"],
                                           terms["late_fee_bps"], terms["penalty_rate_bps"], terms["default_after"],
                                           2_400, product_id, 1, 0, 1, 1), 0, 0, 0).call()
    assert [(r["due_at"], r["principal"], r["interest"]) for r in quote["schedule"]] == [tuple(r) for r in schedule]
    interest = sum(r[2] for r in schedule)
    assert (quote["total_interest"], quote["total_repaid"], quote["total_cost"]) == (
        interest, 240_000 + interest, interest + 2_400)
    assert (quote["cost_cap_bps"], quote["within_cost_cap"]) == (2_400, True)

    applied = borrower.apply(product_id, 240_000, 12)
    loan = borrower.loan(applied["loan_id"])
    assert {k: loan[k] for k in ("product_id", "product_version", "principal", "installments", "annual_rate_bps",
                                 "service_fee", "frequency", "early_repayment", "auto_approvable")} == {
        "product_id": product_id, "product_version": 1, "principal": 240_000, "installments": 12,
        "annual_rate_bps": 1_200, "service_fee": 2_400, "frequency": "FixedInterval",
        "early_repayment": "ReduceInstallmentAmount", "auto_approvable": False}


def test_a_signature_not_the_borrowers_or_over_another_application_is_refused_before_any_gas(
        api, http, borrower, application, stack):
    signed = {"product_id": application["product_id"], "version": 1, "principal": application["principal"],
              "installments": application["installments"]}
    headers = {"authorization": f"Bearer {borrower.token}"}
    forged = _body(borrower, Account.create(), **signed)
    inflated = {**_body(borrower, borrower.account, **signed), "principal": application["principal"] * 5}
    older = {**_body(borrower, borrower.account, **signed), "installments": 6}
    for n, body in enumerate((forged, inflated, older)):
        answer = http.post("/v1/loans", json=body, headers={**headers, "idempotency-key": f"k{n}",
                                                           **step_up_codes.apply_header(http.app, borrower, body)})
        assert (answer.status_code, answer.json()["error"]["code"]) == (422, "invalid_signature")
    assert stack.book.functions.loanCount().call() == 0


def test_what_the_catalogue_refuses_is_a_4xx_naming_the_rule_and_nothing_is_on_chain(
        api, borrower, operator, publish, application, stack, keys, client_for):
    product_id = application["product_id"]
    cases = [
        ((product_id, 999, 3), 422, "product_catalog_principal_out_of_range"),
        ((product_id, 120_000, 24), 422, "product_catalog_installments_out_of_range"),
        ((product_id, 120_000, 2), 422, "product_catalog_installments_out_of_range"),
        ((999, 120_000, 3), 404, "product_catalog_unknown_product"),
    ]
    for (pid, principal, installments), status, code in cases:
        error = api_error(borrower.apply, pid, principal, installments, version=1)
        assert (error.status, error.code) == (status, code), (pid, principal, installments)
    assert "999" in api_error(borrower.apply, product_id, 999, 3).message  # the message names the amount

    dollars = publish(currency="USD")  # the credit oracle's limits are in CNY
    error = api_error(borrower.apply, dollars, 120_000, 3)
    assert (error.status, error.code) == (422, "loan_book_no_credit_limit")

    second = client_for(keys["operator2"])  # two operators decide a product: the operator proposes, they confirm
    second.confirm(operator.change_product(product_id, _product_body(operator.product(product_id),
                                                                     annual_rate_bps=1_800))["proposal_id"])
    error = api_error(borrower.apply, product_id, 120_000, 3, version=1)  # signed for version 1; version 2 is out
    assert (error.status, error.code) == (409, "product_catalog_version_changed")
    assert borrower.apply(product_id, 120_000, 3)["loan_id"] == 1  # the SDK signs the latest version

    cheaper = publish(annual_rate_bps=2_000)
    stack.catalog.functions.setCostCap(1_000).transact({"from": keys["admin"].address})
    error = api_error(borrower.apply, cheaper, 120_000, 3)
    assert (error.status, error.code) == (422, "product_catalog_cost_above_cap")
    quote_error = api_error(borrower.quote, cheaper, 120_000, 3)
    assert quote_error.code == "product_catalog_cost_above_cap"  # the quote refuses what the application would

    second.confirm(operator.retire_product(product_id)["proposal_id"])
    error = api_error(borrower.apply, product_id, 120_000, 3, version=2)
    assert (error.status, error.code) == (409, "product_catalog_retired")
    assert stack.book.functions.loanCount().call() == 1


def _product_body(product: dict, **changes) -> dict:
    """A product as read (GET /v1/products/{id}) turned back into its publishing body, with `changes`."""
    drop = ("id", "version", "latest_version", "retired")
    return {**{k: v for k, v in product.items() if k not in drop}, **changes}


def test_the_policy_approves_only_what_the_product_lets_it(api, operator, borrower, publish, policy):
    operator.set_auto_approve(True)
    manual = publish(auto_approve=False, auto_approve_max_principal=0)
    capped = publish(auto_approve=True, auto_approve_max_principal=100_000)
    assert borrower.apply(manual, 50_000, 3)["status"] == "Requested"  # an operator decides
    assert borrower.apply(capped, 120_000, 3)["status"] == "Requested"  # above the product's automatic limit
    within = borrower.apply(capped, 100_000, 3)
    assert (within["status"], within["decision"]) == ("Requested", None)  # the policy's process decides after
    assert policy().decided == {within["loan_id"]: "approved"}
    assert [loan["status"] for loan in borrower.loans()] == ["Requested", "Requested", "Approved"]
    assert [loan["auto_approvable"] for loan in borrower.loans()] == [False, False, True]
    assert operator.approve(1)["decision"] == "approved"  # the operator still may


def test_the_policy_decides_nothing_while_switched_off(api, operator, borrower, application, policy):
    operator.set_auto_approve(False)
    loan_id = borrower.apply(**application)["loan_id"]
    assert policy().decided == {}
    assert borrower.loan(loan_id)["status"] == "Requested"
    operator.set_auto_approve(True)
    assert policy().decided == {loan_id: "approved"}
    assert borrower.wait_for_decision(loan_id, timeout=5)["status"] == "Approved"


def test_the_payout_is_the_principal_less_the_service_fee(api, operator, borrower, publish, serve_app, driver,
                                                           stack, keys):
    _, context = api
    product_id = publish(annual_rate_bps=1_200, service_fee_bps=150)
    rail = PaymentRail("mockpay", RsaScheme.generate())  # no webhook URL: the payout stays with the rail
    with serve_app(create_app(rail)) as url:
        context.settings = context.settings.model_copy(update={"rail_url": url})
        loan_id = borrower.apply(product_id, 200_000, 6)["loan_id"]
        operator.approve(loan_id)  # approving orders the payout
    (payment,) = rail.payments.values()
    assert (payment.loan_id, payment.amount) == (loan_id, 200_000 - 3_000)
    gross = stack.book.functions.confirmDisbursement(loan_id, b"payout-gross".ljust(32, b"\0"), 200_000, driver.now)
    with pytest.raises(ContractCustomError) as refused:  # the book takes the net amount only
        gross.call({"from": keys["oracle"].address})
    assert stack.errors.from_exception(refused.value).name == "LoanBookDisbursementMismatch"
    driver.disburse(loan_id, payment.amount, b"payout-net")
    assert context.wait_indexed(context.w3.eth.block_number)
    loan = borrower.loan(loan_id)
    assert (loan["status"], loan["service_fee"], loan["principal"]) == ("Active", 3_000, 200_000)



def _quote_of(stack, terms: dict, principal: int, installments: int, service_fee: int) -> list[tuple]:
    """The loan book's quote for a loan of `terms` (an example loan or product)."""
    return [tuple(r) for r in stack.book.functions.quote((
        principal, terms["currency"].encode(), terms["annual_rate_bps"], typed_data.Amortization.ANNUITY,
        installments, terms["interval"], terms["grace_period"], terms["late_fee_bps"], terms["penalty_rate_bps"],
        terms["default_after"], service_fee, 1, 1, typed_data.Frequency.FIXED_INTERVAL,
        typed_data.DayCount.ACTUAL_365_FIXED, typed_data.EarlyRepayment.REDUCE_INSTALLMENTS),
        0, 0, 0).call()]  # paid out at time 0: due dates are seconds after the payout


def test_the_documented_examples_are_the_books_quotes(stack):
    # /docs tells the story of one loan and one quote; their schedules must be what the loan book would quote.
    for terms in (EXAMPLE_LOAN, EXAMPLE_PRODUCT):
        assert (terms["amortization"], terms["frequency"], terms["day_count"], terms["early_repayment"]) == (
            "Annuity", "FixedInterval", "Actual365Fixed", "ReduceInstallments")
    loan = _quote_of(stack, EXAMPLE_LOAN, EXAMPLE_LOAN["principal"], EXAMPLE_LOAN["installments"], 0)
    assert [(r["due_at"] - EXAMPLE_DISBURSED_AT, r["principal"], r["interest"]) for r in EXAMPLE_SCHEDULE] == loan

    quote = EXAMPLE_QUOTE
    assert quote["service_fee"] == quote["principal"] * EXAMPLE_PRODUCT["service_fee_bps"] // 10_000
    quoted = _quote_of(stack, EXAMPLE_PRODUCT, quote["principal"], quote["installments"], quote["service_fee"])
    assert [(r["due_at"], r["principal"], r["interest"]) for r in quote["schedule"]] == quoted
    interest = sum(r[2] for r in quoted)
    assert (quote["total_interest"], quote["total_repaid"], quote["total_cost"]) == (
        interest, quote["principal"] + interest, interest + quote["service_fee"])

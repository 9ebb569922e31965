"""The automatic policy's key (POLICY_ROLE on the loan book) as a bounded signer: it approves, or rejects with the
book's reason, only a loan its product made autoApprovable at application; everything else is a person's.

An operator may still reject any Requested loan; the policy may not write off, declare a default or approve beyond
its product's automatic-approval principal.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from web3.logs import DISCARD

from ledger.products import offering

DAY = 86_400
REQUESTED, APPROVED, REJECTED = 1, 2, 3  # ILoanBook.LoanStatus
STALE = b"stale_score".ljust(32, b"\0")


@pytest.fixture
def loans(driver, stack, keys, loan_terms):
    """Alice's loans: `within` the policy's bound (autoApprovable), `beyond` it on the same product, and `manual`
    on a product that leaves every loan to a person."""
    driver.product(loan_terms)  # opens the catalogue's ceilings
    product = replace(offering(loan_terms, "policy"), max_principal=2 * loan_terms.principal, auto_approve=True,
                      auto_approve_max_principal=loan_terms.principal)
    driver.by_two_operators(stack.catalog.functions.createProduct(product.as_tuple(stack.catalog)))
    product_id = stack.catalog.functions.productCount().call()
    driver.register(keys["alice"])
    driver.score(keys["alice"])
    within = driver.apply(keys["alice"], product_id, 1, loan_terms.principal, loan_terms.installments)
    beyond = driver.apply(keys["alice"], product_id, 1, loan_terms.principal + 1, loan_terms.installments)
    manual = driver.request(keys["alice"], loan_terms)
    assert [stack.book.functions.loanOf(loan_id).call()[2] for loan_id in (within, beyond, manual)] == [REQUESTED] * 3
    return {"within": within, "beyond": beyond, "manual": manual}


def status(stack, loan_id: int) -> int:
    return stack.book.functions.loanOf(loan_id).call()[2]


def test_the_policy_rejects_what_it_may_approve_and_the_event_names_it(driver, stack, keys, loans):
    receipt = driver.send(stack.book.functions.reject(loans["within"], STALE), keys["policy"])
    assert status(stack, loans["within"]) == REJECTED
    (rejected,) = stack.book.events.LoanRejected().process_receipt(receipt, errors=DISCARD)
    assert (rejected.args.loanId, rejected.args.reason, rejected.args.actor) == (loans["within"], STALE,
                                                                                 keys["policy"].address)


def test_the_policy_cannot_reject_what_it_may_not_approve(stack, keys, loans, revert_name):
    policy = keys["policy"].address
    for loan_id in (loans["beyond"], loans["manual"]):
        assert revert_name(stack.book.functions.reject(loan_id, STALE), policy) == "LoanBookNotAutoApprovable"
        assert revert_name(stack.book.functions.approve(loan_id), policy) == "LoanBookNotAutoApprovable"
        assert status(stack, loan_id) == REQUESTED


def test_an_operator_rejects_any_requested_loan_a_stranger_none(driver, stack, keys, loans, revert_name):
    for name in ("alice", "eve", "oracle", "pauser", "signer"):
        assert revert_name(stack.book.functions.reject(loans["within"], STALE), keys[name].address) == \
            "AccessControlUnauthorizedAccount", name
    for loan_id in loans.values():
        driver.send(stack.book.functions.reject(loan_id, STALE), keys["operator"])
        assert status(stack, loan_id) == REJECTED


def test_the_policy_rejects_only_a_requested_loan_and_not_while_paused(w3, driver, stack, keys, loans, revert_name):
    policy = keys["policy"].address
    driver.send(stack.book.functions.approve(loans["within"]), keys["policy"])
    assert revert_name(stack.book.functions.reject(loans["within"], STALE), policy) == "LoanBookInvalidStatus"
    driver.send(stack.book.functions.pause(), keys["pauser"])
    assert revert_name(stack.book.functions.reject(loans["beyond"], STALE), keys["operator"].address) == "EnforcedPause"
    driver.send(stack.book.functions.unpause(), keys["pauser"])
    driver.send(stack.book.functions.reject(loans["beyond"], STALE), keys["operator"])


def test_the_policy_cannot_write_off_declare_default_or_approve_beyond_its_bound(driver, stack, keys, loan_terms,
                                                                                revert_name):
    policy = keys["policy"].address
    loan_id = driver.active_loan(keys["bob"], loan_terms)
    driver.advance(30 * DAY + loan_terms.defaultAfter + DAY)
    assert revert_name(stack.book.functions.declareDefault(loan_id), policy) == "LoanBookUnauthorizedDefault"
    driver.send(stack.book.functions.declareDefault(loan_id), keys["oracle"])
    assert revert_name(stack.book.functions.writeOff(loan_id), policy) == "AccessControlUnauthorizedAccount"
    assert revert_name(stack.book.functions.setPayoutThreshold(0), policy) == "AccessControlUnauthorizedAccount"

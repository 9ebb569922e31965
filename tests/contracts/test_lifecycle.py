"""A loan's life on the real contract: signed application, approval or rejection, cancellation,
disbursement, repayment to closure; and the ways each step is refused."""

from __future__ import annotations

import pytest
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from ledger import typed_data
from ledger.errors import ErrorDecoder
from ledger.typed_data import Amortization, LoanTerms

DAY = 86_400
TERMS = LoanTerms(120_000, b"CNY", 2400, Amortization.ANNUITY, 12, 30 * DAY, 3 * DAY, 500, 1800, 90 * DAY)


def _send(w3, fn, sender):
    return w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))


def _error_name(stack, exc: ContractCustomError) -> str:
    decoded = ErrorDecoder([stack.book.abi, stack.registry.abi, stack.oracle.abi]).from_exception(exc)
    assert decoded is not None, f"not one of our custom errors: {exc!r}"
    return decoded.name


@pytest.fixture
def registered(w3, stack, keys):
    now = w3.eth.get_block("latest").timestamp
    _send(w3, stack.registry.functions.registerBorrower(keys["alice"].address, b"\x11" * 32, now + 365 * DAY),
          keys["operator"].address)
    return keys["alice"]


def test_signed_request_then_replay_wrong_chain_stale_score_and_role_are_refused(w3, stack, keys, driver, registered):
    book, relayer = stack.book, keys["eve"].address
    product_id, version = driver.product(TERMS)
    application, deadline, sig = driver.application(registered, product_id, version, TERMS.principal, 12)
    _send(w3, book.functions.requestLoan(application, registered.address, deadline, sig), relayer)
    assert book.functions.loanCount().call() == 1

    # The same signed request again: a replay, refused with its own error.
    with pytest.raises(ContractCustomError) as replay:
        book.functions.requestLoan(application, registered.address, deadline, sig).call({"from": relayer})
    assert _error_name(stack, replay.value) == "LoanBookRequestReplayed"

    # Signed for another chain: not the borrower's signature here.
    message = typed_data.loan_application(chain_id=1, book=book.address, borrower=registered.address,
                                          product_id=product_id, product_version=version, principal=TERMS.principal,
                                          installments=12, nonce=1, deadline=deadline)
    with pytest.raises(ContractCustomError) as wrong_chain:
        book.functions.requestLoan(application, registered.address, deadline,
                                   typed_data.sign(registered.key, message)).call({"from": relayer})
    assert _error_name(stack, wrong_chain.value) == "LoanBookInvalidSignature"

    # No score yet: approval refused; a stranger cannot approve at all.
    with pytest.raises(ContractCustomError) as stale:
        book.functions.approve(1).call({"from": keys["operator"].address})
    assert _error_name(stack, stale.value) == "LoanBookStaleScore"
    with pytest.raises(ContractCustomError) as stranger:
        book.functions.approve(1).call({"from": relayer})
    assert _error_name(stack, stranger.value) == "AccessControlUnauthorizedAccount"


# ---------------------------------------------------------------- the lifecycle, step by step

REQUESTED, APPROVED, REJECTED, CANCELLED, ACTIVE, REPAID = 1, 2, 3, 4, 5, 6


def _status(stack, loan_id: int) -> int:
    return stack.book.functions.loanOf(loan_id).call()[2]


def _one(event, receipt):
    (log,) = event().process_receipt(receipt, errors=DISCARD)
    return log.args


def test_a_loan_from_request_to_repaid_step_by_step(w3, stack, keys, driver, loan_terms):
    """120,000 minor units at 24% a year, three 30-day annuity installments.

    The period rate is 24% * 30/365 = 1.9726...%; the level payment P*r/(1-(1+r)^-3) = 41,588.357. Each
    installment's interest is rounded on the exact balance, its principal on the cumulative principal:
    120,000 * r = 2,367.12 -> 2,367 and 39,221.23 -> 39,221; then 1,593.44 -> 1,593 and 79,216.15 -> 79,216
    (39,995); the last absorbs the remainder, 40,784, with 40,783.85 * r = 804.50 -> 805: a unit over the level
    payment, within LoanMath's 1.5 (it rounds interest once on the exact balance, so that prepaying more never
    costs more).
    """
    book, alice, relayer = stack.book, keys["alice"], keys["eve"].address
    driver.register(alice)
    driver.score(alice, score=712, limit=500_000)

    loan_id = driver.request(alice, loan_terms)
    assert _status(stack, loan_id) == REQUESTED
    (requested,) = [log.args for log in book.events.LoanRequested().get_logs(from_block="latest")]
    assert (requested.loanId, requested.borrower, requested.nonce, requested.relayer) == (
        loan_id, alice.address, 0, relayer)
    assert requested.terms["principal"] == 120_000
    assert book.functions.outstandingPrincipal(alice.address, b"CNY").call() == 0

    receipt = _send(w3, book.functions.approve(loan_id), keys["operator"].address)
    approved = _one(book.events.LoanApproved, receipt)
    assert (approved.score, approved.creditLimit, approved.exposureAfter, approved.actor) == (
        712, 500_000, 120_000, keys["operator"].address)
    assert _status(stack, loan_id) == APPROVED
    assert book.functions.outstandingPrincipal(alice.address, b"CNY").call() == 120_000

    paid_at = driver.now
    payout = b"payout-story".ljust(32, b"\0")
    receipt = w3.eth.wait_for_transaction_receipt(
        book.functions.confirmDisbursement(loan_id, payout, 120_000, paid_at).transact({"from": keys["oracle"].address}))
    disbursed = _one(book.events.LoanDisbursed, receipt)
    assert (disbursed.paymentRef, disbursed.amount, disbursed.paidAt, disbursed.actor) == (
        payout, 120_000, paid_at, keys["oracle"].address)
    assert _status(stack, loan_id) == ACTIVE
    schedule = book.functions.schedule(loan_id).call()
    assert schedule == [(paid_at + 30 * DAY, 39_221, 2_367), (paid_at + 60 * DAY, 39_995, 1_593),
                        (paid_at + 90 * DAY, 40_784, 805)]

    outstanding = 120_000
    for k, (due_at, principal, interest) in enumerate(schedule, start=1):
        w3.provider.make_request("evm_setNextBlockTimestamp", [due_at])
        receipt = w3.eth.wait_for_transaction_receipt(book.functions.confirmRepayment(
            loan_id, f"inst-{k}".encode().ljust(32, b"\0"), principal + interest, due_at).transact(
            {"from": keys["oracle"].address, "gas": 1_000_000}))
        applied = _one(book.events.RepaymentApplied, receipt)
        assert (applied.amount, applied.principal, applied.interest, applied.lateFee, applied.penalty) == (
            principal + interest, principal, interest, 0, 0)
        outstanding -= principal
        assert book.functions.outstandingPrincipal(alice.address, b"CNY").call() == outstanding
        assert _status(stack, loan_id) == (REPAID if k == 3 else ACTIVE)
    repaid = _one(book.events.LoanRepaid, receipt)
    assert (repaid.principalRepaid, repaid.interestPaid) == (120_000, 2_367 + 1_593 + 805)
    assert book.functions.amountDue(loan_id, driver.now + 365 * DAY).call() == (0, 0, 0, 0, 0)


def test_a_rejected_loan_records_why_and_who_and_goes_no_further(w3, stack, keys, driver, loan_terms, revert_name):
    book, alice, operator = stack.book, keys["alice"], keys["operator"].address
    driver.register(alice)
    driver.score(alice)
    loan_id = driver.request(alice, loan_terms)
    reason = b"limit-policy".ljust(32, b"\0")
    receipt = w3.eth.wait_for_transaction_receipt(book.functions.reject(loan_id, reason).transact({"from": operator}))
    rejected = _one(book.events.LoanRejected, receipt)
    assert (rejected.loanId, rejected.borrower, rejected.reason, rejected.actor) == (
        loan_id, alice.address, reason, operator)
    assert _status(stack, loan_id) == REJECTED
    assert revert_name(book.functions.approve(loan_id), operator) == "LoanBookInvalidStatus"
    assert revert_name(book.functions.reject(loan_id, reason), operator) == "LoanBookInvalidStatus"
    assert revert_name(book.functions.cancel(loan_id), alice.address) == "LoanBookInvalidStatus"
    ref = b"payout-rejected".ljust(32, b"\0")
    assert revert_name(book.functions.confirmDisbursement(loan_id, ref, loan_terms.principal, driver.now),
                       keys["oracle"].address) == "LoanBookInvalidStatus"
    assert book.functions.outstandingPrincipal(alice.address, b"CNY").call() == 0


def test_a_request_is_refused_when_expired_signed_by_another_or_the_borrower_is_not_eligible(
        w3, stack, keys, driver, loan_terms, revert_name):
    book, registry, relayer, operator = stack.book, stack.registry, keys["eve"].address, keys["operator"].address
    alice, bob, carol, dave = keys["alice"], keys["bob"], keys["carol"], keys["dave"]
    driver.register(alice)

    product_id, version = driver.product(loan_terms)

    def request(borrower, signer, deadline):
        application, _, _ = driver.application(borrower, product_id, version, loan_terms.principal,
                                               loan_terms.installments)
        _, _, signature = driver.application(signer, product_id, version, loan_terms.principal,
                                             loan_terms.installments, deadline=deadline,
                                             nonce=book.functions.nonces(borrower.address).call())
        # Another signer's application, relayed as the borrower's: not the borrower's signature.
        return book.functions.requestLoan(application, borrower.address, deadline, signature)

    now = driver.now
    assert revert_name(request(alice, alice, now - 1), relayer) == "LoanBookExpiredRequest"
    assert revert_name(request(alice, bob, now + DAY), relayer) == "LoanBookInvalidSignature"
    assert revert_name(request(carol, carol, now + DAY), relayer) == "LoanBookBorrowerNotEligible"  # never registered

    driver.register(dave)
    _send(w3, registry.functions.revokeBorrower(dave.address, b"fraud".ljust(32, b"\0")), operator)
    assert revert_name(request(dave, dave, now + DAY), relayer) == "LoanBookBorrowerNotEligible"

    # KYC that expires between application and approval: the approval is refused too.
    _send(w3, registry.functions.registerBorrower(bob.address, b"\x22" * 32, now + 10 * DAY), operator)
    driver.score(bob)
    loan_id = driver.request(bob, loan_terms)
    driver.advance(10 * DAY)
    assert revert_name(book.functions.approve(loan_id), operator) == "LoanBookBorrowerNotEligible"
    assert revert_name(request(bob, bob, driver.now + DAY), relayer) == "LoanBookBorrowerNotEligible"
    # A KYC renewal restores both.
    _send(w3, registry.functions.updateBorrower(bob.address, b"\x23" * 32, driver.now + 365 * DAY), operator)
    driver.approve(loan_id)
    assert _status(stack, loan_id) == APPROVED
    assert book.functions.loanCount().call() == 1  # nothing else was recorded


def test_a_score_older_than_the_maximum_age_cannot_back_an_approval(w3, stack, keys, driver, loan_terms, revert_name):
    book, alice, operator = stack.book, keys["alice"], keys["operator"].address
    max_age = stack.oracle.functions.maxScoreAge().call()
    driver.register(alice)
    driver.score(alice, report_id=1)
    scored_at = stack.oracle.functions.scoreOf(alice.address).call()[2]
    loan_id = driver.request(alice, loan_terms)
    driver.advance(scored_at + max_age + 1 - driver.now)
    assert revert_name(book.functions.approve(loan_id), operator) == "LoanBookStaleScore"
    driver.score(alice, report_id=2)
    driver.approve(loan_id)
    assert _status(stack, loan_id) == APPROVED


def test_a_borrower_cancels_by_signature_once_and_only_before_disbursement(w3, stack, keys, driver, loan_terms,
                                                                          revert_name):
    book, alice, relayer = stack.book, keys["alice"], keys["eve"].address
    driver.register(alice)
    driver.score(alice)
    loan_id = driver.request(alice, loan_terms)

    def cancel(signer, deadline, nonce=None, loan=loan_id):
        nonce = book.functions.nonces(alice.address).call() if nonce is None else nonce
        message = typed_data.cancel_loan(chain_id=w3.eth.chain_id, book=book.address, loan_id=loan, nonce=nonce,
                                         deadline=deadline)
        return book.functions.cancelWithSignature(loan, deadline, typed_data.sign(signer.key, message))

    deadline = driver.now + DAY
    assert revert_name(cancel(keys["bob"], deadline), relayer) == "LoanBookInvalidSignature"
    assert revert_name(cancel(alice, driver.now - 1), relayer) == "LoanBookExpiredRequest"
    signed = cancel(alice, deadline)
    receipt = _send(w3, signed, relayer)
    cancelled = _one(book.events.LoanCancelled, receipt)
    assert (cancelled.loanId, cancelled.borrower, cancelled.actor) == (loan_id, alice.address, relayer)
    assert _status(stack, loan_id) == CANCELLED
    assert revert_name(signed, relayer) == "LoanBookRequestReplayed"

    # Once the money is out, no cancellation in either form.
    active = driver.request(alice, loan_terms)
    driver.approve(active)
    driver.disburse(active, loan_terms.principal, b"payout-c")
    assert revert_name(cancel(alice, deadline, loan=active), relayer) == "LoanBookInvalidStatus"
    assert revert_name(book.functions.cancel(active), alice.address) == "LoanBookInvalidStatus"
    assert _status(stack, active) == ACTIVE


# ---------------------------------------------------------------- applications by product

def _published(driver, **changes):
    """A product of 100,000..2,000,000 minor units in 3 to 6 installments (0.5 % service fee), as the operator publishes
    it; its id."""
    from dataclasses import replace

    from ledger.products import DayCount, EarlyRepayment, Frequency, Product, product_name
    product = Product(
        name=product_name("3-6 months"), currency=b"CNY", min_principal=100_000, max_principal=2_000_000,
        min_installments=3, max_installments=6, frequency=Frequency.FIXED_INTERVAL, day_count=DayCount.ACTUAL_365_FIXED,
        interval=30 * DAY, annual_rate_bps=1_800, amortization=Amortization.ANNUITY, grace_period=3 * DAY,
        late_fee_bps=500, penalty_rate_bps=1_200, default_after=90 * DAY, service_fee_bps=50,
        early_repayment=EarlyRepayment.REDUCE_INSTALLMENT_AMOUNT, auto_approve=True, auto_approve_max_principal=500_000)
    catalog = driver.stack.catalog
    driver.by_two_operators(catalog.functions.createProduct(replace(product, **changes).as_tuple(catalog)))
    return catalog.functions.productCount().call()


def test_the_book_copies_the_product_version_the_borrower_signed_for(w3, stack, keys, driver, revert_name):
    book, catalog, alice = stack.book, stack.catalog, keys["alice"]
    driver.register(alice)
    driver.score(alice)
    product_id = _published(driver)
    loan_id = driver.apply(alice, product_id, 1, 1_000_000, 4)
    (requested,) = [log.args for log in book.events.LoanRequested().get_logs(from_block="latest")]
    terms = dict(requested.terms)
    assert (terms["principal"], terms["installments"], terms["annualRateBps"], terms["serviceFee"], terms["productId"],
            terms["productVersion"], terms["earlyRepayment"]) == (1_000_000, 4, 1_800, 5_000, product_id, 1, 1)
    assert requested.autoApprovable is False  # above the product's automatic-approval principal
    small = driver.apply(alice, product_id, 1, 500_000, 3)
    assert [log.args.autoApprovable for log in book.events.LoanRequested().get_logs(from_block="latest")] == [True]

    # A new version changes nothing for loans already made, and the old version can no longer be applied for.
    dearer = catalog.functions.product(product_id, 1).call()
    driver.by_two_operators(catalog.functions.changeProduct(product_id, (*dearer[:9], 1_900, *dearer[10:])))
    assert book.functions.loanOf(loan_id).call()[0] == tuple(requested.terms.values())
    application, deadline, signature = driver.application(alice, product_id, 1, 1_000_000, 4)
    assert revert_name(book.functions.requestLoan(application, alice.address, deadline, signature),
                       keys["eve"].address) == "ProductCatalogVersionChanged"

    # The payout is the principal less the service fee, to the unit.
    driver.approve(loan_id)
    ref = b"payout-fee".ljust(32, b"\0")
    assert revert_name(book.functions.confirmDisbursement(loan_id, ref, 1_000_000, driver.now),
                       keys["oracle"].address) == "LoanBookDisbursementMismatch"
    driver.disburse(loan_id, 995_000, b"payout-fee")
    assert book.functions.loanOf(loan_id).call()[2] == ACTIVE
    assert book.functions.loanOf(small).call()[2] == REQUESTED


@pytest.mark.parametrize("application,error", [
    ((1, 1, 99_999, 3), "ProductCatalogPrincipalOutOfRange"),
    ((1, 1, 2_000_001, 3), "ProductCatalogPrincipalOutOfRange"),
    ((1, 1, 100_000, 2), "ProductCatalogInstallmentsOutOfRange"),
    ((1, 1, 100_000, 7), "ProductCatalogInstallmentsOutOfRange"),
    ((1, 2, 100_000, 3), "ProductCatalogUnknownProduct"),
    ((9, 1, 100_000, 3), "ProductCatalogUnknownProduct"),
])
def test_an_application_outside_the_product_is_refused_by_name(stack, keys, driver, revert_name, application, error):
    alice = keys["alice"]
    driver.register(alice)
    assert _published(driver) == 1
    signed, deadline, signature = driver.application(alice, *application)
    assert revert_name(stack.book.functions.requestLoan(signed, alice.address, deadline, signature),
                       keys["eve"].address) == error


def test_a_retired_product_or_one_in_a_currency_without_a_limit_is_refused(stack, keys, driver, revert_name):
    book, alice, eve = stack.book, keys["alice"], keys["eve"].address
    driver.register(alice)
    retired = _published(driver)
    driver.by_two_operators(stack.catalog.functions.retireProduct(retired))
    dollars = _published(driver, currency=b"USD")
    for product_id, error in ((retired, "ProductCatalogRetired"), (dollars, "LoanBookNoCreditLimit")):
        application, deadline, signature = driver.application(alice, product_id, 1, 100_000, 3)
        assert revert_name(book.functions.requestLoan(application, alice.address, deadline, signature), eve) == error
    assert book.functions.creditLimitCurrency().call() == b"CNY"
    assert book.functions.loanCount().call() == 0


def test_the_signature_covers_every_field_of_the_application(stack, keys, driver, revert_name):
    """The book derives the terms from what was signed: a relayer that changes the principal, the count, the
    product or the version presents an application the borrower did not sign."""
    book, alice, eve = stack.book, keys["alice"], keys["eve"].address
    driver.register(alice)
    first, second = _published(driver), _published(driver)
    application, deadline, signature = driver.application(alice, first, 1, 100_000, 3)
    for changed in ((second, 1, 100_000, 3), (first, 1, 100_001, 3), (first, 1, 100_000, 4)):
        assert revert_name(book.functions.requestLoan(changed, alice.address, deadline, signature), eve) == \
            "LoanBookInvalidSignature"
    driver.send(book.functions.requestLoan(application, alice.address, deadline, signature), keys["eve"])
    assert book.functions.loanCount().call() == 1

"""Hardship reschedule on the real loan book (issue 17): an operator offers a longer schedule within the product's
rules and the cost cap, the borrower accepts by signing (or as themselves), and the book re-bases the outstanding
principal from the next due date, with events that keep the replaced schedule auditable. Each refusal by name."""

from __future__ import annotations

from dataclasses import replace

import pytest
from web3.logs import DISCARD

from ledger import typed_data
from ledger.book import LoanStatus
from ledger.chain import ChainClient
from ledger.forwarding import build_request, relay, sign_request
from ledger.products import offering
from ledger.typed_data import Amortization, DayCount, Frequency, LoanTerms

DAY = 86_400
# conftest's TERMS: 120,000 minor units, 24% a year, three 30-day annuity installments, 3 days' grace.
TERMS = LoanTerms(120_000, b"CNY", 2400, Amortization.ANNUITY, 3, 30 * DAY, 3 * DAY, 500, 1800, 90 * DAY)
LONGEST = 12  # the product's longest term: a loan of TERMS (3 installments) may be stretched up to it
RAY = 10**27


# The same as a calendar-monthly loan charging each month's actual days.
MONTHLY = replace(TERMS, interval=0, frequency=Frequency.MONTHLY, dayCount=DayCount.ACTUAL_365_FIXED)


def publish_wide(driver, terms: LoanTerms = TERMS) -> tuple[int, int]:
    """A product offering `terms`' principal over 3 to 12 installments, published by two operators."""
    driver.product(TERMS)  # opens the catalogue's ceilings as every test product needs
    catalog = driver.stack.catalog
    wide = replace(offering(terms, "hardship"), max_installments=LONGEST)
    driver.by_two_operators(catalog.functions.createProduct(wide.as_tuple(catalog)))
    return catalog.functions.productCount().call(), 1


def active_loan(driver, borrower, terms: LoanTerms = TERMS) -> int:
    driver.register(borrower)
    driver.score(borrower)
    loan_id = driver.apply(borrower, *publish_wide(driver, terms), terms.principal, terms.installments)
    driver.approve(loan_id)
    driver.disburse(loan_id, terms.principal, b"payout-hardship")
    return loan_id


@pytest.fixture
def loan(driver, keys) -> int:
    """alice's active loan of TERMS (3 annuity installments 30 days apart), just paid out."""
    return active_loan(driver, keys["alice"])


def offer(driver, loan_id: int, installments: int, expires_in: int = 7 * DAY):
    book = driver.stack.book
    receipt = driver.send(book.functions.offerReschedule(loan_id, installments, driver.now + expires_in),
                          driver.keys["operator"])
    (event,) = book.events.RescheduleOffered().process_receipt(receipt, errors=DISCARD)
    return event.args


def acceptance(driver, borrower, loan_id: int, *, installments=None, deadline=None, nonce=None):
    """(deadline, signature): `borrower`'s signed acceptance of the loan's open offer (or of other terms)."""
    book = driver.stack.book
    offer_id, offered, expires_at, _, _ = book.functions.rescheduleOfferOf(loan_id).call()
    deadline = driver.now + DAY if deadline is None else deadline
    message = typed_data.reschedule_acceptance(
        chain_id=driver.w3.eth.chain_id, book=book.address, loan_id=loan_id, offer_id=offer_id,
        installments=offered if installments is None else installments, expires_at=expires_at,
        nonce=book.functions.nonces(borrower.address).call() if nonce is None else nonce, deadline=deadline)
    return deadline, typed_data.sign(borrower.key, message)


def accept_signed(driver, borrower, loan_id: int):
    book = driver.stack.book
    deadline, signature = acceptance(driver, borrower, loan_id)
    receipt = driver.send(book.functions.acceptRescheduleWithSignature(loan_id, deadline, signature), driver.keys["eve"])
    (event,) = book.events.RescheduleAccepted().process_receipt(receipt, errors=DISCARD)
    return event.args, (deadline, signature)


def cost_ok(driver, loan_id: int) -> bool:
    """The schedule left, as the catalogue's cost check sees a loan of the outstanding principal over it."""
    book = driver.stack.book
    terms = list(book.functions.loanOf(loan_id).call()[0])
    outstanding = TERMS.principal - book.functions.progressOf(loan_id).call()[2]
    terms[0], terms[4] = outstanding, len(book.functions.schedule(loan_id).call())
    return driver.stack.catalog.functions.checkCost(tuple(terms), 0).call()[0]


def test_an_offer_within_the_rules_accepted_lowers_the_installment_and_payments_follow_the_new_schedule(
        driver, keys, loan):
    book, alice = driver.stack.book, keys["alice"]
    disbursed_at = book.functions.loanOf(loan).call()[3]
    old = book.functions.schedule(loan).call()
    driver.advance(10 * DAY)
    receipt = driver.send(book.functions.requestReschedule(loan, 6), alice)
    (asked,) = book.events.RescheduleRequested().process_receipt(receipt, errors=DISCARD)
    assert (asked.args.borrower, asked.args.installments) == (alice.address, 6)
    offered = offer(driver, loan, 6)
    assert offered.installments == 6 and offered.actor == keys["operator"].address

    accepted, _ = accept_signed(driver, alice, loan)
    assert accepted.borrower == alice.address and accepted.offerId == offered.offerId == 1
    previous, current = accepted.previous, accepted.current
    assert (previous.installments, previous.installmentAmount) == (3, old[0][1] + old[0][2])
    assert previous.nextDueAt == current.nextDueAt == disbursed_at + 30 * DAY
    assert current.installments == 6 and current.installmentAmount < previous.installmentAmount
    assert current.installmentAmount == offered.installmentAmount
    assert (accepted.principal, accepted.rebasedAt, accepted.carriedInterest) == (TERMS.principal, 0, 0)

    new = book.functions.schedule(loan).call()
    assert len(new) == 6 and [d for d, _, _ in new] == [disbursed_at + k * 30 * DAY for k in range(1, 7)]
    assert sum(p for _, p, _ in new) == TERMS.principal
    assert new[0][1] + new[0][2] == current.installmentAmount
    assert book.functions.loanOf(loan).call()[0][4] == 6  # the loan's term is now six installments
    assert cost_ok(driver, loan)
    offer_id, _, _, still_open, reschedules = book.functions.rescheduleOfferOf(loan).call()
    assert (offer_id, still_open, reschedules) == (1, False, 1)

    # Payments allocate against the new schedule: each installment on its date pays exactly that installment.
    for k, (due_at, principal, interest) in enumerate(new[:2], start=1):
        driver.w3.provider.make_request("evm_mine", [due_at])
        receipt = driver.send(book.functions.confirmRepayment(loan, f"hardship-{k}".encode().ljust(32, b"\0"),
                                                               principal + interest, due_at), keys["oracle"])
        (paid,) = book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
        assert (paid.args.principal, paid.args.interest, paid.args.paidInstallments) == (principal, interest, k)
    assert tuple(book.functions.amountDue(loan, new[1][0]).call())[:4] == (0, 0, 0, 0)


def test_an_overdue_loan_keeps_its_overdue_interest_and_charges_owed_and_starts_again_at_the_next_date(
        driver, keys, loan):
    book, alice = driver.stack.book, keys["alice"]
    disbursed_at = book.functions.loanOf(loan).call()[3]
    old = book.functions.schedule(loan).call()
    driver.advance(40 * DAY)  # installment 1 is ten days late: its late fee and penalty are running
    due = book.functions.amountDue(loan, driver.now).call()
    assert due[0] == old[0][1] and due[1] == old[0][2] and due[2] > 0

    offer(driver, loan, 6)
    receipt = driver.send(book.functions.acceptReschedule(loan), alice)  # as herself, not signed
    (accepted,) = book.events.RescheduleAccepted().process_receipt(receipt, errors=DISCARD)
    (charges,) = book.events.LateChargesAccrued().process_receipt(receipt, errors=DISCARD)
    args = accepted.args
    assert args.actor == alice.address and args.rebasedAt == 1  # installment 1 is folded into the new plan
    assert args.carriedInterest == old[0][2]  # its interest stays owed: carried into the first new installment
    assert args.principal == TERMS.principal  # nothing capitalised
    assert args.current.nextDueAt == disbursed_at + 60 * DAY and args.current.installments == 6
    assert charges.args.lateFee > 0
    assert book.functions.loanOf(loan).call()[0][4] == 7  # one installment past, six new ones

    after = book.functions.amountDue(loan, driver.now).call()
    assert after[0] == after[1] == 0  # nothing is overdue any more but the charges
    assert after[2] == charges.args.lateFee and after[3] == charges.args.penalty
    assert after[4] == disbursed_at + 60 * DAY
    new = book.functions.schedule(loan).call()
    assert [d for d, _, _ in new] == [disbursed_at + k * 30 * DAY for k in range(2, 8)]
    # The first new installment's date asks its own interest plus the interest carried, and the charges.
    first = book.functions.amountDue(loan, new[0][0]).call()
    assert first[0] == new[0][1] and first[1] == new[0][2] + old[0][2]
    # Not declarable in default while the new schedule is kept.
    assert book.functions.progressOf(loan).call()[0] == 1


@pytest.mark.parametrize("terms", [TERMS, MONTHLY], ids=["fixed-interval", "monthly-actual-days"])
def test_paying_the_new_schedule_on_its_dates_closes_an_overdue_loan(driver, keys, terms):
    book, alice = driver.stack.book, keys["alice"]
    loan = active_loan(driver, alice, terms)
    old = book.functions.schedule(loan).call()
    driver.w3.provider.make_request("evm_mine", [old[0][0] + 10 * DAY])  # the first installment is ten days late
    offer(driver, loan, 5)
    driver.send(book.functions.acceptReschedule(loan), alice)
    new = book.functions.schedule(loan).call()
    assert len(new) == 5 and new[0][0] == old[1][0]  # from the next due date on, on the loan's own calendar
    if terms is MONTHLY:  # the same day of each following month as the loan's own dates
        assert [d for d, _, _ in new[:2]] == [d for d, _, _ in old[1:3]]
    for k, (due_at, principal, interest) in enumerate(new, start=2):
        driver.w3.provider.make_request("evm_mine", [due_at])
        amount = sum(book.functions.amountDue(loan, due_at).call()[:4])  # the first also carries what was overdue
        driver.send(book.functions.confirmRepayment(loan, f"n-{k}".encode().ljust(32, b"\0"), amount, due_at),
                    keys["oracle"])
        assert book.functions.progressOf(loan).call()[0] == k  # installment k of the loan, on time
    assert book.functions.loanOf(loan).call()[2] == LoanStatus.REPAID
    progress = book.functions.progressOf(loan).call()
    assert progress[2] == terms.principal and tuple(progress[6:8]) == (0, 0)  # all principal, no charge left unpaid
    assert book.functions.outstandingPrincipal(alice.address, b"CNY").call() == 0


def test_the_borrower_may_accept_through_the_forwarder_as_herself(driver, keys, loan, w3, stack):
    offer(driver, loan, 6)
    typed = build_request(stack.forwarder, keys["alice"].address, stack.book.functions.acceptReschedule(loan),
                          driver.now + DAY, 2_000_000)
    receipt = relay(ChainClient(w3, keys["eve"], stack.errors), stack.forwarder, typed, sign_request(typed, keys["alice"]))
    (accepted,) = stack.book.events.RescheduleAccepted().process_receipt(receipt, errors=DISCARD)
    assert accepted.args.actor == accepted.args.borrower == keys["alice"].address


def test_offers_outside_the_products_rules_are_refused(driver, keys, loan, revert_name):
    book, operator = driver.stack.book, keys["operator"].address
    later = driver.now + DAY
    assert revert_name(book.functions.offerReschedule(loan, 3, later), operator) == "LoanBookRescheduleOutsideProduct"
    assert revert_name(book.functions.offerReschedule(loan, 2, later), operator) == "LoanBookRescheduleOutsideProduct"
    assert revert_name(book.functions.offerReschedule(loan, LONGEST + 1, later), operator) == \
        "LoanBookRescheduleOutsideProduct"
    assert revert_name(book.functions.offerReschedule(loan, 6, driver.now), operator) == "LoanBookExpiredRequest"
    offer(driver, loan, LONGEST)  # the longest term the product has is allowed


def test_an_offer_over_the_cost_cap_is_refused_and_one_accepted_later_is_checked_again(driver, keys, loan,
                                                                                         revert_name):
    book, catalog, operator = driver.stack.book, driver.stack.catalog, keys["operator"].address
    offer(driver, loan, 6)
    driver.send(catalog.functions.setCostCap(TERMS.annualRateBps - 400), keys["admin"])  # below the loan's rate
    assert revert_name(book.functions.offerReschedule(loan, 6, driver.now + DAY), operator) == \
        "LoanBookRescheduleAboveCap"
    assert revert_name(book.functions.acceptReschedule(loan), keys["alice"].address) == "LoanBookRescheduleAboveCap"


def test_closed_and_defaulted_loans_cannot_be_rescheduled(driver, keys, loan, revert_name):
    book, operator = driver.stack.book, keys["operator"].address
    offer(driver, loan, 6)
    driver.advance(30 * DAY + TERMS.defaultAfter + DAY)
    driver.send(book.functions.declareDefault(loan), keys["operator"])
    assert revert_name(book.functions.offerReschedule(loan, 6, driver.now + DAY), operator) == "LoanBookInvalidStatus"
    assert revert_name(book.functions.requestReschedule(loan, 6), keys["alice"].address) == "LoanBookInvalidStatus"


def test_a_repaid_loan_cannot_be_rescheduled(driver, keys, loan, revert_name):
    book = driver.stack.book
    offer(driver, loan, 6)
    driver.repay(loan, driver.payoff(loan), b"payoff")
    assert book.functions.loanOf(loan).call()[2] == LoanStatus.REPAID
    assert revert_name(book.functions.offerReschedule(loan, 6, driver.now + DAY), keys["operator"].address) == \
        "LoanBookInvalidStatus"
    deadline, signature = acceptance(driver, keys["alice"], loan)
    assert revert_name(book.functions.acceptRescheduleWithSignature(loan, deadline, signature),
                       keys["eve"].address) == "LoanBookInvalidStatus"


def test_only_an_operator_may_offer(driver, keys, loan, revert_name):
    book = driver.stack.book
    for who in ("alice", "eve", "oracle"):
        assert revert_name(book.functions.offerReschedule(loan, 6, driver.now + DAY), keys[who].address) == \
            "AccessControlUnauthorizedAccount"


def test_an_expired_offer_cannot_be_accepted(driver, keys, loan, revert_name):
    book = driver.stack.book
    offer(driver, loan, 6, expires_in=DAY)
    driver.advance(DAY + 1)
    assert revert_name(book.functions.acceptReschedule(loan), keys["alice"].address) == "LoanBookRescheduleOfferExpired"
    deadline, signature = acceptance(driver, keys["alice"], loan)
    assert revert_name(book.functions.acceptRescheduleWithSignature(loan, deadline, signature),
                       keys["eve"].address) == "LoanBookRescheduleOfferExpired"


def test_only_the_borrower_may_accept(driver, keys, loan, revert_name):
    book = driver.stack.book
    assert revert_name(book.functions.acceptReschedule(loan), keys["alice"].address) == "LoanBookNoRescheduleOffer"
    offer(driver, loan, 6)
    assert revert_name(book.functions.acceptReschedule(loan), keys["bob"].address) == "LoanBookNotBorrower"
    assert revert_name(book.functions.acceptReschedule(loan), keys["operator"].address) == "LoanBookNotBorrower"
    assert revert_name(book.functions.requestReschedule(loan, 6), keys["bob"].address) == "LoanBookNotBorrower"
    # bob's signature over alice's offer, with alice's nonce: not hers.
    deadline, signature = acceptance(driver, keys["bob"], loan, nonce=book.functions.nonces(keys["alice"].address).call())
    assert revert_name(book.functions.acceptRescheduleWithSignature(loan, deadline, signature),
                       keys["eve"].address) == "LoanBookInvalidSignature"


def test_a_replayed_acceptance_is_refused(driver, keys, loan, revert_name):
    book = driver.stack.book
    offer(driver, loan, 6)
    _, (deadline, signature) = accept_signed(driver, keys["alice"], loan)
    assert revert_name(book.functions.acceptRescheduleWithSignature(loan, deadline, signature),
                       keys["eve"].address) == "LoanBookRequestReplayed"
    offer(driver, loan, 8)  # a new offer does not revive the old acceptance
    assert revert_name(book.functions.acceptRescheduleWithSignature(loan, deadline, signature),
                       keys["eve"].address) == "LoanBookInvalidSignature"


def test_an_altered_offer_is_refused(driver, keys, loan, revert_name):
    book, alice = driver.stack.book, keys["alice"]
    offer(driver, loan, 6)
    # alice signs other terms than those offered...
    deadline, signature = acceptance(driver, alice, loan, installments=12)
    assert revert_name(book.functions.acceptRescheduleWithSignature(loan, deadline, signature),
                       keys["eve"].address) == "LoanBookInvalidSignature"
    # ...or the offer she signed is replaced before her acceptance is relayed.
    deadline, signature = acceptance(driver, alice, loan)
    offer(driver, loan, 12)
    assert revert_name(book.functions.acceptRescheduleWithSignature(loan, deadline, signature),
                       keys["eve"].address) == "LoanBookInvalidSignature"


def test_a_rescheduled_loans_earlier_repayment_cannot_be_reversed_onto_the_old_plan(driver, keys, loan, revert_name):
    book = driver.stack.book
    receipt = driver.send(book.functions.confirmRepayment(loan, b"part".ljust(32, b"\0"), 1_000, driver.now),
                          keys["oracle"])
    (paid,) = book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    offer(driver, loan, 6)
    driver.send(book.functions.acceptReschedule(loan), keys["alice"])
    allocation = (paid.args.principal, paid.args.interest, paid.args.lateFee, paid.args.penalty, 0, 0)
    assert revert_name(book.functions.reverseRepayment(loan, b"part".ljust(32, b"\0"), b"back".ljust(32, b"\0"),
                                                       allocation, driver.now), keys["oracle"].address) == \
        "LoanBookRescheduled"


def test_the_book_and_its_extension_stay_under_the_eip170_limit(w3, stack):
    book = stack.book
    extension = book.functions.extension().call()
    for address in (book.address, extension):
        assert len(w3.eth.get_code(address)) <= 24_576

"""Wallet recovery on the real registry and loan book (issue 17): the oracle moves an identity's record to a new
wallet, the old one is revoked ("recovered") and linked to it; the old wallet's loan stays payable over the rail
and keeps counting against the identity's limit, so a new wallet is never a fresh limit. Each refusal by name."""

from __future__ import annotations

from web3.logs import DISCARD

from ledger.book import LoanStatus

DAY = 86_400
LIMIT = 200_000  # the score's limit: room for one loan of the conftest's TERMS (120,000), not two
RECOVERED = b"recovered".ljust(32, b"\0")


def recover(driver, old, new, commitment: bytes = b"\x77" * 32):
    registry = driver.stack.registry
    return driver.send(registry.functions.recoverBorrower(old.address, new.address, commitment, driver.now + 365 * DAY),
                       driver.keys["oracle"])


def test_the_record_moves_and_the_old_wallet_is_revoked_and_linked(driver, keys):
    alice, new = keys["alice"], keys["dave"]
    registry = driver.stack.registry
    driver.register(alice)
    receipt = recover(driver, alice, new)

    (moved,) = registry.events.BorrowerRecovered().process_receipt(receipt, errors=DISCARD)
    assert (moved.args.oldBorrower, moved.args.newBorrower, moved.args.actor) == (
        alice.address, new.address, keys["oracle"].address)
    (revoked,) = registry.events.BorrowerRevoked().process_receipt(receipt, errors=DISCARD)
    assert revoked.args.reason == RECOVERED
    assert registry.functions.borrowerOf(alice.address).call()[3] is True
    assert not registry.functions.isEligible(alice.address).call()
    assert registry.functions.isEligible(new.address).call()
    assert registry.functions.borrowerOf(new.address).call()[0] == b"\x77" * 32
    assert registry.functions.successorOf(alice.address).call() == new.address
    assert registry.functions.predecessorOf(new.address).call() == alice.address


def test_refusals_by_name(driver, keys, revert_name):
    alice, bob, new = keys["alice"], keys["bob"], keys["dave"]
    registry = driver.stack.registry
    expiry = driver.now + 365 * DAY
    driver.register(alice)
    driver.register(bob)
    fn = registry.functions.recoverBorrower
    # Only the oracle (bringing a completed recovery KYC) moves an identity; not even an operator alone.
    assert revert_name(fn(alice.address, new.address, b"\x77" * 32, expiry),
                       keys["operator"].address) == "AccessControlUnauthorizedAccount"
    # Onto a wallet that has a record of its own (another person's, or itself): two identities never merge.
    assert revert_name(fn(alice.address, bob.address, b"\x77" * 32, expiry),
                       keys["oracle"].address) == "RegistryRecoveryTargetTaken"
    assert revert_name(fn(alice.address, alice.address, b"\x77" * 32, expiry),
                       keys["oracle"].address) == "RegistryRecoveryTargetTaken"
    assert revert_name(fn(keys["carol"].address, new.address, b"\x77" * 32, expiry),
                       keys["oracle"].address) == "RegistryUnknownBorrower"
    assert revert_name(fn(alice.address, new.address, b"\0" * 32, expiry),
                       keys["oracle"].address) == "RegistryEmptyCommitment"
    recover(driver, alice, new)
    # A replay: the old wallet is revoked now, and the new one taken.
    assert revert_name(fn(alice.address, keys["eve"].address, b"\x77" * 32, expiry),
                       keys["oracle"].address) == "RegistryBorrowerRevoked"


def test_the_old_loan_stays_payable_and_the_limit_follows_the_identity(driver, keys, loan_terms, revert_name):
    alice, new = keys["alice"], keys["dave"]
    book = driver.stack.book
    driver.register(alice)
    driver.score(alice, limit=LIMIT, report_id=1)
    old_loan = driver.request(alice, loan_terms)
    driver.approve(old_loan)
    driver.disburse(old_loan, loan_terms.principal, b"payout-old")

    recover(driver, alice, new)
    driver.score(new, limit=LIMIT, report_id=2)
    # The new wallet may apply, but its limit still carries the old wallet's outstanding principal.
    second = driver.request(new, loan_terms)
    assert revert_name(book.functions.approve(second), keys["operator"].address) == "LoanBookCreditLimitExceeded"

    # The rail's payments still land on the old wallet's loan (by loan id and reference, through the oracle).
    driver.repay(old_loan, driver.payoff(old_loan), b"repay-after-recovery")
    assert LoanStatus(book.functions.loanOf(old_loan).call()[2]) == LoanStatus.REPAID
    # Repaid: the identity's exposure is free again, and the new wallet's loan fits.
    driver.approve(second)
    assert LoanStatus(book.functions.loanOf(second).call()[2]) == LoanStatus.APPROVED


def test_two_recoveries_chain_and_still_count_the_first_wallet(driver, keys, loan_terms, revert_name):
    alice, middle, last = keys["alice"], keys["dave"], keys["eve"]
    driver.register(alice)
    driver.score(alice, limit=LIMIT, report_id=1)
    old_loan = driver.request(alice, loan_terms)
    driver.approve(old_loan)
    recover(driver, alice, middle)
    recover(driver, middle, last)
    assert driver.stack.registry.functions.predecessorOf(last.address).call() == middle.address
    driver.score(last, limit=LIMIT, report_id=2)
    # Approved but not yet paid out counts too: the first wallet's approval is two links back.
    loan_id = driver.request(last, loan_terms)
    assert revert_name(driver.stack.book.functions.approve(loan_id),
                       keys["operator"].address) == "LoanBookCreditLimitExceeded"

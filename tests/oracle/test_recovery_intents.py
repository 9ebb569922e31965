"""The oracle's registration worker sending wallet recoveries (intent kind `recover`): recoverBorrower from the lost
wallet to the new one; a retry asks the registry first and sends nothing twice; a held recovery (waiting for an
operator) is not sent; a refused one (the new wallet already registered) is set aside by the registry's name."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from ledger.chain import ChainClient
from ledger.store.models.registrations import RegistrationIntent
from oracle.registrations import RegistrationWorker

DAY = 86_400
COMMITMENT = "0x" + "cd" * 32


def recovery(sessions, old: str, new: str, expires_at: int, *, status: str = "pending") -> None:
    with sessions.begin() as session:
        session.add(RegistrationIntent(borrower=new, kind="recover", recovered_from=old, commitment=COMMITMENT,
                                       kyc_expires_at=expires_at, idempotency_key=f"recover:{new}", status=status,
                                       attempts=0, next_attempt_at=0, created_at=1, updated_at=1))


def stored(sessions, borrower: str) -> RegistrationIntent:
    with sessions() as session:
        return session.get(RegistrationIntent, borrower)


@pytest.fixture
def worker(sessions, w3, keys, stack) -> RegistrationWorker:
    return RegistrationWorker(sessions, ChainClient(w3, keys["oracle"], stack.errors), stack.registry)


def test_a_recovery_is_sent_once_and_a_retry_asks_the_registry_first(sessions, worker, driver, keys, stack):
    old, new = keys["alice"], keys["dave"].address
    driver.register(old)
    recovery(sessions, old.address, new, driver.now + 365 * DAY, status="held")
    assert worker.run_once().recovered == 0  # held for an operator: not picked up
    assert stack.registry.functions.isEligible(old.address).call()

    with sessions.begin() as session:
        session.execute(update(RegistrationIntent).values(status="pending"))
    report = worker.run_once()
    assert (report.recovered, report.set_aside) == (1, 0)
    row = stored(sessions, new)
    assert (row.status, row.outcome) == ("done", "recovered") and row.tx_hash
    assert stack.registry.functions.successorOf(old.address).call() == new

    # As after a timeout whose transaction landed after all: pending again, tried once before.
    with sessions.begin() as session:
        session.execute(update(RegistrationIntent).values(status="pending", attempts=1, outcome=None))
    report = worker.run_once()
    assert (report.recovered, report.already_recovered, report.set_aside) == (0, 1, 0)
    assert stored(sessions, new).outcome == "already_recovered"


def test_a_recovery_onto_a_registered_wallet_is_set_aside_by_name(sessions, worker, driver, keys):
    old, taken = keys["alice"], keys["bob"]
    driver.register(old)
    driver.register(taken)
    recovery(sessions, old.address, taken.address, driver.now + 365 * DAY)
    report = worker.run_once()
    assert (report.recovered, report.set_aside) == (0, 1)
    assert stored(sessions, taken.address).outcome == "RegistryRecoveryTargetTaken"

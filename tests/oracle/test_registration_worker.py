"""The oracle's registration worker: completed KYCs registered on-chain with the oracle's key, asked about before
any retry, a refused one set aside without holding back the others, the node's absence leaving intents untouched."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from web3 import Web3

from ledger.chain import ChainClient, ReceiptTimeout
from ledger.identity import KycRecord
from ledger.samples import sample_identity
from ledger.store.models.pii import KycVaultRecord
from ledger.store.models.registrations import RegistrationIntent
from ledger.vault import Keyring, Vault
from oracle.registrations import RegistrationWorker, counts
from oracle.service import OracleService

DAY = 86_400
COMMITMENT = "0x" + "ab" * 32


def intent(sessions, borrower: str, expires_at: int, *, key: str | None = None, commitment: str = COMMITMENT,
           created_at: int = 1, attempts: int = 0) -> None:
    with sessions.begin() as session:
        session.add(RegistrationIntent(borrower=borrower, commitment=commitment, kyc_expires_at=expires_at,
                                       idempotency_key=key or f"kyc:{borrower}", status="pending", attempts=attempts,
                                       next_attempt_at=0, created_at=created_at, updated_at=created_at))


def stored(sessions, borrower: str) -> RegistrationIntent:
    with sessions() as session:
        return session.get(RegistrationIntent, borrower)


@pytest.fixture
def oracle_client(w3, keys, stack) -> ChainClient:
    return ChainClient(w3, keys["oracle"], stack.errors)


@pytest.fixture
def worker(sessions, oracle_client, stack) -> RegistrationWorker:
    return RegistrationWorker(sessions, oracle_client, stack.registry)


def test_a_pending_intent_is_registered_by_the_oracle_in_its_own_name(w3, stack, keys, sessions, worker, driver):
    alice = keys["alice"].address
    expires = driver.now + 365 * DAY
    intent(sessions, alice, expires)
    report = worker.run_once()
    assert report.registered == 1 and report.set_aside == 0
    row = stored(sessions, alice)
    assert (row.status, row.outcome) == ("done", "registered") and row.tx_hash
    record = stack.registry.functions.borrowerOf(alice).call()
    assert ("0x" + record[0].hex(), record[1]) == (COMMITMENT, expires)
    (event,) = stack.registry.events.BorrowerRegistered().process_receipt(w3.eth.get_transaction_receipt(row.tx_hash))
    assert event.args.actor == keys["oracle"].address  # the oracle's key, not an operator's
    assert worker.run_once().registered == 0  # done: never sent again


def test_a_retry_asks_the_registry_first_and_does_not_send_what_already_landed(w3, stack, keys, sessions, worker,
                                                                               oracle_client, driver):
    """A receipt that did not come is not "it did not happen": the worker's first attempt reached the chain, its
    answer was lost; the retry finds the borrower registered and settles without a second transaction."""
    alice = keys["alice"].address
    intent(sessions, alice, driver.now + 365 * DAY)

    class LostReceipt(ChainClient):
        def transact(self, function, **kwargs):
            raise ReceiptTimeout(self.submit(function), 0.0)  # sent (anvil mines it), the receipt never seen

    lost = RegistrationWorker(sessions, LostReceipt(w3, keys["oracle"], stack.errors), stack.registry)
    report = lost.run_once()
    assert report.node_error and report.registered == 0
    row = stored(sessions, alice)
    assert (row.status, row.attempts) == ("pending", 1)
    assert stack.registry.functions.borrowerOf(alice).call()[2] != 0  # it did land
    with sessions.begin() as session:  # the back-off passed
        session.get(RegistrationIntent, alice).next_attempt_at = 0
    block = w3.eth.block_number
    report = worker.run_once()
    assert report.already_registered == 1 and report.registered == 0
    assert w3.eth.block_number == block  # no transaction
    assert (stored(sessions, alice).status, stored(sessions, alice).outcome) == ("done", "already_registered")


def test_registered_first_by_an_operator_is_settled_not_set_aside(w3, stack, keys, sessions, worker, driver):
    """An operator's signed registration (or a dead worker's) got there first: the registry's refusal is checked
    against its record, and the intent is done."""
    alice = keys["alice"]
    driver.register(alice, bytes.fromhex(COMMITMENT[2:]))
    intent(sessions, alice.address, driver.now + 365 * DAY)
    report = worker.run_once()
    assert report.already_registered == 1 and report.set_aside == 0
    assert stored(sessions, alice.address).outcome == "already_registered"


def test_a_refused_intent_is_set_aside_with_the_reason_and_the_others_go_on(w3, stack, keys, sessions, worker,
                                                                             driver):
    alice, bob = keys["alice"].address, keys["bob"].address
    intent(sessions, alice, driver.now - 1, created_at=1)  # an expiry already past: the registry refuses it
    intent(sessions, bob, driver.now + 365 * DAY, created_at=2)
    report = worker.run_once()
    assert (report.set_aside, report.registered) == (1, 1)
    refused = stored(sessions, alice)
    assert (refused.status, refused.outcome) == ("set_aside", "RegistryExpiryInPast")
    assert "RegistryExpiryInPast" in refused.last_error
    assert stack.registry.functions.isEligible(bob).call()
    assert counts(sessions) == {"set_aside": 1, "done": 1}
    assert worker.run_once().set_aside == 0  # never retried automatically

    # Shown where operators look: the oracle's /healthz attention and a gauge to alert on.
    app = OracleService(sessions, None, None).create_app()
    with TestClient(app) as http:
        assert http.get("/healthz").json()["attention"]["registrations_set_aside"] == 1
        metrics = http.get("/metrics").text
    assert "loanledger_oracle_registrations_set_aside 1.0" in metrics


def test_a_node_that_is_down_leaves_the_intents_pending_and_untouched_but_counted(sessions, keys, stack, driver):
    intent(sessions, keys["alice"].address, driver.now + 365 * DAY)
    down = Web3(Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 1}))
    worker = RegistrationWorker(sessions, ChainClient(down, keys["oracle"], stack.errors), stack.registry)
    report = worker.run_once()
    assert report.node_error and report.registered == report.set_aside == 0
    row = stored(sessions, keys["alice"].address)
    assert (row.status, row.attempts, row.tx_hash) == ("pending", 1, None)


def test_the_intent_is_stored_with_the_kyc_record_or_not_at_all(sessions):
    """Vault.put's `also` runs in the record's transaction: what the API relies on to never leave a verified
    borrower without a registration intent, nor an intent without its record."""
    from api.services.borrowers import registration_intent

    vault = Vault(sessions, Keyring.generate())
    borrower = Account.create().address
    record = KycRecord.from_input(**sample_identity(7))

    class Context:
        def __init__(self):
            self.sessions = sessions

        def chain_time(self) -> int:
            raise ConnectionError("the node is away: the clock gives the expiry")

    def failing(session, commitment):
        registration_intent(Context(), borrower, "req-1")(session, commitment)
        raise RuntimeError("the transaction fails after the intent was added")

    with pytest.raises(RuntimeError):
        vault.put(borrower, record, also=failing)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(KycVaultRecord)) == 0
        assert session.scalar(select(func.count()).select_from(RegistrationIntent)) == 0
    vault.put(borrower, record, also=registration_intent(Context(), borrower, "req-2"))
    row = stored(sessions, borrower)
    assert row.commitment == "0x" + vault.commitment(borrower).hex() and row.idempotency_key == f"kyc:{borrower}:req-2"
    assert row.status == "pending"


def test_loanledger_oracle_registrations_lists_what_was_set_aside_and_why(sessions, keys, worker, driver, db_url):
    from typer.testing import CliRunner

    from ledger.cli import app

    intent(sessions, keys["alice"].address, driver.now - 1)
    worker.run_once()
    env = {"LOANLEDGER_DB_URL": db_url}
    shown = CliRunner().invoke(app, ["oracle", "registrations", "--status", "set_aside", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    (row,) = [json.loads(line) for line in shown.stdout.splitlines()]
    assert (row["borrower"], row["status"], row["outcome"]) == (keys["alice"].address, "set_aside",
                                                              "RegistryExpiryInPast")
    assert CliRunner().invoke(app, ["oracle", "registrations", "--status", "pending", "--json"], env=env).stdout == ""


def send(w3, function, sender: str) -> None:
    assert w3.eth.wait_for_transaction_receipt(function.transact({"from": sender})).status == 1


def update_intent(sessions, borrower: str, expires_at: int, *, commitment: str = COMMITMENT, attempts: int = 0,
                  key: str = "renewal") -> None:
    """A renewal as the API stores it: the borrower's row replaced by an `update` intent."""
    with sessions.begin() as session:
        session.merge(RegistrationIntent(borrower=borrower, kind="update", commitment=commitment,
                                         kyc_expires_at=expires_at, idempotency_key=f"kyc:{borrower}:{key}",
                                         status="pending", outcome=None, last_error=None, tx_hash=None,
                                         attempts=attempts, next_attempt_at=0, created_at=2, updated_at=2))


def test_a_renewal_is_sent_as_updateBorrower_with_the_new_expiry_and_commitment(w3, stack, keys, sessions, worker,
                                                                                 driver):
    alice = keys["alice"].address
    intent(sessions, alice, driver.now + 365 * DAY)
    assert worker.run_once().registered == 1
    renewed, commitment = driver.now + 700 * DAY, "0x" + "cd" * 32
    update_intent(sessions, alice, renewed, commitment=commitment)
    report = worker.run_once()
    assert (report.updated, report.registered, report.set_aside) == (1, 0, 0)
    row = stored(sessions, alice)
    assert (row.kind, row.status, row.outcome) == ("update", "done", "updated") and row.tx_hash
    record = stack.registry.functions.borrowerOf(alice).call()
    assert ("0x" + record[0].hex(), record[1]) == (commitment, renewed)
    (event,) = stack.registry.events.BorrowerUpdated().process_receipt(w3.eth.get_transaction_receipt(row.tx_hash))
    assert event.args.actor == keys["oracle"].address
    assert worker.run_once().updated == 0  # done: never sent again


def test_a_renewal_retried_asks_the_registry_first(w3, stack, keys, sessions, worker, oracle_client, driver):
    """The renewal's first attempt landed, its receipt was lost: the retry finds the new expiry on-chain and settles
    without a second transaction; one not yet on-chain is sent."""
    alice, bob = keys["alice"].address, keys["bob"].address
    driver.register(keys["alice"], bytes.fromhex(COMMITMENT[2:]))
    driver.register(keys["bob"], bytes.fromhex(COMMITMENT[2:]))
    renewed = driver.now + 500 * DAY
    send(w3, stack.registry.functions.updateBorrower(alice, bytes.fromhex(COMMITMENT[2:]), renewed),
         keys["oracle"].address)  # what the lost attempt did
    update_intent(sessions, alice, renewed, attempts=1)
    update_intent(sessions, bob, renewed, attempts=1, key="bob")  # tried before, never reached the chain
    blocks = w3.eth.block_number
    report = worker.run_once()
    assert (report.already_updated, report.updated) == (1, 1)
    assert stored(sessions, alice).outcome == "already_updated" and stored(sessions, alice).tx_hash is None
    assert w3.eth.block_number == blocks + 1  # bob's update only
    assert stack.registry.functions.borrowerOf(bob).call()[1] == renewed


def test_a_renewal_of_a_revoked_borrower_is_set_aside(stack, keys, sessions, worker, driver):
    alice = keys["alice"].address
    driver.register(keys["alice"], bytes.fromhex(COMMITMENT[2:]))
    send(stack.registry.w3, stack.registry.functions.revokeBorrower(alice, b"\x01" * 32), keys["operator"].address)
    update_intent(sessions, alice, driver.now + 500 * DAY)
    report = worker.run_once()
    assert (report.updated, report.set_aside) == (0, 1)
    assert (stored(sessions, alice).status, stored(sessions, alice).outcome) == ("set_aside",
                                                                                "RegistryBorrowerRevoked")

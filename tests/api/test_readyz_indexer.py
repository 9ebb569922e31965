"""/readyz and /metrics on the indexer: a stuck indexer on a quiet chain is not ready, a poison event is shown.

The API runs in-process against the session's anvil with no indexer thread of its own: each test runs the
real indexer by hand, with the clock it stamps its heartbeat with, as `loanledger index --follow` would.
"""

from __future__ import annotations

import time

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from web3 import Web3

from api.app import create_app
from api.context import Context
from ledger import manifest as manifests
from ledger.config import Settings
from ledger.indexer import Indexer
from ledger.store import open_store, projection
from ledger.vault import Keyring, Vault

POISON_REF = "0x" + b"poison-repayment".ljust(32, b"\0").hex()


class _Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _metric(http: TestClient, name: str) -> float:
    [sample] = [s for family in text_string_to_metric_families(http.get("/metrics").text)
                for s in family.samples if s.name == name]
    return sample.value


@pytest.fixture
def quiet_api(w3, stack, tmp_path):
    """(TestClient, sessions, index(clock=None)): the API, its store, and one indexer round into that store."""
    path = manifests.save(stack.manifest, tmp_path / "manifest.json")
    settings = Settings(home=tmp_path, node_url=w3.provider.endpoint_uri, manifest=str(path),
                        db_url=f"sqlite:///{tmp_path / 'api.db'}", api_domain="testserver",
                        rail_url="http://127.0.0.1:9", anchor_interval=0)
    assert settings.index_max_silence == 60  # the default under test
    sessions = open_store(settings.database_url)
    context = Context(settings=settings, sessions=sessions, vault=Vault(sessions, Keyring.generate()),
                      w3=Web3(Web3.HTTPProvider(settings.node_url)), jwt_secret=b"test-secret-of-thirty-two-bytes!",
                      env={"LOANLEDGER_RELAYER_KEY": Account.create().key.hex()})

    def index(clock=time.time):
        return Indexer(w3, stack.manifest, sessions, clock=clock).run_once()

    with TestClient(create_app(context)) as http:
        yield http, sessions, index


def test_a_stuck_indexer_on_a_quiet_chain_is_not_ready_until_it_polls_again(quiet_api, w3):
    http, _, index = quiet_api
    index(clock=_Clock(time.time() - 120))  # its last round, two minutes ago; no block since
    answer = http.get("/readyz")
    indexer = answer.json()["checks"]["indexer"]
    assert answer.status_code == 503 and indexer.startswith("stuck: last poll 1"), answer.text
    assert indexer.endswith("s ago (at most 60 tolerated)") and answer.json()["checks"]["node"].startswith("ok")
    assert w3.eth.block_number == index().to_block  # the lag was 0 all along: only the silence told

    answer = http.get("/readyz")
    assert answer.status_code == 200 and answer.json()["checks"]["indexer"] == f"ok (block {w3.eth.block_number})"
    assert time.time() - _metric(http, "loanledger_indexer_last_poll_timestamp_seconds") < 5


def test_a_poison_event_is_shown_and_counted_but_the_api_stays_ready(quiet_api, keys, driver, monkeypatch):
    http, _, index = quiet_api
    fold = projection.fold_loan

    def fold_refusing(events):
        events = list(events)
        if any(e.name == "RepaymentApplied" and e.args["paymentRef"] == POISON_REF for e in events):
            raise ValueError("cannot project this repayment")
        return fold(events)

    monkeypatch.setattr(projection, "fold_loan", fold_refusing)
    index()
    assert _metric(http, "loanledger_indexer_poison_events") == 0
    loan_id = driver.active_loan(keys["alice"])
    driver.repay(loan_id, 10_000, b"poison-repayment")
    driver.repay(loan_id, 20_000, b"after-the-poison")
    assert index().poisoned == 1
    assert index().poisoned == 0  # the next round does not count it again

    answer = http.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"]["indexer"].endswith(
        "; 1 poison event set aside: see `loanledger indexer poison`)")
    assert _metric(http, "loanledger_indexer_poison_events") == 1

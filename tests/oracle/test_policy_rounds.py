"""The automatic policy's rounds in-process (oracle.policy.Policy, what `loanledger oracle policy` runs), on the
session's node with the policy key: what it sets aside without stalling the others, and a decision it sent whose
answer it lost is asked of the chain, not sent again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.services.decisions import set_auto_approve
from ledger.chain import ChainClient
from ledger.cli import app
from ledger.config import Settings
from ledger.contracts import bind
from ledger.errors import ContractRevert
from ledger.indexer import Indexer
from ledger.products import offering
from ledger.store import open_store
from oracle.policy import SENDING, Policy, PolicyContext, set_aside
from oracle.service import OracleService

REQUESTED, APPROVED = 1, 2  # ILoanBook.LoanStatus


@pytest.fixture
def rounds(w3, stack, keys, tmp_path):
    """(policy, run): the Policy with the policy key on a fresh store; `run()` indexes the chain, then one round."""
    yield from _rounds(w3, stack, keys, tmp_path, f"sqlite:///{tmp_path / 'p.db'}")


@pytest.fixture
def rounds_on(w3, stack, keys, tmp_path, db_url):
    """`rounds` on a fresh SQLite store, then on a PostgreSQL one."""
    yield from _rounds(w3, stack, keys, tmp_path, db_url)


def _rounds(w3, stack, keys, tmp_path, db_url: str):
    settings = Settings(home=tmp_path, node_url=w3.provider.endpoint_uri, db_url=db_url,
                        rail_url="http://127.0.0.1:9")  # no rail: payouts stay recorded, unanswered
    sessions = open_store(settings.database_url)
    set_auto_approve(SimpleNamespace(sessions=sessions), True, keys["operator"].address)
    bindings = bind(w3, stack.manifest)
    context = PolicyContext(settings, sessions, w3, bindings, env={})
    policy = Policy(context, ChainClient(w3, keys["policy"], bindings.errors))
    indexer = Indexer(w3, stack.manifest, sessions)

    def run():
        indexer.run_once()
        return policy.run_once()
    yield policy, run
    sessions.kw["bind"].dispose()


@pytest.fixture
def two_loans(driver, stack, keys, loan_terms) -> list[int]:
    """Two auto-approvable loans of alice's (registered and scored)."""
    driver.product(loan_terms)
    product = replace(offering(loan_terms, "policy"), auto_approve=True,
                      auto_approve_max_principal=loan_terms.principal)
    driver.by_two_operators(stack.catalog.functions.createProduct(product.as_tuple(stack.catalog)))
    product_id = stack.catalog.functions.productCount().call()
    driver.register(keys["alice"])
    driver.score(keys["alice"])
    return [driver.apply(keys["alice"], product_id, 1, loan_terms.principal, loan_terms.installments)
            for _ in range(2)]


def status(stack, loan_id: int) -> int:
    return stack.book.functions.loanOf(loan_id).call()[2]


def test_a_paused_book_sets_every_loan_aside_and_the_next_round_decides_them(driver, stack, keys, rounds, two_loans):
    policy, run = rounds
    driver.send(stack.book.functions.pause(), keys["pauser"])
    done = run()
    assert done.decided == {} and set(done.set_aside) == set(two_loans)
    assert all("EnforcedPause" in why for why in done.set_aside.values())
    assert set(set_aside(policy.context.sessions)) == set(two_loans)  # where operators see them
    driver.send(stack.book.functions.unpause(), keys["pauser"])
    assert run().decided == dict.fromkeys(two_loans, "approved")
    assert set_aside(policy.context.sessions) == {}


def test_one_loan_refused_for_another_reason_does_not_stall_the_others(stack, rounds, two_loans, monkeypatch):
    policy, run = rounds
    first, second = two_loans
    call_for = policy.call_for

    def refusing(loan_id):
        if loan_id == first:
            raise ContractRevert("SomethingElse", {}, "0x00000000")
        return call_for(loan_id)
    monkeypatch.setattr(policy, "call_for", refusing)
    done = run()
    assert (done.decided, list(done.set_aside)) == ({second: "approved"}, [first])
    assert [status(stack, first), status(stack, second)] == [REQUESTED, APPROVED]
    monkeypatch.undo()
    assert run().decided == {first: "approved"}


def test_a_sent_decision_still_with_the_node_is_not_sent_again_one_never_seen_is(w3, stack, keys, rounds, two_loans):
    policy, run = rounds
    first, second = two_loans
    # A decision whose transaction the node never saw (signed and logged, then the process died before sending).
    policy._log(SENDING, second, "approved", "0x" + "ab" * 32)

    def sent() -> int:
        return w3.eth.get_transaction_count(keys["policy"].address, "pending")
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        # One the node holds unmined: logged, then submitted while nothing is mined.
        pending = policy.client.submit(stack.book.functions.approve(first), gas=500_000,
                                       before_send=lambda tx: policy._log(SENDING, first, "approved", tx))
        mined = w3.eth.get_transaction_count(keys["policy"].address)
        assert sent() == mined + 1
        done = {}
        thread = threading.Thread(target=lambda: done.update(round=run()))
        thread.start()  # it sends the second loan's approval and waits for it to be mined
        deadline = time.monotonic() + 30
        while sent() < mined + 2:
            assert time.monotonic() < deadline and thread.is_alive(), "the round sent nothing"
            time.sleep(0.05)
        time.sleep(0.5)
        assert sent() == mined + 2  # the first loan's approval was not sent again
        w3.provider.make_request("evm_mine", [])
        thread.join(timeout=30)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    assert done["round"].decided == {second: "approved"}
    assert w3.eth.get_transaction_receipt(pending)["status"] == 1
    assert [status(stack, first), status(stack, second)] == [APPROVED, APPROVED]
    assert run().decided == {}


def test_the_cli_shows_the_switch_and_what_the_last_round_set_aside(driver, stack, keys, rounds, two_loans, tmp_path):
    policy, run = rounds
    driver.send(stack.book.functions.pause(), keys["pauser"])
    run()
    env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_DB_URL": policy.context.settings.db_url}
    shown = subprocess.run([str(Path(sys.executable).with_name("loanledger")), "oracle", "policy-status", "--json"],
                           check=False, env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["auto_approve"] is True and sorted(map(int, status["set_aside"])) == sorted(two_loans)
    assert all("EnforcedPause" in why for why in status["set_aside"].values())


def test_the_oracle_health_and_gauge_show_what_the_policy_set_aside_until_it_decides_them(
        driver, stack, keys, rounds_on, two_loans, tmp_path):
    policy, run = rounds_on
    sessions = policy.context.sessions
    oracle = OracleService(sessions, None, None).create_app()
    env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_DB_URL": policy.context.settings.db_url}

    def shown() -> tuple[dict, str, dict]:
        with TestClient(oracle) as http:
            health, metrics = http.get("/healthz"), http.get("/metrics").text
        assert health.status_code == 200  # an operator must act; a restart would not help: the process is ok
        listed = CliRunner().invoke(app, ["oracle", "policy-status", "--json"], env=env)
        assert listed.exit_code == 0, listed.output
        return health.json(), metrics, json.loads(listed.output)

    health, metrics, listed = shown()
    assert health["attention"]["policy_set_aside"] == 0 and "loanledger_oracle_policy_set_aside 0.0" in metrics
    assert listed["set_aside"] == {}

    driver.send(stack.book.functions.pause(), keys["pauser"])
    assert set(run().set_aside) == set(two_loans)
    health, metrics, listed = shown()
    assert (health["status"], health["attention"]["policy_set_aside"]) == ("ok", 2)
    assert "loanledger_oracle_policy_set_aside 2.0" in metrics
    assert sorted(map(int, listed["set_aside"])) == sorted(two_loans)  # the loans /healthz counts

    driver.send(stack.book.functions.unpause(), keys["pauser"])
    assert run().decided == dict.fromkeys(two_loans, "approved")  # the policy's retry is the resolution
    health, metrics, listed = shown()
    assert health["attention"]["policy_set_aside"] == 0 and "loanledger_oracle_policy_set_aside 0.0" in metrics
    assert listed["set_aside"] == {}

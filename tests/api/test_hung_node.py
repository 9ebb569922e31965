"""The API in front of a node that hangs (issue 14, defect 7): a real anvil stopped with SIGSTOP.

A hung node accepts connections and never answers. Every chain call must give up after the short
`node_timeout` (not the 30 s receipt wait), so chain-backed routes answer 503 fast, `/healthz` never
waits, many such requests do not starve the API, and `/readyz` says not ready and why, in bounded time;
it also says not ready while the indexer lags behind the node's head.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from eth_account import Account
from web3 import Web3

from api.app import create_app
from api.client import LoanLedgerClient
from api.context import Context
from ledger import manifest as manifests
from ledger.chain import web3_for
from ledger.config import Settings
from ledger.node import anvil_binary, free_port
from ledger.deploy import deploy_stack
from ledger.indexer import Indexer
from ledger.store import open_store
from ledger.vault import Keyring, Vault

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"  # as tests/conftest.py

# A correctness bound for a loaded 2-core machine, against the 30 s the old HTTP timeout allowed.
FAST = 15.0



@pytest.fixture
def own_node():
    """A dedicated anvil (the session's shared node must never be stopped): (process, url)."""
    port = free_port()
    proc = subprocess.Popen(
        [anvil_binary(), "--port", str(port), "--host", "127.0.0.1", "--silent", "--gas-price", "0",
         "--base-fee", "0", "--mnemonic", ANVIL_MNEMONIC, "--accounts", "10"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        probe = Web3(Web3.HTTPProvider(url))
        for _ in range(200):
            if probe.is_connected():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("anvil did not start")
        yield proc, url
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def hung_api(own_node, keys, tmp_path, serve_app):
    """(anvil process, API url, app, stop the indexer): the API served by uvicorn, an indexer following."""
    proc, node_url = own_node
    w3 = Web3(Web3.HTTPProvider(node_url))
    stack = deploy_stack(w3, keys["admin"].address, operator=keys["operator"].address, oracle=keys["oracle"].address,
                         pauser=keys["pauser"].address, score_signer=keys["signer"].address)
    path = manifests.save(stack.manifest, tmp_path / "manifest.json")
    settings = Settings(home=tmp_path, node_url=node_url, manifest=str(path), db_url=f"sqlite:///{tmp_path / 'api.db'}",
                        api_domain="testserver", rail_url="http://127.0.0.1:9", anchor_interval=0, index_max_lag=5)
    assert settings.node_timeout <= 5  # the default under test: short, unlike tx_timeout
    sessions = open_store(settings.database_url)
    context = Context(settings=settings, sessions=sessions, vault=Vault(sessions, Keyring.generate()),
                      w3=web3_for(settings), jwt_secret=b"test-secret-of-thirty-two-bytes!",
                      env={"LOANLEDGER_OPERATOR_KEY": keys["operator"].key.hex(),
                           "LOANLEDGER_RELAYER_KEY": Account.create().key.hex()})
    stop = threading.Event()
    indexer = Indexer(web3_for(settings), stack.manifest, sessions)
    thread = threading.Thread(target=indexer.follow, kwargs={"poll_interval": 0.05, "stop": stop}, daemon=True)
    thread.start()
    app = create_app(context)

    def stop_indexer() -> None:
        stop.set()
        thread.join(timeout=30)

    try:
        with serve_app(app) as url:
            yield proc, url, app, stop_indexer
    finally:
        os.kill(proc.pid, signal.SIGCONT)  # the indexer thread must be able to finish its round
        stop_indexer()


def _ready(url: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{url}/readyz", timeout=FAST)
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_a_hung_node_gives_fast_503s_and_never_starves_health(hung_api, keys):
    proc, url, app, _ = hung_api
    operator = LoanLedgerClient(url, keys["operator"])
    operator.login()
    auth = {"authorization": f"Bearer {operator.token}"}
    assert httpx.get(f"{url}/v1/auth/me", headers=auth, timeout=FAST).status_code == 200
    assert _ready(url).status_code == 200

    os.kill(proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert httpx.get(f"{url}/healthz", timeout=FAST).json() == {"status": "ok"}
        assert time.monotonic() - started < 2

        # Roles no longer cached: resolving them needs the node, which does not answer.
        app.state.roles.forget()
        started = time.monotonic()
        answer = httpx.get(f"{url}/v1/auth/me", headers=auth, timeout=60)
        took = time.monotonic() - started
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "node_unavailable", answer.text
        assert took < FAST, f"503 after {took:.1f}s"

        # 40 requests at once, all waiting on the node: each fails fast, and /healthz answers meanwhile.
        app.state.roles.forget()
        health: list[float] = []
        with ThreadPoolExecutor(40) as pool:
            started = time.monotonic()
            futures = [pool.submit(httpx.get, f"{url}/v1/auth/me", headers=auth, timeout=120) for _ in range(40)]
            while not all(f.done() for f in futures):
                asked = time.monotonic()
                assert httpx.get(f"{url}/healthz", timeout=FAST).status_code == 200
                health.append(time.monotonic() - asked)
                time.sleep(0.2)
            answers = [f.result() for f in futures]
            took = time.monotonic() - started
        assert {a.status_code for a in answers} == {503}
        assert took < 2 * FAST, f"40 requests took {took:.1f}s"  # one after another: 40 node timeouts
        assert health and max(health) < 2, health

        started = time.monotonic()
        ready = httpx.get(f"{url}/readyz", timeout=60)
        took = time.monotonic() - started
        assert ready.status_code == 503 and took < FAST, (ready.text, took)
        checks = ready.json()["checks"]
        assert checks["node"].startswith("unavailable") and checks["indexer"].startswith("unknown"), checks
    finally:
        os.kill(proc.pid, signal.SIGCONT)

    assert _ready(url).status_code == 200
    assert httpx.get(f"{url}/v1/auth/me", headers=auth, timeout=FAST).status_code == 200


def test_readyz_says_not_ready_while_the_indexer_lags(hung_api, keys):
    proc, url, _, stop_indexer = hung_api
    ready = _ready(url)
    assert ready.status_code == 200 and ready.json()["checks"]["indexer"].startswith("ok"), ready.text
    stop_indexer()  # stuck: the node's head moves on, the cursor does not
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{_node_port(proc)}"))
    for _ in range(6):
        w3.provider.make_request("evm_mine", [])
    answer = httpx.get(f"{url}/readyz", timeout=FAST)
    assert answer.status_code == 503, answer.text
    assert answer.json()["checks"]["indexer"].startswith("behind:") and "at most 5" in answer.json()["checks"]["indexer"]


def _node_port(proc: subprocess.Popen) -> str:
    return proc.args[proc.args.index("--port") + 1]

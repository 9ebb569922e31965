"""The API in-process (FastAPI's TestClient speaks HTTP to it) on the session's real anvil and contracts,
with a real indexer following the chain in a thread and a fresh SQLite store per test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import app_steps
import httpx
import phone
import pytest
import step_up_codes
from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient
from web3 import Web3

from api.app import create_app
from api.client import LoanLedgerClient
from api.context import Context
from api.services.card_binding import CardRail
from ledger import manifest as manifests
from ledger.chain import ChainClient
from ledger.config import Settings
from ledger.indexer import Indexer
from ledger.node import free_port
from ledger.samples import sample_identity
from ledger.store import open_store
from ledger.vault import Keyring, Vault
from oracle.payments.card_verifications import CardDesk, card_router
from oracle.policy import Policy, Round

DAY = 86_400
# The product most API tests apply for, as the operator publishes it: 24% a year (the default cost cap: no fee),
# annuity, 3 to 12 installments 30 days apart; the automatic policy may approve any principal of it.
PRODUCT = {"name": "3-month", "currency": "CNY", "min_principal": 1_000, "max_principal": 10_000_000,
           "min_installments": 3, "max_installments": 12, "frequency": "FixedInterval", "interval": 30 * DAY,
           "annual_rate_bps": 2400, "amortization": "Annuity", "grace_period": 3 * DAY, "late_fee_bps": 500,
           "penalty_rate_bps": 1200, "default_after": 90 * DAY, "service_fee_bps": 0, "auto_approve": True,
           "auto_approve_max_principal": 10_000_000}


@pytest.fixture(scope="module")
def offline_app(tmp_path_factory):
    """The API as built for a node that is not there (nothing in it reaches the chain): for its OpenAPI
    document and its request validation."""
    home = tmp_path_factory.mktemp("offline")
    settings = Settings(home=home, node_url="http://127.0.0.1:9", db_url=f"sqlite:///{home / 'api.db'}",
                        anchor_interval=0)
    sessions = open_store(settings.database_url)
    context = Context(settings=settings, sessions=sessions, vault=Vault(sessions, Keyring.generate()),
                      w3=Web3(Web3.HTTPProvider(settings.node_url)), jwt_secret=b"offline-test-secret-of-32-bytes!",
                      env={})
    return create_app(context)


@pytest.fixture
def publish(client_for, keys):
    """`publish(**changes)`: publishes PRODUCT (with `changes`) through the operator routes, proposed by the
    operator and confirmed by the second operator (two operators decide a product); the product's id."""
    operator, second = client_for(keys["operator"]), client_for(keys["operator2"])

    def _publish(**changes) -> int:
        proposed = operator.create_product({**PRODUCT, **changes})
        return second.confirm(proposed["proposal_id"])["result"]["ProductCreated"]["productId"]
    return _publish


@pytest.fixture
def application(publish) -> dict:
    """What most API tests apply for: 120,000 in 3 installments of PRODUCT, published for the test
    (`client.apply(**application)`)."""
    return {"product_id": publish(), "principal": 120_000, "installments": 3}


@pytest.fixture
def api(w3, stack, keys, tmp_path):
    """(app, context): the API wired to the test chain; the relayer is a fresh key holding no ether. It holds no
    admin or pauser key (their decisions are signed by the admin's and the pauser's own wallets), nor the policy's
    (the automatic policy is its own process: the `policy` fixture runs its rounds); KYC registrations and the
    log's anchors are the oracle's (the `registrar` fixture runs its registration worker)."""
    path = manifests.save(stack.manifest, tmp_path / "manifest.json")
    settings = Settings(home=tmp_path, node_url=w3.provider.endpoint_uri, manifest=str(path),
                        db_url=f"sqlite:///{tmp_path / 'api.db'}", api_domain="testserver", index_wait=10,
                        rail_url="http://127.0.0.1:9", anchor_interval=0)
    env = {"LOANLEDGER_RELAYER_KEY": Account.create().key.hex()}
    sessions = open_store(settings.database_url)
    context = Context(settings=settings, sessions=sessions, vault=Vault(sessions, Keyring.generate()),
                      w3=Web3(Web3.HTTPProvider(settings.node_url)), jwt_secret=b"test-secret-of-thirty-two-bytes!", env=env)
    stop = threading.Event()
    indexer = Indexer(w3, stack.manifest, sessions)
    thread = threading.Thread(target=indexer.follow, kwargs={"poll_interval": 0.05, "stop": stop}, daemon=True)
    thread.start()
    app = create_app(context)
    # The rail's card verification in-process (the bank texts its codes to the API's outbox, which tests read);
    # `app.state.bank` is its desk (e.g. `reserve_phone`, as a holder does at a branch).
    app.state.bank = CardDesk(outbox=settings.sms_outbox_path)
    bank = FastAPI()
    bank.include_router(card_router(app.state.bank))
    context.card_rail = CardRail(http=TestClient(bank))
    yield app, context
    stop.set()
    thread.join(timeout=10)


@pytest.fixture
def policy(api, keys):
    """`policy()`: one round of the automatic approval policy (oracle.policy, the code `loanledger oracle policy`
    runs) in-process, with the policy key (POLICY_ROLE), against the test's node and store: what the API used to
    decide inside an application. It waits for the indexer before (the policy reads the Requested loans from the
    store) and after (so the API's reads show the decisions); returns the Round (decisions by loan)."""
    _, context = api
    rounds = Policy(context, ChainClient(context.w3, keys["policy"], context.bindings.errors))

    def _round() -> Round:
        assert context.wait_indexed(context.w3.eth.block_number)
        done = rounds.run_once()
        assert context.wait_indexed(context.w3.eth.block_number)
        return done
    return _round


@pytest.fixture
def http(api):
    with TestClient(api[0]) as client:
        yield client


@pytest.fixture
def client_for(api, http):
    """`client_for(account)`: an SDK client signed in as `account`. A call that needs a step-up code asks for one
    and reads it off the borrower's phone (tests/api/step_up_codes.py), as a borrower would."""
    def _make(account) -> LoanLedgerClient:
        client = LoanLedgerClient("http://testserver", account, http=http,
                                  step_up_codes=step_up_codes.outbox_reader(api[0], account.address))
        client.login()
        return client
    return _make


@pytest.fixture
def registrar(api, w3, stack, keys):
    """`registrar()`: one round of the oracle's real registration worker (oracle/registrations.py) over the API's
    store, signing with the oracle's key as `loanledger oracle run` does; then waits until the indexer has seen
    what it registered. Returns the round's report."""
    from ledger.chain import ChainClient
    from oracle.registrations import RegistrationWorker

    _, context = api
    worker = RegistrationWorker(context.sessions, ChainClient(w3, keys["oracle"], stack.errors), stack.registry)

    def _round():
        report = worker.run_once()
        context.wait_indexed(w3.eth.block_number)
        return report
    return _round


@pytest.fixture
def kyc(api, registrar):
    """`kyc(client, index)`: passes KYC for the client's wallet with sample identity `index` and, when that left a
    registration to the oracle, runs the oracle's worker until it is registered; returns the verify answer."""
    app, context = api

    def _pass(client: LoanLedgerClient, index: int) -> dict:
        person = sample_identity(index)
        client.kyc_submit(**person)
        outbox = app.state.sms
        answer = client.kyc_verify(outbox.last_code(person["phone"], "phone"), outbox.last_code(person["phone"], "card"))
        if answer["status"] == "registering" and context.settings.auto_register:
            assert registrar().registered == 1
        app.state.roles.forget(client.account.address)
        return answer
    return _pass


@pytest.fixture
def served(api, serve_app):
    """The API on a real port of 127.0.0.1 (uvicorn in a thread); yields its base URL."""
    with serve_app(api[0]) as url:
        yield url


@pytest.fixture
def borrower(client_for, kyc, keys, driver):
    """Alice: verified, registered and scored (limit 1,000,000)."""
    client = client_for(keys["alice"])
    kyc(client, 11)
    client.login()
    driver.score(keys["alice"])
    return client


@pytest.fixture
def operator(client_for, keys):
    return client_for(keys["operator"])


RAIL_TIMEOUT = 1.0  # the provider's timeout in the rail suites: a stalled rail answers 503 fast
LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))


class Rail:
    """`loanledger rail` as a process on a free port (webhooks off: the payout stays with the rail)."""

    def __init__(self, home: Path, log: Path, sms_outbox: Path | None = None):
        self.home, self.log, self.port, self.sms_outbox = home, log, free_port(), sms_outbox
        self.url, self.process = f"http://127.0.0.1:{self.port}", None

    def start(self) -> Rail:
        env = {**os.environ, "LOANLEDGER_HOME": str(self.home)}
        if self.sms_outbox is not None:  # the bank's card codes go where the tests read texts
            env["LOANLEDGER_SMS_OUTBOX"] = str(self.sms_outbox)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([LOANLEDGER, "rail", "--port", str(self.port), "--webhook-url", "",
                                             "--log-level", "warning"], env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()[-2000:]
            time.sleep(0.05)

    def payouts(self, loan_id: int) -> list[dict]:
        answer = httpx.get(f"{self.url}/v1/payments", params={"loan_id": loan_id, "direction": "payout"}, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.process.kill()
            self.process.wait(timeout=15)


@pytest.fixture
def rail(api, tmp_path):
    """A running rail, configured as the API's payout provider with a short timeout."""
    _, context = api
    started = Rail(tmp_path / "rail-home", tmp_path / "rail.log").start()
    context.settings = context.settings.model_copy(update={"payment_providers": {
        "mockpay": {"kind": "standin", "url": started.url, "timeout": RAIL_TIMEOUT}}})
    yield started
    started.stop()


@pytest.fixture
def confirm(api, w3, stack, keys, rail, driver, clock):
    """`confirm(loan_id)`: what the rail collected for the loan, confirmed as the oracle's webhook intake and
    outbox worker do (the `rail` fixture's webhook is off); tests/api/app_steps.py rail_confirmer."""
    return app_steps.rail_confirmer(api[1], w3, stack, keys, rail, driver, clock)


@pytest.fixture(scope="module")
def phone_browser():
    """The headless Chromium the app tests drive as phones (tests/api/phone.py). Per module: Playwright's sync API
    runs one instance at a time, and the dashboard tests start their own."""
    with phone.chromium_browser() as browser:
        yield browser


@pytest.fixture
def phone_for(phone_browser, served):
    """`phone_for(locale="zh-CN")`: a new phone with the app served by the test's API; closed after the test."""
    opened: list[phone.Phone] = []

    def _make(locale: str = "zh-CN", time_zone: str = "Asia/Shanghai") -> phone.Phone:
        opened.append(phone.Phone(phone_browser, served, locale, time_zone))
        return opened[-1]
    yield _make
    for each in opened:
        each.close()


@pytest.fixture
def cli(tmp_path, served):
    """`cli(*args, given=None)` -> (exit code, output) of `loanledger ...` against the served API, with the wallets
    in the test's directory under the passphrase "pass phrase"; `given` is typed at its prompts."""
    from typer.testing import CliRunner

    from ledger.cli import app as loanledger
    env = {"LOANLEDGER_WALLET_DIR": str(tmp_path / "wallets"), "LOANLEDGER_WALLET_PASSPHRASE": "pass phrase",
           "LOANLEDGER_API_URL": served, "LOANLEDGER_HOME": str(tmp_path)}
    runner = CliRunner()

    def _run(*args: str, given: str | None = None) -> tuple[int, str]:
        result = runner.invoke(loanledger, list(args), env=env, input=given, catch_exceptions=False)
        return result.exit_code, result.output
    return _run

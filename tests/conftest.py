"""Shared fixtures: a real anvil per test session, the contracts deployed once, a snapshot reverted per
test; a loan driver; apps served on real ports; stores on SQLite and PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger import four_eyes, typed_data
from ledger.deploy import deploy_stack
from ledger.store import open_store
from ledger.products import offering
from ledger.typed_data import Amortization, LoanTerms

ROOT = Path(__file__).resolve().parent.parent
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
DAY = 86_400
# The product most tests use: 120,000 minor units, 24% a year, three monthly annuity installments.
TERMS = LoanTerms(120_000, b"CNY", 2400, Amortization.ANNUITY, 3, 30 * DAY, 3 * DAY, 500, 1800, 90 * DAY)
Account.enable_unaudited_hdwallet_features()


def _anvil_binary() -> str:
    native = ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
    return str(native) if native.exists() else (shutil.which("anvil") or "anvil")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_ports():
    """`free_ports(n)`: n distinct free ports of 127.0.0.1 (held open together while picked, so distinct)."""
    def _pick(n: int) -> list[int]:
        sockets = [socket.socket() for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        ports = [s.getsockname()[1] for s in sockets]
        for s in sockets:
            s.close()
        return ports
    return _pick


@dataclass
class StackPorts:
    """Where a whole stack (node, API, oracle, rail, bureau) listens, and the environment that says so."""

    node: int
    api: int
    oracle: int
    rail: int
    bureau: int

    @property
    def env(self) -> dict[str, str]:
        local = "http://127.0.0.1:"
        return {"LOANLEDGER_NODE_PORT": str(self.node), "LOANLEDGER_NODE_URL": f"{local}{self.node}",
                "LOANLEDGER_API_PORT": str(self.api), "LOANLEDGER_ORACLE_URL": f"{local}{self.oracle}",
                "LOANLEDGER_RAIL_URL": f"{local}{self.rail}", "LOANLEDGER_BUREAU_URL": f"{local}{self.bureau}"}

    def still_answering(self) -> list[int]:
        """The ports something still listens on (none, once the stack has stopped)."""
        busy = []
        for port in (self.node, self.api, self.oracle, self.rail, self.bureau):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    busy.append(port)
        return busy


@pytest.fixture
def stack_ports(free_ports) -> StackPorts:
    return StackPorts(*free_ports(5))


@pytest.fixture(scope="session")
def w3():
    port = _free_port()
    proc = subprocess.Popen(
        [_anvil_binary(), "--port", str(port), "--host", "127.0.0.1", "--silent", "--gas-price", "0",
         "--base-fee", "0", "--mnemonic", ANVIL_MNEMONIC, "--accounts", "13"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    web3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
    for _ in range(100):
        if web3.is_connected():
            break
        time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("anvil did not start")
    yield web3
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def keys():
    """Anvil's deterministic accounts: admin, operator, oracle, pauser, signer, then borrowers, then FourEyes' second
    admin and second operator (each confirms what the other of its kind proposes), the automatic approval policy."""
    names = ["admin", "operator", "oracle", "pauser", "signer", "alice", "bob", "carol", "dave", "eve", "admin2",
             "operator2", "policy"]
    accounts = [Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(len(names))]
    return dict(zip(names, accounts))


@pytest.fixture(scope="session")
def stack(w3, keys):
    return deploy_stack(
        w3, keys["admin"].address, operator=keys["operator"].address, oracle=keys["oracle"].address,
        pauser=keys["pauser"].address, score_signer=keys["signer"].address, second_admin=keys["admin2"].address,
        second_operator=keys["operator2"].address, policy=keys["policy"].address,
        # Kept: the driver opens the catalogue's ceilings and many tests set roles and settings up with the admin's
        # own hand; what the default (renounced) deploy forbids is tested on deploys of its own.
        admin_renounces=False,
    )


@pytest.fixture(autouse=True)
def _isolated(request):
    """Revert the chain after each test that uses it."""
    if "w3" not in request.fixturenames:
        yield
        return
    w3 = request.getfixturevalue("w3")
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    yield
    w3.provider.make_request("evm_revert", [snapshot])


def send(w3, fn, sender: str):
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))
    assert receipt.status == 1
    return receipt


@dataclass
class LoanDriver:
    """Drives the real contracts through a loan's life, the way the API and oracle will."""

    w3: object
    stack: object
    keys: dict
    _products: dict = field(default_factory=dict)  # terms -> (product id, version) published in this test

    @property
    def now(self) -> int:
        return self.w3.eth.get_block("latest").timestamp

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])

    def register(self, borrower: LocalAccount, commitment: bytes = b"\x11" * 32) -> None:
        send(self.w3, self.stack.registry.functions.registerBorrower(borrower.address, commitment, self.now + 365 * DAY),
             self.keys["operator"].address)

    def score(self, borrower: LocalAccount, score: int = 700, limit: int = 1_000_000, report_id: int = 1) -> None:
        updates = [(borrower.address, score, limit)]
        message = typed_data.score_report(chain_id=self.w3.eth.chain_id, oracle=self.stack.oracle.address,
                                          report_id=report_id, model_version=1, updates=updates)
        signature = typed_data.sign(self.keys["signer"].key, message)
        send(self.w3, self.stack.oracle.functions.pushScores(report_id, 1, updates, [signature]),
             self.keys["oracle"].address)

    def product(self, terms: LoanTerms = TERMS) -> tuple[int, int]:
        """(id, version) of a product whose one offer is `terms`, published by two operators. The admin first opens
        the catalogue's ceilings wide, so that any terms a test names can be published (tests of the ceilings
        themselves publish their own products)."""
        catalog = self.stack.catalog
        product = offering(terms, f"test {terms.principal}/{terms.installments}")
        published = self._products.get(terms)
        # Still there? A test may have reverted the chain to a snapshot since, and published another under the id.
        if published and published[0] <= catalog.functions.productCount().call() and \
                catalog.functions.product(*published).call() == product.as_tuple(catalog):
            return published
        admin = self.keys["admin"].address
        if catalog.functions.costCapBps().call() != 10_000:
            send(self.w3, catalog.functions.setCostCap(10_000), admin)
        if (catalog.functions.maxRatePlusPenaltyBps().call(), catalog.functions.maxLateFeeBps().call()) != (
                2**16 - 1, 10_000):
            send(self.w3, catalog.functions.setLateChargeCeilings(2**16 - 1, 10_000), admin)
        self.by_two_operators(catalog.functions.createProduct(product.as_tuple(catalog)))
        self._products[terms] = (catalog.functions.productCount().call(), 1)
        return self._products[terms]

    def application(self, borrower: LocalAccount, product_id: int, version: int, principal: int, installments: int,
                    *, nonce: int | None = None, deadline: int | None = None) -> tuple[tuple, int, bytes]:
        """(application tuple, deadline, signature): `borrower`'s signed application, as the book takes it."""
        book = self.stack.book
        nonce = book.functions.nonces(borrower.address).call() if nonce is None else nonce
        deadline = self.now + DAY if deadline is None else deadline
        message = typed_data.loan_application(
            chain_id=self.w3.eth.chain_id, book=book.address, borrower=borrower.address, product_id=product_id,
            product_version=version, principal=principal, installments=installments, nonce=nonce, deadline=deadline)
        return (product_id, version, principal, installments), deadline, typed_data.sign(borrower.key, message)

    def request(self, borrower: LocalAccount, terms: LoanTerms = TERMS) -> int:
        """A signed application for a product offering exactly `terms`, relayed by eve; the new loan's id."""
        product_id, version = self.product(terms)
        return self.apply(borrower, product_id, version, terms.principal, terms.installments)

    def apply(self, borrower: LocalAccount, product_id: int, version: int, principal: int, installments: int) -> int:
        book = self.stack.book
        application, deadline, signature = self.application(borrower, product_id, version, principal, installments)
        send(self.w3, book.functions.requestLoan(application, borrower.address, deadline, signature),
             self.keys["eve"].address)
        return book.functions.loanCount().call()

    def by_two_operators(self, fn):
        """`fn` proposed by the operator and confirmed by the second operator through FourEyes; the receipt."""
        return four_eyes.carry_out(self.w3, self.stack.four_eyes, fn, self.keys["operator"].address,
                                   self.keys["operator2"].address)

    def write_off(self, loan_id: int):
        return self.by_two_operators(self.stack.book.functions.writeOff(loan_id))

    def approve(self, loan_id: int) -> None:
        send(self.w3, self.stack.book.functions.approve(loan_id), self.keys["operator"].address)

    def disburse(self, loan_id: int, amount: int, ref: bytes) -> None:
        send(self.w3, self.stack.book.functions.confirmDisbursement(loan_id, ref.ljust(32, b"\0"), amount, self.now),
             self.keys["oracle"].address)

    def repay(self, loan_id: int, amount: int, ref: bytes) -> None:
        send(self.w3, self.stack.book.functions.confirmRepayment(loan_id, ref.ljust(32, b"\0"), amount, self.now),
             self.keys["oracle"].address)

    def send(self, fn, sender: LocalAccount):
        """Any contract call from one of the test accounts; fails the test if it reverts."""
        return send(self.w3, fn, sender.address)

    def payoff(self, loan_id: int) -> int:
        return self.stack.book.functions.payoffAmount(loan_id, self.now).call()

    def active_loan(self, borrower: LocalAccount, terms: LoanTerms = TERMS, ref: bytes = b"payout-1",
                    report_id: int = 1) -> int:
        """Registered, scored (each score report in a test needs a new `report_id`), requested, approved, disbursed."""
        loan_id = self.approved_loan(borrower, terms, report_id)
        self.disburse(loan_id, terms.principal, ref)
        return loan_id

    def approved_loan(self, borrower: LocalAccount, terms: LoanTerms = TERMS, report_id: int = 1) -> int:
        """Registered, scored, requested and approved: waiting for its payout."""
        self.register(borrower)
        self.score(borrower, report_id=report_id)
        loan_id = self.request(borrower, terms)
        self.approve(loan_id)
        return loan_id


@pytest.fixture
def loan_terms() -> LoanTerms:
    return TERMS


@pytest.fixture
def driver(w3, stack, keys) -> LoanDriver:
    return LoanDriver(w3, stack, keys)


class ManualClock:
    """A service's clock (e.g. the outbox's back-off deadlines), moved by hand; the chain keeps its own time."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def driver_for(keys):
    """`driver_for(w3, stack)`: a LoanDriver on a test's own node (the session's keys)."""
    return lambda w3, stack: LoanDriver(w3, stack, keys)


@pytest.fixture
def revert_name(stack):
    """`revert_name(fn, sender)`: the custom error `fn` reverts with when called from `sender` (fails if it doesn't)."""
    from web3.exceptions import ContractCustomError

    from ledger.errors import ErrorDecoder

    decoder = ErrorDecoder([contract.abi for contract in stack.all])

    def _name(fn, sender: str) -> str:
        try:
            fn.call({"from": sender})
        except ContractCustomError as exc:
            decoded = decoder.from_exception(exc)
            assert decoded is not None, f"not one of our custom errors: {exc!r}"
            return decoded.name
        raise AssertionError(f"{fn.fn_name} did not revert")

    return _name


@contextmanager
def serve(app) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/healthz", timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def serve_app():
    """`with serve_app(app) as url:` runs the app on a free port of 127.0.0.1."""
    return serve


# ---- Store fixtures: SQLite always, PostgreSQL when its server binaries are installed.
#
# PostgreSQL: a throwaway cluster per session (initdb + pg_ctl in a temporary directory, on a free
# port, trust auth on 127.0.0.1 only) and a fresh database per test. initdb refuses to run as root,
# so as root the cluster runs as the `postgres` system user.


def _pg_bin(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def pg_server():
    """Base URL of a throwaway PostgreSQL cluster, or None when PostgreSQL is not installed."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="loanledger-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        root.chmod(0o700)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
                    f"-F -p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = request.getfixturevalue("pg_server")
    if base is None:
        # CI sets LOANLEDGER_REQUIRE_POSTGRES after installing the server: there a missing server is a failure.
        if os.environ.get("LOANLEDGER_REQUIRE_POSTGRES"):
            pytest.fail("LOANLEDGER_REQUIRE_POSTGRES is set but initdb/pg_ctl are not installed")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = base.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sessions(db_url):
    factory = open_store(db_url)
    yield factory
    factory.kw["bind"].dispose()

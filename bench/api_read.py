"""The API's read path against bare FastAPI: `make bench` prints it and writes bench/results/api_read.json.

Measured side by side in one run with wrk (Debian's `wrk`, installed when missing): 16 connections, one
wrk thread (two cores are shared by wrk and the servers), a warm-up then a few seconds per route,
`--latency` for the percentiles. Hello world is a one-route FastAPI app in its own uvicorn process; the
LoanLedger API is `create_app()` as `loanledger api` builds it, in another; both served the same way (one
worker, access log off, warnings only). The ledger is like the demo's: a fresh anvil with the contracts,
20 loans made on-chain (registered, scored, requested, approved, paid out), and 10,000 loans written
straight into the store's `loans` table for the portfolio report (through the chain they would take minutes and measure the chain). The indexer follows
the chain in its own process, as in the stack, so each API process sees the store another process writes.

Hello world is measured before and after the API routes; its figure is the mean of the two, so a machine
that slows down during the run does not flatter the ratios. The same routes are then measured with two
uvicorn workers (`--workers 2`, sharing the store; hello world gets two workers too), written under
"workers_2". With several workers, rate limits need a shared `rate_limit_storage` (redis://...): the
default memory:// is per process, so each worker would grant the whole allowance (the routes measured
here are not rate limited). The API's other caches are per process and need nothing shared: roles (read
from the chain, kept a few seconds, as before), verified tokens (their expiry checked on every use) and
read bodies (checked against the store's indexer cursor on every request).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.auth import issue_token  # noqa: E402
from bench.book import active_book  # noqa: E402
from ledger import manifest as manifests  # noqa: E402
from ledger.chain import ChainClient  # noqa: E402
from ledger.deploy import deploy_stack  # noqa: E402
from ledger.node import DEV_SECOND_OPERATOR, EphemeralNode, dev_account, free_port  # noqa: E402
from ledger.store import open_store  # noqa: E402
from ledger.store.models.chain import Loan  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "api_read.json"
CONNECTIONS = 16
WARM_UP_S = 1
DURATION_S = 4
CHAIN_LOANS = 20
SEEDED_LOANS = 10_000
SEED_FIRST_ID = 1_000_001       # far above the chain's own ids, which the indexer writes
DAY = 86_400
ROUTES = ("/healthz", "/v1/auth/me", "/v1/audit/loans/1", "/v1/audit/loans?limit=20", "/v1/audit/report/portfolio")
TARGETS = {"/healthz": 0.8, "/v1/audit/loans/1": 0.3, "/v1/audit/loans?limit=20": 0.3,
           "/v1/audit/report/portfolio": 0.3}
JWT_SECRET = "bench-secret-of-at-least-32-bytes!"
CONFIG_ENV = "LOANLEDGER_BENCH_READ_CONFIG"


# -- the processes ------------------------------------------------------------------------------------

def hello_world():
    """The reference: FastAPI's own first example."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/")
    async def root():
        return {"message": "Hello World"}

    return app


def _settings(config: dict):
    from ledger.config import Settings
    return Settings(home=Path(config["home"]), node_url=config["node_url"], manifest=config["manifest"],
                    db_url=config["db_url"], api_host="127.0.0.1", auditors=config["auditor"],
                    rail_url="http://127.0.0.1:9", anchor_interval=0)


def loanledger_api():
    """The API as `loanledger api` builds it, from the bench's config (a factory: uvicorn --workers imports it)."""
    from web3 import Web3

    from api.app import create_app
    from api.context import Context
    from ledger.vault import Keyring, Vault

    config = json.loads(os.environ[CONFIG_ENV])
    settings = _settings(config)
    sessions = open_store(settings.database_url)
    context = Context(settings=settings, sessions=sessions, vault=Vault(sessions, Keyring.generate()),
                      w3=Web3(Web3.HTTPProvider(settings.node_url, request_kwargs={"timeout": 30})),
                      jwt_secret=JWT_SECRET.encode())
    return create_app(context)


def index(config: dict) -> None:
    """The indexer in its own process, following the chain as the stack's does."""
    from web3 import Web3

    from ledger.indexer import Indexer

    sessions = open_store(config["db_url"])
    Indexer(Web3(Web3.HTTPProvider(config["node_url"])), manifests.load(Path(config["manifest"])),
            sessions).follow(poll_interval=0.5)


class Server:
    """One uvicorn process (`workers` workers) serving `factory` on a free port of 127.0.0.1."""

    def __init__(self, factory: str, config: dict, log: Path, workers: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, CONFIG_ENV: json.dumps(config), "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port",
                   str(self.port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
        with log.open("w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.url} exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.url} did not become ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        stop(self.process)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- wrk ----------------------------------------------------------------------------------------------

def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True)
    return shutil.which("wrk") or "wrk"


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict:
    """req/s, p50 and p99 (ms), and the count of non-2xx answers from wrk's `--latency` report."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)$", output, re.M))
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: (.*)$", output, re.M)
    return {"rps": round(rps, 1), "p50_ms": round(_ms(percentiles["50"]), 2),
            "p99_ms": round(_ms(percentiles["99"]), 2), "non_2xx": int(failed.group(1)) if failed else 0,
            "socket_errors": errors.group(1) if errors else None}


def wrk(binary: str, url: str, token: str | None, seconds: int) -> dict:
    header = ["-H", f"Authorization: Bearer {token}"] if token else []
    command = [binary, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "5s", *header, url]
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def measure(binary: str, url: str, token: str | None = None) -> dict:
    wrk(binary, url, token, WARM_UP_S)
    return wrk(binary, url, token, DURATION_S)


def measure_api(binary: str, api: Server, token: str) -> dict[str, dict]:
    out = {}
    for path in ROUTES:
        result = measure(binary, api.url + path, None if path == "/healthz" else token)
        if result["non_2xx"] or result["socket_errors"]:
            print(f"  {path}: {result['non_2xx']} non-2xx answers, socket errors: {result['socket_errors']}")
        out[path] = result
        print(f"  {path}: {result['rps']:,} req/s", flush=True)
    return out


# -- the run ------------------------------------------------------------------------------------------

def seed_loans(sessions, now: int) -> dict[str, int]:
    """10,000 loans of every status in the read model, ages spread so that every delinquency bucket fills."""
    rng = random.Random(5)
    statuses = ["Active"] * 70 + ["Repaid"] * 12 + ["Defaulted"] * 6 + ["WrittenOff"] * 4 + ["Requested"] * 4 \
        + ["Approved"] * 2 + ["Rejected"] + ["Cancelled"]
    rows, counts = [], {}
    for i in range(SEEDED_LOANS):
        status = rng.choice(statuses)
        counts[status] = counts.get(status, 0) + 1
        principal = rng.randrange(10_000, 500_000)
        installments = rng.choice((3, 6, 12))
        disbursed = now - rng.randrange(0, 400) * DAY if status not in ("Requested", "Approved", "Rejected",
                                                                        "Cancelled") else 0
        paid = rng.randrange(0, installments + 1) if status == "Active" else (installments if status == "Repaid" else 0)
        repaid = principal * paid // installments
        rows.append({
            "id": SEED_FIRST_ID + i, "borrower": "0x" + rng.randbytes(20).hex(), "status": status,
            "principal": principal, "currency": "CNY", "annual_rate_bps": 2400, "amortization": "Annuity",
            "installments": installments, "interval": 30 * DAY, "grace_period": 3 * DAY, "late_fee_bps": 500,
            "penalty_rate_bps": 1800, "default_after": 90 * DAY, "request_nonce": 0,
            "requested_at": (disbursed or now) - DAY, "disbursed_at": disbursed, "accrued_at": disbursed,
            "closed_at": now if status in ("Repaid", "WrittenOff", "Rejected", "Cancelled") else None,
            "paid_installments": paid, "principal_repaid": repaid, "interest_paid": repaid // 20,
            "principal_written_off": principal - repaid if status == "WrittenOff" else 0,
            "next_due_at": None, "days_past_due": 0, "as_of": now, "last_event_block": 0})
    with sessions.begin() as session:
        session.execute(insert(Loan), rows)
    return counts



def build_ledger(tmp: Path, node) -> dict:
    w3 = node.w3
    admin, operator, oracle, pauser, signer = (dev_account(i) for i in range(5))
    stack = deploy_stack(w3, admin.address, operator=operator.address, oracle=oracle.address,
                         pauser=pauser.address, score_signer=signer.address, second_operator=dev_account(DEV_SECOND_OPERATOR).address)
    active_book(w3, stack, ChainClient(w3, operator, stack.errors, poll_interval=0.005),
                ChainClient(w3, oracle, stack.errors, poll_interval=0.005), signer, CHAIN_LOANS)
    manifest = manifests.save(stack.manifest, tmp / "manifest.json")
    db_url = f"sqlite:///{tmp}/api.db"
    seed_loans(open_store(db_url), w3.eth.get_block("latest").timestamp)
    return {"home": str(tmp), "node_url": node.url, "manifest": str(manifest), "db_url": db_url,
            "auditor": dev_account(5).address}


def wait_indexed(config: dict, block: int) -> None:
    from api.context import Context
    probe = Context(settings=_settings(config), sessions=open_store(config["db_url"]), vault=None, w3=None,
                    jwt_secret=b"")
    deadline = time.monotonic() + 120
    while probe.indexed_block() < block:
        if time.monotonic() > deadline:
            raise SystemExit(f"the indexer did not reach block {block}")
        time.sleep(0.2)


def run(binary: str, config: dict, tmp: Path, token: str, workers: int) -> dict:
    hello = Server("bench.api_read:hello_world", config, tmp / f"hello-{workers}.log", workers)
    api = Server("bench.api_read:loanledger_api", config, tmp / f"api-{workers}.log", workers)
    try:
        hello.wait_ready("/")
        api.wait_ready("/healthz")
        print(f"{workers} worker(s): hello world", flush=True)
        before = measure(binary, hello.url + "/")
        routes = measure_api(binary, api, token)
        after = measure(binary, hello.url + "/")
    finally:
        api.stop()
        hello.stop()
    hello_rps = round((before["rps"] + after["rps"]) / 2, 1)
    print(f"  hello world: {before['rps']:,} then {after['rps']:,} req/s", flush=True)
    return {"hello_world_rps": hello_rps, "hello_world_runs": [before, after],
            "routes": {path: {"rps": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                              "ratio": round(r["rps"] / hello_rps, 3), "non_2xx": r["non_2xx"]}
                       for path, r in routes.items()}}


def table(title: str, result: dict) -> Table:
    out = Table(title=title)
    for column in ("route", "req/s", "p50 ms", "p99 ms", "× hello world", "target"):
        out.add_column(column, justify="left" if column == "route" else "right")
    out.add_row("hello world (FastAPI)", f"{result['hello_world_rps']:,}", "", "", "1", "")
    for path, r in result["routes"].items():
        target = TARGETS.get(path)
        met = "" if target is None else (f"≥ {target} " + ("ok" if r["ratio"] >= target and
                                                            (path == "/healthz" or r["p99_ms"] < 50) else "MISSED"))
        out.add_row(path, f"{r['rps']:,}", f"{r['p50_ms']}", f"{r['p99_ms']}", f"{r['ratio']}", met)
    return out


def main() -> dict:
    binary = ensure_wrk()
    began = time.perf_counter()
    with EphemeralNode() as node, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = build_ledger(tmp, node)
        indexer = subprocess.Popen([sys.executable, __file__, "index", json.dumps(config)], cwd=ROOT,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)},
                                   stdout=subprocess.DEVNULL, stderr=(tmp / "indexer.log").open("w"))
        try:
            wait_indexed(config, node.w3.eth.block_number)
            token, _ = issue_token(SimpleNamespace(settings=_settings(config), jwt_secret=JWT_SECRET.encode()),
                                   config["auditor"])
            print(f"set up in {time.perf_counter() - began:.0f} s; measuring", flush=True)
            one = run(binary, config, tmp, token, workers=1)
            two = run(binary, config, tmp, token, workers=2)
        finally:
            stop(indexer)
    console = Console()
    console.print(table(f"API read path, wrk {CONNECTIONS} connections, one uvicorn worker each", one))
    console.print(table("The same, two uvicorn workers each", two))
    results = {"hello_world_rps": one["hello_world_rps"],
               "routes": {p: {k: r[k] for k in ("rps", "p50_ms", "p99_ms", "ratio")} for p, r in one["routes"].items()},
               "workers_2": {"hello_world_rps": two["hello_world_rps"],
                             "routes": {p: {k: r[k] for k in ("rps", "p50_ms", "p99_ms", "ratio")}
                                        for p, r in two["routes"].items()}}}
    print(f"{os.cpu_count()} CPUs; wrk -t1 -c{CONNECTIONS}, {DURATION_S} s per route after {WARM_UP_S} s of warm-up; "
          f"{CHAIN_LOANS} loans on-chain, 10,000 more in the store; hello world runs (1 worker): "
          f"{[r['rps'] for r in one['hello_world_runs']]}")
    failures = {f"{n} worker(s) {p}": r["non_2xx"] for n, result in ((1, one), (2, two))
                for p, r in result["routes"].items() if r["non_2xx"]}
    if failures:
        print(f"non-2xx answers (the figures count them as requests): {failures}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["index"]:
        index(json.loads(sys.argv[2]))
    else:
        main()

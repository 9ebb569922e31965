"""API write throughput on loopback: `make bench` prints it and writes bench/results/api.json.

A fresh anvil with the contracts deployed; the API under uvicorn in its own process (as `loanledger api
serve` runs it) on 127.0.0.1 with the indexer following the chain in that process; 16 concurrent
clients (threads, one keep-alive httpx connection each) in this process, which is fair for writes: each
one waits for the chain for seconds, so the clients' own cost does not show. Reads are measured by
bench/api_read.py with wrk, against bare FastAPI (a Python load generator on two cores measures itself).

Applications relayed end to end: POST /v1/loans for a published product with a real EIP-712 signature (the
LoanApplication: product version, principal, count) by each of 16 registered
and scored borrowers (one per client, signed in with SIWE); the API checks the signature, relays
`requestLoan` from its relayer key, waits for the receipt and for the indexer to store the block.
Printed beside the node's own figure from bench/results/ledger.json (`raw_tx_per_s`: pre-signed
transactions sent back to back), its ceiling.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from eth_account import Account
from eth_utils import keccak
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.client import LoanLedgerClient  # noqa: E402
from ledger import four_eyes, typed_data  # noqa: E402
from ledger import manifest as manifests  # noqa: E402
from ledger.chain import ChainClient  # noqa: E402
from ledger.deploy import deploy_stack  # noqa: E402
from ledger.node import DEV_SECOND_OPERATOR, EphemeralNode, dev_account, free_port  # noqa: E402
from ledger.products import DayCount, EarlyRepayment, Frequency, Product, product_name  # noqa: E402
from ledger.store import open_store  # noqa: E402
from ledger.typed_data import Amortization  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "api.json"
LEDGER_RESULTS = ROOT / "bench" / "results" / "ledger.json"
CLIENTS = 16
APPLICATIONS_PER_CLIENT = 15    # 240 applications
DAY = 86_400
PRINCIPAL, INSTALLMENTS = 120_000, 3  # what every borrower applies for, of the one product published
PRODUCT = Product(
    name=product_name("3-month"), currency=b"CNY", min_principal=1_000, max_principal=10_000_000, min_installments=3,
    max_installments=3, frequency=Frequency.FIXED_INTERVAL, day_count=DayCount.ACTUAL_365_FIXED, interval=30 * DAY,
    annual_rate_bps=2400, amortization=Amortization.ANNUITY, grace_period=3 * DAY, late_fee_bps=500,
    penalty_rate_bps=1200, default_after=90 * DAY, service_fee_bps=0,
    early_repayment=EarlyRepayment.REDUCE_INSTALLMENTS, auto_approve=False, auto_approve_max_principal=0)
JWT_SECRET = "bench-secret-of-at-least-32-bytes!"


# -- the server process -----------------------------------------------------------------------------

def serve(config: dict) -> None:
    """The API as deployed: one uvicorn process, the indexer following the chain in a thread beside it."""
    import uvicorn
    from web3 import Web3

    from api.app import create_app
    from api.context import Context
    from ledger.config import Settings
    from ledger.indexer import Indexer
    from ledger.vault import Keyring, Vault

    settings = Settings(home=Path(config["home"]), node_url=config["node_url"], manifest=config["manifest"],
                        db_url=config["db_url"], api_host="127.0.0.1", api_port=config["port"],
                        auditors=config["auditor"], index_wait=30, rail_url="http://127.0.0.1:9",
                        # Its borrowers are registered on-chain directly, with no vault record (no phone to text a
                        # step-up code to): applications go without one here (the API warns at start).
                        step_up_actions="phone_change,card_change,debit_mandate,reschedule_request,reschedule_accept")
    sessions = open_store(settings.database_url)
    context = Context(settings=settings, sessions=sessions, vault=Vault(sessions, Keyring.generate()),
                      w3=Web3(Web3.HTTPProvider(settings.node_url, request_kwargs={"timeout": 30})),
                      jwt_secret=JWT_SECRET.encode(), env={"LOANLEDGER_RELAYER_KEY": config["relayer_key"]})
    indexer = Indexer(Web3(Web3.HTTPProvider(settings.node_url)), manifests.load(Path(config["manifest"])), sessions)
    threading.Thread(target=indexer.follow, kwargs={"poll_interval": 0.05}, daemon=True).start()
    uvicorn.run(create_app(context), host="127.0.0.1", port=config["port"], log_level="warning", access_log=False)


# -- set-up -----------------------------------------------------------------------------------------

def register_and_score(w3, stack, borrowers: list) -> int:
    """Registers and scores the borrowers and publishes the product they apply for; its id."""
    operator = ChainClient(w3, dev_account(1), stack.errors, poll_interval=0.005)
    four_eyes.carry_out(w3, stack.four_eyes, stack.catalog.functions.createProduct(PRODUCT.as_tuple(stack.catalog)),
                        operator.address, dev_account(DEV_SECOND_OPERATOR).address)  # two operators
    oracle = ChainClient(w3, dev_account(2), stack.errors, poll_interval=0.005)
    now = w3.eth.get_block("latest").timestamp
    operator.transact_many([stack.registry.functions.registerBorrower(b.address, keccak(text=b.address), now + 365 * DAY)
                            for b in borrowers])
    updates = [(b.address, 700, 1_000 * PRINCIPAL) for b in borrowers]
    report = typed_data.score_report(chain_id=w3.eth.chain_id, oracle=stack.oracle.address, report_id=1,
                                     model_version=1, updates=updates)
    oracle.transact(stack.oracle.functions.pushScores(1, 1, updates, [typed_data.sign(dev_account(4).key, report)]))
    return stack.catalog.functions.productCount().call()


def wait_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the API exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the API did not become ready:\n{log.read_text()[-3000:]}")


# -- measuring --------------------------------------------------------------------------------------

def measure(url: str, per_client: int, request) -> dict:
    """`request(http, client, k) -> response` from CLIENTS threads at once.

    A 503, or a 409 `idempotency_in_progress`, is retried as a client is told to (the same request and
    Idempotency-Key, after a pause); latency counts from the first try. Answers that stay errors are
    counted by status, not hidden: the rate is of successful requests only."""
    https = [httpx.Client(base_url=url, timeout=120) for _ in range(CLIENTS)]
    for http in https:
        http.get("/healthz")  # the connection is open before the clock starts
    start = threading.Barrier(CLIENTS + 1)
    retries, errors = [0] * CLIENTS, [dict() for _ in range(CLIENTS)]

    def retry(response: httpx.Response) -> bool:
        return response.status_code == 503 or (response.status_code == 409 and "idempotency_in_progress" in response.text)

    def worker(client: int) -> list[float]:
        http, latencies = https[client], []
        start.wait()
        for k in range(per_client):
            began = time.perf_counter()
            response = request(http, client, k)
            for _ in range(20):
                if not retry(response):
                    break
                retries[client] += 1
                time.sleep(0.25)
                response = request(http, client, k)
            if response.status_code >= 400:
                key = f"{response.status_code} {response.json().get('error', {}).get('code', '')}".strip()
                errors[client][key] = errors[client].get(key, 0) + 1
                continue
            latencies.append(time.perf_counter() - began)
        return latencies

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(worker, c) for c in range(CLIENTS)]
        start.wait()
        began = time.perf_counter()
        latencies = [x for f in futures for x in f.result()]
        elapsed = time.perf_counter() - began
    for http in https:
        http.close()
    failed: dict[str, int] = {}
    for per in errors:
        for key, n in per.items():
            failed[key] = failed.get(key, 0) + n
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"requests": CLIENTS * per_client, "succeeded": len(latencies), "per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "p99_ms": round(cuts[98] * 1000, 1), "retried": sum(retries), "failed": failed}


def signed_applications(w3, book: str, product_id: int, borrowers: list, count: int,
                        deadline: int) -> list[list[dict]]:
    """Per borrower, `count` application bodies signed with nonces 1..count (nonce 0 went to the warm-up)."""
    chain_id = w3.eth.chain_id
    out = []
    for borrower in borrowers:
        bodies = []
        for nonce in range(1, count + 1):
            signed = {"product_id": product_id, "product_version": 1, "principal": PRINCIPAL + nonce,
                      "installments": INSTALLMENTS}
            message = typed_data.loan_application(chain_id=chain_id, book=book, borrower=borrower.address,
                                                  nonce=nonce, deadline=deadline, **signed)
            bodies.append({**signed, "deadline": deadline,
                           "signature": "0x" + typed_data.sign(borrower.key, message).hex()})
        out.append(bodies)
    return out


def main() -> dict:
    raw = json.loads(LEDGER_RESULTS.read_text()).get("raw_tx_per_s") if LEDGER_RESULTS.exists() else None
    setup_began = time.perf_counter()
    with EphemeralNode() as node, tempfile.TemporaryDirectory() as tmp:
        w3 = node.w3
        admin, operator, oracle, pauser, signer = (dev_account(i) for i in range(5))
        stack = deploy_stack(w3, admin.address, operator=operator.address, oracle=oracle.address,
                             pauser=pauser.address, score_signer=signer.address,
                             second_operator=dev_account(DEV_SECOND_OPERATOR).address)
        borrowers = [dev_account(10 + i) for i in range(CLIENTS)]
        product_id = register_and_score(w3, stack, borrowers)

        manifest = manifests.save(stack.manifest, Path(tmp) / "manifest.json")
        db_url = f"sqlite:///{tmp}/api.db"
        open_store(db_url)  # migrated here, before the server opens it

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        config = {"home": tmp, "node_url": node.url, "manifest": str(manifest), "db_url": db_url, "port": port,
                  "auditor": "", "relayer_key": Account.create().key.hex()}
        log = Path(tmp) / "api.log"
        with log.open("w") as out:
            server = subprocess.Popen([sys.executable, __file__, "serve", json.dumps(config)], stdout=out,
                                      stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_ready(url, server, log)
            # Sign-in is SIWE, as a wallet does it (17 sign-ins: under the 30/minute per-client limit).
            sdk = {b.address: LoanLedgerClient(url, b) for b in borrowers}
            for client in sdk.values():
                client.login()
            # Warm-up: one application per borrower through the SDK (nonce 0).
            for client in sdk.values():
                client.apply(product_id, PRINCIPAL, INSTALLMENTS)

            print(f"set up in {time.perf_counter() - setup_began:.0f} s; measuring", flush=True)
            deadline = w3.eth.get_block("latest").timestamp + DAY
            bodies = signed_applications(w3, stack.book.address, product_id, borrowers, APPLICATIONS_PER_CLIENT,
                                         deadline)
            tokens = [{"authorization": f"Bearer {sdk[b.address].token}"} for b in borrowers]
            keys = [[str(uuid.uuid4()) for _ in range(APPLICATIONS_PER_CLIENT)] for _ in borrowers]
            applications = measure(url, APPLICATIONS_PER_CLIENT, lambda http, c, k: http.post(
                "/v1/loans", json=bodies[c][k], headers={**tokens[c], "idempotency-key": keys[c][k]}))
            # Every application answered 201 made exactly one loan (none twice, whatever was retried).
            made = stack.book.functions.loanCount().call() - CLIENTS
            applications["loans_made_on_chain"] = made
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()

    results = {
        "clients": CLIENTS,
        "raw_node_tx_per_s": raw,
        "applications_relayed": {"borrowers": CLIENTS, **applications,
                                 "to_raw_node_ratio": round(applications["per_s"] / raw, 3) if raw else None},
    }
    raw_text = f"{raw:,}" if raw else "n/a (run bench/ledger.py)"
    table = Table(title=f"API writes on loopback, {CLIENTS} concurrent clients (one uvicorn process, "
                        "indexer beside it)")
    for column in ("measure", "requests", "per second", "p50 ms", "p99 ms", "raw node tx/s"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for label, row in (("applications relayed", applications),):
        table.add_row(label, f"{row['requests']:,}", f"{row['per_s']:,}", f"{row['p50_ms']:,}", f"{row['p99_ms']:,}",
                      raw_text)
    Console().print(table)
    for row in (applications,):
        if row["retried"] or row["failed"]:
            print(f"{row['succeeded']} of {row['requests']} succeeded; {row['retried']} retries (503 or "
                  f"idempotency_in_progress); still failing: {row['failed'] or 'none'}")
    print(f"loans made on-chain by the timed applications: {applications['loans_made_on_chain']}")
    print("POST /v1/loans, answered once mined and indexed. Reads: bench/api_read.py.")
    if raw:
        print(f"applications / raw node: {results['applications_relayed']['to_raw_node_ratio']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(json.loads(sys.argv[2]))
    else:
        main()

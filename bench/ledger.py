"""Ledger throughput on a fresh anvil: `make bench` prints it and writes bench/results/ledger.json.

(a) The same transactions (borrower registrations) sent two ways in one run against one node:
    - raw: signed up front, then submitted as raw JSON-RPC batches of 100 (no estimation, no
      signing, no client in the loop): the node's own figure;
    - through the ledger client: `ChainClient.transact_many`, batches of 100, signing and nonces
      included (the key `client_tx_per_s`; `ratio` is client / raw). For reference, also
      `ChainClient.transact` from 8 threads with gas estimation, as the API and oracle send one by one.
(b) The indexer catching up from the deployment block on a book with over 10,000 loan events
    (200 loans, 10,000 partial repayments confirmed in batches of 50): events/s.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from eth_utils import keccak
from rich.console import Console
from rich.table import Table
from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.book import FIRST_BORROWER, active_book  # noqa: E402
from ledger.chain import ChainClient  # noqa: E402
from ledger.deploy import deploy_stack  # noqa: E402
from ledger.indexer import Indexer  # noqa: E402
from ledger.node import DEV_SECOND_OPERATOR, EphemeralNode, dev_account  # noqa: E402
from ledger.store import open_store  # noqa: E402
from ledger.store.models.chain import ChainEvent  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ledger.json"
N = 1_000         # transactions per way in (a)
BATCH = 100
THREADS = 8
GAS = 120_000     # registerBorrower needs ~75k; fixed on both ways of (a) so neither pays for estimation
LOANS, REPAYMENTS, PER_TX = 200, 10_000, 50
COMMITMENT = b"\x33" * 32


def _borrower(i: int) -> str:
    return Web3.to_checksum_address(i.to_bytes(20, "big"))


def _wait_mined(w3, tx_hash) -> None:
    w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01)


def main() -> dict:
    console = Console()
    with EphemeralNode(accounts=FIRST_BORROWER + LOANS) as node:
        w3 = node.w3
        admin, operator_key, oracle_key, pauser, signer = (dev_account(i) for i in range(5))
        stack = deploy_stack(w3, admin.address, operator=operator_key.address, oracle=oracle_key.address,
                             pauser=pauser.address, score_signer=signer.address,
                             second_operator=dev_account(DEV_SECOND_OPERATOR).address)
        expiry = w3.eth.get_block("latest").timestamp + 365 * 86_400
        register = lambda i: stack.registry.functions.registerBorrower(_borrower(i), COMMITMENT, expiry)  # noqa: E731

        # (a) raw: pre-signed, submitted in JSON-RPC batches.
        nonce = w3.eth.get_transaction_count(operator_key.address)
        chain_id = w3.eth.chain_id
        raws = ["0x" + bytes(operator_key.sign_transaction(register(1 + i).build_transaction(
            {"from": operator_key.address, "nonce": nonce + i, "gas": GAS, "gasPrice": 0, "chainId": chain_id})
        ).raw_transaction).hex() for i in range(N)]
        started = time.perf_counter()
        last = None
        for start in range(0, N, BATCH):
            answers = w3.provider.make_batch_request([("eth_sendRawTransaction", [raw]) for raw in raws[start:start + BATCH]])
            last = max(answers, key=lambda a: a["id"])["result"]
        _wait_mined(w3, last)
        raw_s = time.perf_counter() - started

        # (a) the ledger client, batched and pipelined the same way, signing and nonces included, and
        # every receipt fetched and checked (the raw way only waits for the last one).
        operator = ChainClient(w3, operator_key, stack.errors, poll_interval=0.01)
        functions = [register(100_000 + i) for i in range(N)]
        started = time.perf_counter()
        hashes = [h for start in range(0, N, BATCH) for h in operator.submit_many(functions[start:start + BATCH], gas=GAS)]
        receipts = operator.wait_many(hashes)
        client_s = time.perf_counter() - started
        assert all(r["status"] == 1 for r in receipts)

        # For reference: one transaction per call from 8 threads, each estimated.
        per_thread = N // THREADS
        started = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda t: [operator.transact(register(200_000 + t * per_thread + i))
                                     for i in range(per_thread)], range(THREADS)))
        threads_s = time.perf_counter() - started

        # (b) a book with over 10,000 loan events, then the indexer from scratch.
        oracle = ChainClient(w3, oracle_key, stack.errors, poll_interval=0.01)
        loan_ids = active_book(w3, stack, operator, oracle, signer, LOANS)
        paid_at = w3.eth.get_block("latest").timestamp
        for start in range(0, REPAYMENTS, PER_TX):
            oracle.transact(stack.book.functions.confirmRepayments(
                [(loan_ids[n % LOANS], keccak(text=f"repay-{n}"), 1_000, paid_at) for n in range(start, start + PER_TX)]))
        with tempfile.TemporaryDirectory() as tmp:
            sessions = open_store(f"sqlite:///{tmp}/bench.db")
            started = time.perf_counter()
            report = Indexer(w3, stack.manifest, sessions, batch_size=500).run_once()
            index_s = time.perf_counter() - started
            with sessions() as session:
                loan_events = session.query(ChainEvent).filter(ChainEvent.loan_id.is_not(None)).count()

    results = {
        "transactions": N,
        "raw_tx_per_s": round(N / raw_s, 1),
        "client_tx_per_s": round(N / client_s, 1),
        "client_threads_tx_per_s": round(N / threads_s, 1),
        "indexer_events": report.events,
        "indexer_loan_events": loan_events,
        "indexer_events_per_s": round(report.events / index_s, 1),
    }
    results["ratio"] = round(results["client_tx_per_s"] / results["raw_tx_per_s"], 3)
    table = Table(title=f"Ledger throughput on one anvil ({N} registerBorrower transactions per way)")
    table.add_column("measure")
    table.add_column("per second", justify="right")
    table.add_row(f"raw node: pre-signed, JSON-RPC batches of {BATCH}", f"{results['raw_tx_per_s']:,}")
    table.add_row(f"ChainClient.submit_many + wait_many, batches of {BATCH}", f"{results['client_tx_per_s']:,}")
    table.add_row(f"ChainClient.transact, {THREADS} threads, estimated", f"{results['client_threads_tx_per_s']:,}")
    table.add_row(f"indexer ({report.events:,} events, {loan_events:,} of loans)", f"{results['indexer_events_per_s']:,}")
    console.print(table)
    console.print(f"ledger client / raw node: {results['ratio']} (aim >= 0.5)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written to {RESULTS.relative_to(ROOT)}")
    return results


if __name__ == "__main__":
    main()

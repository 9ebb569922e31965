"""Ledger throughput on a fresh anvil: `make bench` prints it and writes bench/results/ledger.json.

- raw_tx_per_s: the node's own figure: pre-signed transactions sent one request each, back to back
  (no estimation, no signing in the loop): what the node accepts and mines.
- client_tx_per_s: the same kind of transaction through ChainClient.transact from 8 threads, as the
  oracle and the API send (estimation, signing, nonce lock, receipt polling included).
- client_batch_tx_per_s: ChainClient.transact_many, 100 per JSON-RPC batch.
- indexer_events_per_s: every event of the run indexed from the deployment block into a fresh SQLite.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table
from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.chain import ChainClient  # noqa: E402
from ledger.deploy import deploy_stack  # noqa: E402
from ledger.indexer import Indexer  # noqa: E402
from ledger.node import EphemeralNode, dev_account  # noqa: E402
from ledger.store import open_store  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ledger.json"
N = 800          # transactions per measurement
THREADS = 8
GAS = 120_000    # registerBorrower needs ~70k; fixed for the raw sends, which skip estimation
COMMITMENT = b"\x33" * 32


def _borrower(i: int) -> str:
    return Web3.to_checksum_address(i.to_bytes(20, "big"))


def main() -> dict[str, float]:
    with EphemeralNode(accounts=10) as node:
        w3 = node.w3
        admin, operator, oracle, pauser, signer = (dev_account(i) for i in range(5))
        stack = deploy_stack(w3, admin.address, operator=operator.address, oracle=oracle.address,
                             pauser=pauser.address, score_signer=signer.address)
        expiry = w3.eth.get_block("latest").timestamp + 365 * 86_400
        register = lambda i: stack.registry.functions.registerBorrower(_borrower(i), COMMITMENT, expiry)  # noqa: E731

        # The node alone: signed up front, then sent one after another.
        nonce = w3.eth.get_transaction_count(operator.address)
        raws = [operator.sign_transaction(register(1 + i).build_transaction(
            {"from": operator.address, "nonce": nonce + i, "gas": GAS, "gasPrice": 0, "chainId": w3.eth.chain_id})
        ).raw_transaction for i in range(N)]
        started = time.perf_counter()
        hashes = [w3.eth.send_raw_transaction(raw) for raw in raws]
        w3.eth.wait_for_transaction_receipt(hashes[-1], poll_latency=0.01)
        raw_s = time.perf_counter() - started

        client = ChainClient(w3, operator, stack.errors, poll_interval=0.01)
        per_thread = N // THREADS
        started = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda t: [client.transact(register(100_000 + t * per_thread + i))
                                     for i in range(per_thread)], range(THREADS)))
        client_s = time.perf_counter() - started

        started = time.perf_counter()
        for start in range(0, N, 100):
            client.transact_many([register(200_000 + start + i) for i in range(100)])
        batch_s = time.perf_counter() - started

        with tempfile.TemporaryDirectory() as tmp:
            sessions = open_store(f"sqlite:///{tmp}/bench.db")
            started = time.perf_counter()
            report = Indexer(w3, stack.manifest, sessions, batch_size=500).run_once()
            index_s = time.perf_counter() - started

    results = {
        "transactions": N,
        "raw_tx_per_s": round(N / raw_s, 1),
        "client_tx_per_s": round(N / client_s, 1),
        "client_batch_tx_per_s": round(N / batch_s, 1),
        "indexer_events": report.events,
        "indexer_events_per_s": round(report.events / index_s, 1),
    }
    results["client_to_raw_ratio"] = round(results["client_tx_per_s"] / results["raw_tx_per_s"], 3)
    table = Table(title=f"Ledger throughput on one anvil ({N} registerBorrower transactions per row)")
    table.add_column("measure")
    table.add_column("per second", justify="right")
    table.add_row("raw node: pre-signed, sequential", f"{results['raw_tx_per_s']:,}")
    table.add_row(f"ChainClient.transact, {THREADS} threads", f"{results['client_tx_per_s']:,}")
    table.add_row("ChainClient.transact_many, 100 per batch", f"{results['client_batch_tx_per_s']:,}")
    table.add_row(f"indexer ({report.events} events)", f"{results['indexer_events_per_s']:,}")
    Console().print(table)
    print(f"client / raw node: {results['client_to_raw_ratio']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return results


if __name__ == "__main__":
    main()

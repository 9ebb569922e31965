"""Payment confirmations on a fresh anvil: `make bench` prints them and writes bench/results/oracle.json.

The same kind of confirmation (a partial repayment of an active 12-installment loan) pushed two ways
in one run against one node, through ChainClient as the outbox worker pushes them:
- one per transaction (`confirmRepayment`), sent back to back;
- batched (`confirmRepayments`, 50 per transaction).
Gas per confirmation at batch sizes 1, 10 and 50 is each batch receipt's gasUsed divided by its size.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from eth_utils import keccak
from rich.console import Console
from rich.table import Table
from web3.logs import DISCARD

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.book import FIRST_BORROWER, active_book  # noqa: E402
from ledger.chain import ChainClient  # noqa: E402
from ledger.deploy import deploy_stack  # noqa: E402
from ledger.node import EphemeralNode, dev_account  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "oracle.json"
LOANS = 40
PER_MODE = 400          # confirmations pushed each way
AMOUNT = 1_000          # minor units per confirmation: far below a loan's payoff, so none closes a loan


def main() -> dict:
    with EphemeralNode(accounts=FIRST_BORROWER + LOANS) as node:
        w3 = node.w3
        admin, op_key, oracle_key, pauser, signer = (dev_account(i) for i in range(5))
        stack = deploy_stack(w3, admin.address, operator=op_key.address, oracle=oracle_key.address,
                             pauser=pauser.address, score_signer=signer.address)
        operator = ChainClient(w3, op_key, stack.errors, poll_interval=0.005)
        oracle = ChainClient(w3, oracle_key, stack.errors, poll_interval=0.005)
        loan_ids = active_book(w3, stack, operator, oracle, signer, LOANS)
        counter = iter(range(10**9))

        def confirmation():
            n = next(counter)
            return (loan_ids[n % LOANS], keccak(text=f"repay-{n}"), AMOUNT, w3.eth.get_block("latest").timestamp)

        # Payment times are read up front: the timing covers pushing, not building the test data.
        singles = [confirmation() for _ in range(PER_MODE)]
        started = time.perf_counter()
        single_receipts = [oracle.transact(stack.book.functions.confirmRepayment(*c)) for c in singles]
        single_s = time.perf_counter() - started

        batches = [[confirmation() for _ in range(50)] for _ in range(PER_MODE // 50)]
        started = time.perf_counter()
        batch_receipts = [oracle.transact(stack.book.functions.confirmRepayments(b)) for b in batches]
        batch_s = time.perf_counter() - started
        # Every confirmation credited, none skipped: the batched figure is not flattered by skips.
        credited = sum(len(stack.book.events.RepaymentApplied().process_receipt(r, errors=DISCARD))
                       for r in single_receipts + batch_receipts)
        assert credited == 2 * PER_MODE, credited

        gas_per_item = {"1": single_receipts[-1]["gasUsed"]}
        for size in (10, 50):
            receipt = oracle.transact(stack.book.functions.confirmRepayments([confirmation() for _ in range(size)]))
            gas_per_item[str(size)] = receipt["gasUsed"] // size

    results = {
        "confirmations_per_mode": PER_MODE,
        "single_per_s": round(PER_MODE / single_s, 1),
        "batched_per_s": round(PER_MODE / batch_s, 1),
        "gas_per_confirmation": gas_per_item,
    }
    results["batched_to_single_ratio"] = round(results["batched_per_s"] / results["single_per_s"], 1)
    table = Table(title=f"Repayment confirmations pushed on one anvil ({PER_MODE} each way)")
    table.add_column("mode")
    table.add_column("confirmations/s", justify="right")
    table.add_column("gas per confirmation", justify="right")
    table.add_row("one per transaction", f"{results['single_per_s']:,}", f"{gas_per_item['1']:,}")
    table.add_row("batch of 10", "", f"{gas_per_item['10']:,}")
    table.add_row("batch of 50", f"{results['batched_per_s']:,}", f"{gas_per_item['50']:,}")
    Console().print(table)
    print(f"batched / one per transaction: {results['batched_to_single_ratio']}x "
          f"({credited} confirmations credited, none skipped)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return results


if __name__ == "__main__":
    main()

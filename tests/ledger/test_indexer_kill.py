"""The indexer as a real process, SIGKILLed at random moments while it works through many small block
ranges and restarted each time: in the end the store holds exactly the chain's logs, none missing,
none twice, and the read model agrees with the contracts."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from eth_account import Account
from sqlalchemy import func, select
from web3 import Web3

from ledger import manifest as manifests
from ledger import verify
from ledger.chain import ChainClient
from ledger.store import open_store
from ledger.store.models.chain import ChainEvent, IndexerCursor

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400
KILLS = 5
INDEXER = "import sys; from ledger.cli import main; sys.argv[0] = 'loanledger'; main()"


def register_many(client: ChainClient, stack, count: int, expires: int) -> None:
    """`count` borrowers registered, one transaction (so one block, one event) each."""
    registry = stack.registry.functions
    hashes = [client.submit(registry.registerBorrower(Account.create().address, os.urandom(32), expires), gas=200_000)
              for _ in range(count)]
    client.wait_many(hashes)


def cursor_block(sessions) -> int | None:
    with sessions() as session:
        cursor = session.get(IndexerCursor, "default")
        return cursor.block_number if cursor and cursor.block_hash else None


def start_indexer(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-c", INDEXER, "index", "--follow", "--batch-size", "3",
                                 "--poll-interval", "0.1"], cwd=ROOT, env=env, stdout=out, stderr=out)


def wait_for(condition, proc: subprocess.Popen, log: Path, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the indexer exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.01)


def test_sigkilled_indexer_resumes_without_losing_or_doubling_an_event(w3, stack, keys, driver, db_url, tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    operator = ChainClient(w3, keys["operator"], stack.errors)
    expires = driver.now + 365 * DAY
    env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "home"), "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
           "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "local.json")),
           "LOANLEDGER_DB_URL": db_url}
    sessions = open_store(db_url)
    log = tmp_path / "indexer.log"

    # Loans give the read model something to rebuild; registrations give many blocks with events.
    loans = []
    for report_id, name in enumerate(("alice", "bob"), start=1):
        driver.register(keys[name])
        driver.score(keys[name], report_id=report_id)
        loans.append(driver.request(keys[name]))
        driver.approve(loans[-1])
        driver.disburse(loans[-1], 120_000, f"payout-{name}".encode())
    register_many(operator, stack, 120, expires)

    kills_behind = 0  # kills that found the indexer with blocks still to do
    for round_ in range(KILLS):
        before = cursor_block(sessions) or -1
        proc = start_indexer(env, log)
        try:
            # Let it commit at least one range, then kill it somewhere in the next ones.
            wait_for(lambda: (cursor_block(sessions) or -1) > before, proc, log, what="the indexer's first range")
            time.sleep(rng.uniform(0, 0.15))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        kills_behind += cursor_block(sessions) < w3.eth.block_number
        # The chain keeps moving while the indexer is down.
        register_many(operator, stack, rng.randint(20, 60), expires)
        driver.repay(loans[round_ % 2], 1_000 + round_, f"repay-{round_}".encode())

    assert kills_behind >= 2, f"the indexer was killed mid-work only {kills_behind} times (seed {seed})"
    proc = start_indexer(env, log)
    head = w3.eth.block_number
    try:
        wait_for(lambda: cursor_block(sessions) == head, proc, log, what="the final catch-up")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, log.read_text()[-3000:]

    addresses = [Web3.to_checksum_address(c.address) for c in stack.manifest.contracts.values()]
    on_chain = [(raw["blockNumber"], raw["transactionHash"].to_0x_hex(), raw["logIndex"]) for raw in w3.eth.get_logs(
        {"fromBlock": stack.manifest.start_block, "toBlock": head, "address": addresses})]
    with sessions() as session:
        stored = session.execute(select(ChainEvent.block_number, ChainEvent.tx_hash, ChainEvent.log_index)).all()
        assert session.scalar(select(func.count()).select_from(ChainEvent)) == len(stored)
    stored = [tuple(row) for row in stored]
    assert len(on_chain) > 250 and len({b for b, _, _ in on_chain}) > 200  # many events over many blocks
    assert len(set(stored)) == len(stored), f"an event stored twice (seed {seed})"
    assert set(on_chain) - set(stored) == set(), f"events missing (seed {seed})"
    assert set(stored) - set(on_chain) == set(), f"events not on the chain (seed {seed})"
    assert len(stored) == len(on_chain)

    with sessions() as session:
        index = verify.index_vs_chain(w3, stack.manifest, session)
        state = verify.recomputed_state(w3, stack.manifest, session)
    assert index.ok, index.details[:5]
    assert state.ok, state.details[:5]
    sessions.kw["bind"].dispose()

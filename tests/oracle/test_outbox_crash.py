"""Crash safety of the outbox worker as a real process (`loanledger oracle run --no-webhooks`).

The worker is killed with SIGKILL at random moments, and made to exit on the spot right before a send
and right after a mined send (before the rows are marked), then restarted each time. At the end every
confirmation must be credited exactly once on-chain and every row done. Then the node goes away for a
while behind a proxy and comes back: the backlog drains.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ledger import manifest as manifests
from ledger.store import open_store
from oracle.outbox import FAULT_ENV, Outbox
from oracle.payments.webhook import Confirmation, payment_ref

LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))
PROVIDER = "mockpay"
BORROWERS = ("alice", "bob", "carol", "dave")


def confirmation(kind: str, loan_id: int, reference: str, amount: int, paid_at: int) -> Confirmation:
    return Confirmation(kind=kind, loan_id=loan_id, reference=reference, payment_ref=payment_ref(PROVIDER, reference),
                        amount=amount, currency="CNY", paid_at=paid_at, provider=PROVIDER, event_id=f"evt-{reference}")


@pytest.fixture
def oracle_env(w3, stack, keys, tmp_path) -> dict[str, str]:
    return {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "home"),
            "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
            "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "local.json")),
            "LOANLEDGER_DB_URL": f"sqlite:///{tmp_path / 'oracle.db'}",
            "LOANLEDGER_ORACLE_KEY": keys["oracle"].key.hex(), "LOANLEDGER_TX_TIMEOUT": "10"}


@pytest.fixture
def outbox(oracle_env):
    sessions = open_store(oracle_env["LOANLEDGER_DB_URL"])
    yield Outbox(sessions)
    sessions.kw["bind"].dispose()


def start_worker(env: dict[str, str], log: Path, *args: str, fault: str | None = None) -> subprocess.Popen:
    env = {**env, **({FAULT_ENV: fault} if fault else {})}
    with log.open("ab") as out:
        # Only the outbox worker: the crashes under test are its own.
        return subprocess.Popen([LOANLEDGER, "oracle", "run", "--no-webhooks", "--no-risk", "--no-scores",
                                 "--batch-size", "4", "--interval",
                                 "0.05", "--max-backoff", "0.5", "--log-level", "warning", *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT)


def approved_loans(driver, keys) -> list[int]:
    return [driver.approved_loan(keys[name], report_id=report_id)
            for report_id, name in enumerate(BORROWERS, start=1)]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def credited_on_chain(stack, from_block: int) -> tuple[list, list]:
    book = stack.book
    return (book.events.LoanDisbursed.get_logs(from_block=from_block),
            book.events.RepaymentApplied.get_logs(from_block=from_block))


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def test_killed_at_random_and_at_the_worst_moments_every_confirmation_is_credited_once(
        w3, stack, driver, keys, oracle_env, outbox, tmp_path):
    start_block = w3.eth.block_number
    loans = approved_loans(driver, keys)
    now = driver.now
    expected: dict[int, int] = dict.fromkeys(loans, 0)
    for loan_id in loans:
        outbox.put(confirmation("disbursement", loan_id, f"PAY-{loan_id}", 120_000, now))
    for n in range(100):
        for loan_id in loans:
            amount = 50 + 7 * n + loan_id
            outbox.put(confirmation("repayment", loan_id, f"COL-{loan_id}-{n}", amount, now))
            expected[loan_id] += amount
    total = len(outbox.items())
    assert total == 404

    def working() -> bool:  # rows left in `sending` by the last kill don't count: only new progress does
        return outbox.counts().get("done", 0) > done_before

    log, rng = tmp_path / "worker.log", random.Random(20261125)
    # SIGKILLs at random moments (a few during startup, most mid-work), and between them exits forced at
    # the two dangerous points: right before a send, right after a mined send (the Nth time reached).
    runs: list[str | None] = ["startup", None, "after_send:1", None, None, "before_send:2", None, "startup",
                              "after_send:2", None, None, "after_send:1", None, "before_send:1", None, "startup",
                              "after_send:3", None, None]
    kills = forced = 0
    for run in runs:
        done_before = outbox.counts().get("done", 0)
        assert done_before < total, "the backlog ran out before the kills did: store more confirmations"
        if run in (None, "startup"):
            process = start_worker(oracle_env, log)
            if run == "startup":
                time.sleep(rng.uniform(0.1, 1.4))
            else:
                wait_until(working, 20, "the worker to start working")
                time.sleep(rng.uniform(0.0, 0.4))
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=10) == -signal.SIGKILL
            kills += 1
        else:
            process = start_worker(oracle_env, log, fault=run)
            code = process.wait(timeout=60)
            assert code == 70, f"the worker did not exit at {run} (code {code}); see {log}"
            forced += 1
    assert (kills, forced) == (13, 6)

    final = start_worker(oracle_env, log)
    try:
        wait_until(lambda: outbox.counts() == {"done": total}, 60, "the backlog to drain")
    finally:
        assert stop(final) == 0, log.read_text()[-3000:]

    disbursed, applied = credited_on_chain(stack, start_block)
    assert sorted(e["args"]["loanId"] for e in disbursed) == sorted(loans)
    refs = [bytes(e["args"]["paymentRef"]) for e in applied]
    assert len(refs) == len(set(refs)) == total - len(loans)  # every repayment once, none twice
    assert set(refs) == {payment_ref(PROVIDER, i.reference) for i in outbox.items() if i.kind == "repayment"}
    for loan_id in loans:
        progress = stack.book.functions.progressOf(loan_id).call()
        assert sum(progress[2:6]) == expected[loan_id]
    outcomes = {i.outcome for i in outbox.items()}
    assert outcomes <= {"credited", "already_credited"}
    # A kill after a mined send leaves rows the next worker finds credited: the guard did its work.
    assert "already_credited" in outcomes


def test_node_down_for_a_while_then_back_the_backlog_drains(w3, stack, driver, keys, oracle_env, outbox, tmp_path,
                                                             node_proxy):
    loan_id = driver.active_loan(keys["alice"])
    now = driver.now
    for n in range(30):
        outbox.put(confirmation("repayment", loan_id, f"COL-{n}", 100 + n, now))
    node_proxy.down()
    log = tmp_path / "worker.log"
    worker = start_worker({**oracle_env, "LOANLEDGER_NODE_URL": node_proxy.url}, log)
    try:
        time.sleep(3.0)  # started with the node away, and stays up through failed rounds
        assert worker.poll() is None, log.read_text()
        assert outbox.counts() == {"pending": 30}
        tried = [i.last_error for i in outbox.items() if i.last_error]  # the first batch, claimed and released
        assert tried and all("NodeUnavailable" in error for error in tried)
        assert {i.attempts for i in outbox.items()} == {0}  # the node's failure is not the items' attempt
        assert sum(stack.book.functions.progressOf(loan_id).call()[2:6]) == 0

        node_proxy.up()
        wait_until(lambda: outbox.counts() == {"done": 30}, 30, "the backlog to drain")
        # Down again mid-life, with new work arriving: it waits, then drains.
        node_proxy.down()
        for n in range(30, 40):
            outbox.put(confirmation("repayment", loan_id, f"COL-{n}", 100 + n, now))
        time.sleep(1.5)
        assert outbox.counts() == {"done": 30, "pending": 10}
        node_proxy.up()
        wait_until(lambda: outbox.counts() == {"done": 40}, 30, "the second backlog to drain")
    finally:
        assert stop(worker) == 0, log.read_text()[-3000:]
    progress = stack.book.functions.progressOf(loan_id).call()
    assert sum(progress[2:6]) == sum(100 + n for n in range(40))


def test_a_worker_killed_between_sending_a_reversal_and_marking_it_does_not_reverse_twice(
        w3, stack, driver, keys, oracle_env, outbox, tmp_path):
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-crash-reversal")
    now = driver.now
    outbox.put(confirmation("repayment", loan_id, "COL-R", 45_000, now))
    outbox.put(replace(confirmation("reversal", loan_id, "REV-R", 45_000, now), reverses="COL-R"))
    log = tmp_path / "worker.log"
    # The repayment's batch is the first send, the reversal's own transaction the second: exit right after it.
    crashed = start_worker(oracle_env, log, fault="after_send:2")
    assert crashed.wait(timeout=60) == 70, log.read_text()[-3000:]
    assert {i.reference: i.status for i in outbox.items()} == {"COL-R": "done", "REV-R": "sending"}
    reversed_events = stack.book.events.RepaymentReversed.get_logs(from_block=0, argument_filters={"loanId": loan_id})
    assert len(reversed_events) == 1  # mined before the crash

    worker = start_worker(oracle_env, log)
    try:
        wait_until(lambda: outbox.counts() == {"done": 2}, 30, "the reversal to be settled")
    finally:
        assert stop(worker) == 0, log.read_text()[-3000:]
    assert {i.reference: i.outcome for i in outbox.items()} == {"COL-R": "credited", "REV-R": "already_credited"}
    reversed_events = stack.book.events.RepaymentReversed.get_logs(from_block=0, argument_filters={"loanId": loan_id})
    assert len(reversed_events) == 1
    assert sum(stack.book.functions.progressOf(loan_id).call()[2:6]) == 0  # what it paid is owed again, once

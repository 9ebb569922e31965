"""The action log: the chain verifies; each kind of tampering is named by its seq; anchors catch a
consistent rewrite; concurrent appenders (threads and processes) leave one gapless chain; the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from ledger import manifest as manifests
from ledger.action_log import GENESIS, ActionLog, ActionLogError, canonical_details
from ledger.chain import ChainClient
from ledger.cli import app
from ledger.errors import ContractRevert
from ledger.store import open_store
from ledger.store.models.action_log import ActionLogAnchorRecord, ActionLogEntry
from ledger.verify import verify_action_log

ROOT = Path(__file__).resolve().parents[2]
LOAN = "0x" + "ab" * 20


def fill(actions: ActionLog, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        actions.append("operator:ops-1", "loan.approve", f"req-{i}", {"loan_id": i, "borrower": LOAN})


@pytest.fixture
def actions(sessions) -> ActionLog:
    return ActionLog(sessions)


@pytest.fixture
def anchor_client(w3, keys, stack) -> ChainClient:
    """The oracle's: the anchor contract admits ORACLE_ROLE."""
    return ChainClient(w3, keys["oracle"], stack.errors)


def rows(sessions) -> list[ActionLogEntry]:
    with sessions() as session:
        return list(session.scalars(select(ActionLogEntry).order_by(ActionLogEntry.seq)))


# ------------------------------------------------------------------ appending

def test_appended_entries_chain_and_verify(sessions, actions):
    clock = iter(range(1_700_000_000_000, 1_700_000_000_100))
    actions = ActionLog(sessions, clock=lambda: next(clock))
    first = actions.append("api", "borrower.register", "req-1", {"z": [1, {"b": True, "a": None}], "a": "x"})
    fill(actions, 4, start=2)

    assert first.seq == 1 and first.prev_hash == GENESIS
    assert first.details == '{"a":"x","z":[1,{"a":null,"b":true}]}'  # sorted keys, no spaces
    # The documented encoding, computed here independently of ledger.action_log.
    expected = keccak(encode(["bytes32", "uint64", "uint64", "bytes32", "bytes32", "bytes32", "bytes32", "bytes32"],
                             [keccak(b"LoanLedger.ActionLog.v1"), 1, 1_700_000_000_000, keccak(b"api"),
                              keccak(b"borrower.register"), keccak(b"req-1"), keccak(first.details.encode()),
                              b"\0" * 32]))
    assert first.hash == "0x" + expected.hex()

    stored = rows(sessions)
    assert [r.seq for r in stored] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in zip(stored, stored[1:]))
    assert actions.head().hash == stored[-1].hash and actions.head().data == {"loan_id": 5, "borrower": LOAN}

    result = verify_action_log(sessions)
    assert result.ok and result.details == [] and result.checked == 5 and result.first_bad_seq is None


def test_empty_log_verifies(sessions, actions):
    assert actions.head() is None
    result = verify_action_log(sessions)
    assert result.ok and result.checked == 0


@pytest.mark.parametrize(("args", "message"), [
    (("", "loan.approve", "r", {}), "actor must be a non-empty string"),
    (("api", "x" * 65, "r", {}), "at most 64"),
    (("api", "kyc.verify", "r", {"phone": "redacted"}), "personal data"),
    (("api", "kyc.verify", "r", {"note": ["13800138000"]}), "looks like an ID, phone or card"),
    (("api", "kyc.verify", "r", {"ref": "6222 0210 0112 3456 789"}), "looks like an ID, phone or card"),
    (("api", "kyc.verify", "r", {"who": "11010519491231002X"}), "looks like an ID, phone or card"),
    (("api", "loan.repay", "r", {"amount": 10.5}), "floats are not allowed"),
    (("api", "loan.repay", "r", {1: "x"}), "keys must be strings"),
    (("api", "loan.repay", "r", ["not", "a", "mapping"]), "must be a JSON object"),
])
def test_bad_entries_are_refused_and_change_nothing(sessions, actions, args, message):
    fill(actions, 1)
    with pytest.raises(ActionLogError, match=message):
        actions.append(*args)
    assert [r.seq for r in rows(sessions)] == [1]


def test_ordinary_details_pass_the_pii_guard():
    details = {"tx": "0x" + "12" * 32, "borrower": LOAN, "amount": 10**30, "reference": "repay-2024-0001",
               "loan_id": 13800138000}  # an int is an amount or an id, never checked as a phone
    assert json.loads(canonical_details(details)) == details


# ------------------------------------------------------------------ tampering

def test_edited_entry_is_named(sessions, actions):
    fill(actions, 6)
    with sessions.begin() as session:
        session.execute(update(ActionLogEntry).where(ActionLogEntry.seq == 3)
                        .values(details='{"borrower":"%s","loan_id":999}' % LOAN))
    result = verify_action_log(sessions)
    assert not result.ok and result.first_bad_seq == 3
    assert result.details == [f"seq 3: edited: its fields do not hash to its stored hash {rows(sessions)[2].hash}"]
    assert result.checked == 2


def test_edited_and_rehashed_entry_breaks_the_link_to_the_next(sessions, actions):
    from ledger.action_log import entry_hash

    fill(actions, 6)
    with sessions.begin() as session:
        row = session.get(ActionLogEntry, 3)
        row.actor = "someone-else"
        row.hash = entry_hash(row.seq, row.at, row.actor, row.action, row.request_id, row.details, row.prev_hash)
    result = verify_action_log(sessions)
    assert not result.ok and result.first_bad_seq == 4
    assert "seq 4: prev_hash" in result.details[0] and "is not seq 3's hash" in result.details[0]


def test_removed_entry_is_named(sessions, actions):
    fill(actions, 6)
    with sessions.begin() as session:
        session.execute(delete(ActionLogEntry).where(ActionLogEntry.seq == 4))
    result = verify_action_log(sessions)
    assert not result.ok and result.first_bad_seq == 4
    assert result.details == ["seq 4: missing: the log goes from seq 3 to seq 5 (entries removed)"]


def test_removed_and_renumbered_entries_are_named(sessions, actions):
    fill(actions, 6)
    with sessions.begin() as session:
        session.execute(delete(ActionLogEntry).where(ActionLogEntry.seq == 2))
        for seq in (3, 4, 5, 6):
            session.execute(update(ActionLogEntry).where(ActionLogEntry.seq == seq).values(seq=seq - 1))
    result = verify_action_log(sessions)
    assert not result.ok and result.first_bad_seq == 2
    assert result.details[0].startswith("seq 2: out of order: this entry was written as seq 3")


def test_reordered_entries_are_named(sessions, actions):
    fill(actions, 6)
    with sessions.begin() as session:  # swap seq 2 and 5 through a free seq
        for old, new in ((2, 1000), (5, 2), (1000, 5)):
            session.execute(update(ActionLogEntry).where(ActionLogEntry.seq == old).values(seq=new))
    result = verify_action_log(sessions)
    assert not result.ok and result.first_bad_seq == 2
    assert result.details == ["seq 2: out of order: this entry was written as seq 5 "
                              "(entries reordered, or removed and renumbered)"]


# ------------------------------------------------------------------ anchoring

def test_anchor_writes_the_head_once_per_new_entries(w3, stack, sessions, actions, anchor_client):
    assert actions.anchor(anchor_client, stack.anchor) is None  # empty log: nothing to anchor
    fill(actions, 3)
    first = actions.anchor(anchor_client, stack.anchor)
    assert first is not None and first.seq == 3 and first.head == actions.head().hash
    assert actions.anchor(anchor_client, stack.anchor) is None  # nothing new
    fill(actions, 2, start=4)
    second = actions.anchor(anchor_client, stack.anchor)
    assert second.seq == 5

    anchor = stack.anchor.functions
    assert anchor.anchorCount().call() == 2
    assert [anchor.anchorAt(i).call()[:2] for i in (1, 2)] == [
        (bytes.fromhex(first.head[2:]), 3), (bytes.fromhex(second.head[2:]), 5)]
    with sessions() as session:
        records = session.scalars(select(ActionLogAnchorRecord).order_by(ActionLogAnchorRecord.seq)).all()
        assert [(r.seq, r.head, r.tx_hash, r.block_number) for r in records] == [
            (a.seq, a.head, a.tx_hash, a.block_number) for a in (first, second)]
    assert w3.eth.get_transaction(first.tx_hash)["to"] == stack.anchor.address

    result = verify_action_log(sessions, stack.anchor)
    assert result.ok, result.details
    assert result.anchors == 2 and result.checked == 5


def test_anchor_needs_the_oracle_role_and_records_nothing_without_it(w3, keys, stack, sessions, actions):
    fill(actions, 2)
    with pytest.raises(ContractRevert) as raised:  # not an operator's either, since the oracle anchors
        actions.anchor(ChainClient(w3, keys["operator"], stack.errors), stack.anchor)
    assert raised.value.name == "AccessControlUnauthorizedAccount"
    with pytest.raises(ContractRevert) as raised:
        actions.anchor(ChainClient(w3, keys["alice"], stack.errors), stack.anchor)
    assert raised.value.name == "AccessControlUnauthorizedAccount"
    assert actions.last_anchor() is None and stack.anchor.functions.anchorCount().call() == 0


def test_consistent_rewrite_after_anchoring_fails_against_the_anchors(sessions, stack, actions, anchor_client):
    fill(actions, 5)
    actions.anchor(anchor_client, stack.anchor)
    fill(actions, 3, start=6)
    actions.anchor(anchor_client, stack.anchor)

    # Rewrite the whole log with entry 2 changed, every hash recomputed: the chain alone is consistent.
    original = rows(sessions)
    with sessions.begin() as session:
        session.execute(delete(ActionLogEntry))
    clock = iter(r.at for r in original)
    forger = ActionLog(sessions, clock=lambda: next(clock))
    for r in original:
        details = r.details.replace('"loan_id":2', '"loan_id":20') if r.seq == 2 else r.details
        forger.append(r.actor, r.action, r.request_id, json.loads(details))
    assert rows(sessions)[1].details != original[1].details
    assert verify_action_log(sessions).ok  # without the anchors the forgery is not detectable

    result = verify_action_log(sessions, stack.anchor)
    assert not result.ok and result.anchors == 2 and result.first_bad_seq == 5
    assert len(result.details) == 2
    assert result.details[0].startswith("seq 5: hash ") and "anchor #1's head" in result.details[0]
    assert "the log up to seq 5 was rewritten" in result.details[0]


def test_entries_cut_off_the_end_fail_against_the_anchor(sessions, stack, actions, anchor_client):
    fill(actions, 4)
    actions.anchor(anchor_client, stack.anchor)
    with sessions.begin() as session:
        session.execute(delete(ActionLogEntry).where(ActionLogEntry.seq >= 3))
    assert verify_action_log(sessions).ok  # a shorter chain is still a chain
    result = verify_action_log(sessions, stack.anchor)
    assert not result.ok and result.first_bad_seq == 4
    assert "covers 4 entries but the log has no seq 4" in result.details[0]


# ------------------------------------------------------------------ concurrency

def test_threads_appending_at_once_leave_a_gapless_chain(sessions, actions):
    threads, per_thread = 8, 50
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                actions.append(f"worker-{n}", "test.append", f"req-{n}-{i}", {"i": i})
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    stored = rows(sessions)
    assert [r.seq for r in stored] == list(range(1, threads * per_thread + 1))
    assert len({r.request_id for r in stored}) == threads * per_thread
    result = verify_action_log(sessions)
    assert result.ok and result.checked == threads * per_thread


_APPENDER = """
import sys, time
from pathlib import Path
from ledger.action_log import ActionLog
from ledger.store import open_store
url, name, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
actions = ActionLog(open_store(url))
(go.parent / (name + ".ready")).touch()
while not go.exists():
    time.sleep(0.01)
for i in range(count):
    actions.append(name, "test.append", f"{name}-{i}", {"i": i})
    time.sleep(0.001)  # let the other process in: the test is about interleaved appends
"""


def test_two_processes_appending_at_once_leave_a_gapless_chain(db_url, sessions, tmp_path):
    count, go = 150, tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, db_url, name, str(count), str(go)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for name in ("proc-a", "proc-b")]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"{n}.ready").exists() for n in ("proc-a", "proc-b")):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.stderr.read() for p in procs]
        time.sleep(0.02)
    go.touch()  # both start appending at the same moment
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()

    stored = rows(sessions)
    assert [r.seq for r in stored] == list(range(1, 2 * count + 1))
    actors = [r.actor for r in stored]
    assert actors.count("proc-a") == actors.count("proc-b") == count
    switches = sum(a != b for a, b in zip(actors, actors[1:]))
    assert switches > 1, "the two processes did not actually append at the same time"
    assert verify_action_log(sessions).ok


# ------------------------------------------------------------------ CLI

runner = CliRunner()


@pytest.fixture
def cli_env(w3, stack, keys, tmp_path) -> dict[str, str]:
    return {"LOANLEDGER_HOME": str(tmp_path / "home"), "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
            "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "local.json")),
            "LOANLEDGER_DB_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "LOANLEDGER_ORACLE_KEY": keys["oracle"].key.hex()}


def test_cli_anchor_and_verify_log(cli_env, stack):
    sessions = open_store(cli_env["LOANLEDGER_DB_URL"])
    actions = ActionLog(sessions)
    fill(actions, 4)

    anchored = runner.invoke(app, ["log", "anchor", "--json"], env=cli_env)
    assert anchored.exit_code == 0, anchored.output
    printed = json.loads(anchored.stdout)
    assert printed["anchored"] is True and printed["seq"] == 4 and printed["head"] == actions.head().hash
    assert stack.anchor.functions.anchorCount().call() == 1
    again = runner.invoke(app, ["log", "anchor", "--json"], env=cli_env)
    assert again.exit_code == 0 and json.loads(again.stdout) == {"anchored": False}

    ok = runner.invoke(app, ["verify", "log", "--json"], env=cli_env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout) == {"check": "log", "ok": True, "checked": 4, "details": [], "first_bad_seq": None,
                                     "anchors": 1}
    text = runner.invoke(app, ["verify", "log"], env=cli_env)
    assert text.exit_code == 0 and "OK log: 4 checked" in text.stdout

    with sessions.begin() as session:
        session.execute(update(ActionLogEntry).where(ActionLogEntry.seq == 2).values(request_id="req-forged"))
    bad = runner.invoke(app, ["verify", "log", "--json"], env=cli_env)
    assert bad.exit_code == 1
    printed = json.loads(bad.stdout)
    assert printed["ok"] is False and printed["first_bad_seq"] == 2
    assert printed["details"][0].startswith("seq 2: edited")
    text = runner.invoke(app, ["verify", "log", "--no-anchors"], env=cli_env)
    assert text.exit_code == 1 and "FAILED log" in text.stdout and "first bad seq: 2" in text.stdout
    sessions.kw["bind"].dispose()


def test_cli_anchor_without_a_signer_is_one_line_exit_1(cli_env):
    env = {**cli_env, "LOANLEDGER_ORACLE_KEY": ""}
    result = runner.invoke(app, ["log", "anchor"], env=env)
    assert result.exit_code == 1
    assert "no signer 'oracle'" in " ".join(result.stderr.split()) and "Traceback" not in result.output


def test_cli_verify_log_without_node_is_one_line_exit_1(cli_env):
    from ledger.node import free_port

    down = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["verify", "log"], env={**cli_env, "LOANLEDGER_NODE_URL": down})
    assert result.exit_code == 1 and "no Ethereum node answers" in " ".join(result.stderr.split())
    offline = runner.invoke(app, ["verify", "log", "--no-anchors", "--json"],
                            env={**cli_env, "LOANLEDGER_NODE_URL": down})
    assert offline.exit_code == 0 and json.loads(offline.stdout)["anchors"] == 0

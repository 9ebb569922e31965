"""`loanledger node start|stop|status` as real processes: the ledger survives a stop and a start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web3 import Web3

from ledger import four_eyes
from ledger import manifest as manifests
from ledger.contracts import bind
from ledger.deploy import deploy_stack
from ledger.node import CHAIN_ID, dev_account, free_port
from ledger.products import DayCount, EarlyRepayment, Frequency, Product, product_name
from ledger.typed_data import Amortization

LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))


@pytest.fixture
def node_env(tmp_path):
    port = free_port()
    env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "home"), "LOANLEDGER_NODE_PORT": str(port),
           "LOANLEDGER_NODE_URL": f"http://127.0.0.1:{port}"}
    env.pop("LOANLEDGER_CONFIG", None)
    yield env
    # Whatever a test did, no node outlives it.
    subprocess.run([LOANLEDGER, "node", "stop"], env=env, capture_output=True, timeout=60)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LOANLEDGER, *args], env=env, capture_output=True, text=True, timeout=120)


def status(env: dict[str, str]) -> dict:
    result = cli(env, "node", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def connect(env: dict[str, str]) -> Web3:
    w3 = Web3(Web3.HTTPProvider(env["LOANLEDGER_NODE_URL"]))
    assert w3.is_connected()
    return w3


def test_the_ledger_survives_stop_and_start(node_env, tmp_path):
    home = Path(node_env["LOANLEDGER_HOME"])
    before = status(node_env)
    assert before["running"] is False and before["pid"] is None and before["state_bytes"] == 0

    started = cli(node_env, "node", "start")
    assert started.returncode == 0, started.stderr
    assert "started" in started.stdout
    running = status(node_env)
    assert running["running"] is True and running["chain_id"] == CHAIN_ID and running["block"] == 0
    assert running["url"] == node_env["LOANLEDGER_NODE_URL"]
    assert (home / "chain" / "anvil.pid").read_text().strip() == str(running["pid"])

    again = cli(node_env, "node", "start")
    assert again.returncode == 0 and "already running" in again.stdout
    assert status(node_env)["pid"] == running["pid"]

    # Contracts, a catalogue setting changed by a transaction, and a plain transfer.
    w3 = connect(node_env)
    admin, operator, oracle, pauser, signer = (dev_account(i).address for i in range(5))
    operator2 = dev_account(29).address
    stack = deploy_stack(w3, admin, operator=operator, oracle=oracle, pauser=pauser, score_signer=signer,
                         second_operator=operator2, admin_renounces=False)  # kept: the admin changes a setting below
    changed = w3.eth.wait_for_transaction_receipt(stack.catalog.functions.setCostCap(2_000).transact({"from": admin}))
    product = Product(name=product_name("2 months"), currency=b"CNY", min_principal=1_000, max_principal=1_000,
                      min_installments=2, max_installments=2, frequency=Frequency.FIXED_INTERVAL,
                      day_count=DayCount.ACTUAL_365_FIXED, interval=30 * 86_400, annual_rate_bps=1_200,
                      amortization=Amortization.EQUAL_PRINCIPAL, grace_period=0, late_fee_bps=0, penalty_rate_bps=0,
                      default_after=90 * 86_400, service_fee_bps=0, early_repayment=EarlyRepayment.REDUCE_INSTALLMENTS,
                      auto_approve=False, auto_approve_max_principal=0)
    four_eyes.carry_out(w3, stack.four_eyes, stack.catalog.functions.createProduct(product.as_tuple(stack.catalog)),
                        operator, operator2)
    payee = dev_account(20).address
    balance = w3.eth.get_balance(payee)
    transfer = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": admin, "to": payee, "value": 12_345}))
    head = w3.eth.get_block("latest")
    code = {name: w3.eth.get_code(Web3.to_checksum_address(c.address)) for name, c in stack.manifest.contracts.items()}

    stopped = cli(node_env, "node", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    down = status(node_env)
    assert down["running"] is False and down["state_bytes"] > 0
    assert not (home / "chain" / "anvil.pid").exists()
    assert not Web3(Web3.HTTPProvider(node_env["LOANLEDGER_NODE_URL"])).is_connected()
    assert "not running" in cli(node_env, "node", "stop").stdout

    assert cli(node_env, "node", "start").returncode == 0
    w3 = connect(node_env)
    assert w3.eth.block_number == head.number
    assert w3.eth.get_block(head.number).hash == head.hash
    for name, c in stack.manifest.contracts.items():
        assert w3.eth.get_code(Web3.to_checksum_address(c.address)) == code[name]
    catalog = bind(w3, stack.manifest).catalog
    assert catalog.functions.costCapBps().call() == 2_000
    assert w3.eth.get_balance(payee) == balance + 12_345
    assert w3.eth.get_transaction_receipt(transfer.transactionHash).blockNumber == transfer.blockNumber
    assert len(catalog.events.CostCapChanged().get_logs(from_block=changed.blockNumber)) == 1
    # The node keeps working on top of the restored state (nonces included).
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": admin, "to": payee, "value": 1}))
    assert w3.eth.block_number == head.number + 1

    # And the CLI commands read the restored deployment.
    manifest_path = manifests.save(stack.manifest, tmp_path / "local.json")
    quoted = cli({**node_env, "LOANLEDGER_MANIFEST": str(manifest_path)}, "quote", "--product", "1", "--principal",
                 "1000", "--installments", "2", "--json")
    assert quoted.returncode == 0, quoted.stderr
    assert [i["principal"] for i in json.loads(quoted.stdout)["installments"]] == [500, 500]


def test_a_stale_pid_file_is_not_a_running_node(node_env):
    chain = Path(node_env["LOANLEDGER_HOME"]) / "chain"
    chain.mkdir(parents=True)
    # A live process that is not anvil: pids are reused, so the file alone proves nothing.
    (chain / "anvil.pid").write_text(str(os.getpid()))
    assert status(node_env)["running"] is False
    assert "not running" in cli(node_env, "node", "stop").stdout
    started = cli(node_env, "node", "start")
    assert started.returncode == 0 and "started" in started.stdout, started.stderr
    assert status(node_env)["pid"] != os.getpid()


def test_a_taken_port_is_a_clear_error(node_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(node_env["LOANLEDGER_NODE_PORT"])))
        taken.listen()
        result = cli(node_env, "node", "start")
    assert result.returncode == 1
    assert f"port {node_env['LOANLEDGER_NODE_PORT']} is taken" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert status(node_env)["running"] is False


def test_a_killed_node_keeps_what_its_last_periodic_save_held(node_env):
    """SIGKILL skips the dump on exit; --state-interval is what bounds the loss."""
    assert cli(node_env, "node", "start").returncode == 0
    w3 = connect(node_env)
    payee = dev_account(21).address
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": dev_account(0).address, "to": payee, "value": 777}))
    state = Path(node_env["LOANLEDGER_HOME"]) / "chain" / "state.json"
    saved_after = time.time_ns()
    # Two saves after the transaction: the first may have started before it.
    deadline = time.monotonic() + 120  # a guard against a node that never saves, not a speed check
    for _ in range(2):
        seen = state.stat().st_mtime_ns if state.exists() else 0
        while not state.exists() or state.stat().st_mtime_ns <= max(seen, saved_after):
            assert time.monotonic() < deadline, "anvil never saved its state (--state-interval missing?)"
            time.sleep(0.2)
    pid = status(node_env)["pid"]
    os.kill(pid, signal.SIGKILL)
    while status(node_env)["running"]:
        time.sleep(0.05)

    restarted = cli(node_env, "node", "start")
    assert restarted.returncode == 0, restarted.stderr
    w3 = connect(node_env)
    assert w3.eth.block_number >= receipt.blockNumber
    assert w3.eth.get_balance(payee) == 10_000 * 10**18 + 777


def test_a_truncated_state_file_is_refused_with_the_way_back(node_env):
    """What a kill during a periodic save leaves behind: anvil refuses it, and the last clean copy is named."""
    assert cli(node_env, "node", "start").returncode == 0
    w3 = connect(node_env)
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": dev_account(0).address, "to": dev_account(22).address, "value": 5}))
    assert cli(node_env, "node", "stop").returncode == 0
    chain = Path(node_env["LOANLEDGER_HOME"]) / "chain"
    clean = chain / "state.clean.json"
    assert clean.read_bytes() == (chain / "state.json").read_bytes()

    (chain / "state.json").write_bytes(clean.read_bytes()[:1000])
    refused = cli(node_env, "node", "start")
    message = "".join(refused.stderr.split())  # rich folds long paths anywhere
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "failedtoparsejsonfile" in message and f"{clean}:copyitover" in message
    assert status(node_env)["running"] is False

    (chain / "state.json").write_bytes(clean.read_bytes())
    assert cli(node_env, "node", "start").returncode == 0
    assert connect(node_env).eth.block_number == 1

"""`loanledger run` (what `make run` starts): the stack comes up on the persisted state, and Ctrl-C
stops every process it started, the node included, which keeps its state for the next start."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ledger.node import DEV_POLICY, DEV_RELAYER, dev_account

ROOT = Path(__file__).resolve().parent.parent
LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))


def _start(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([LOANLEDGER, "run"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def _wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            answer = httpx.get(f"{url}/readyz", timeout=2)
            if answer.status_code == 200:
                return answer.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready in {timeout}s: {log.read_text()[-3000:]}")


def _started_by(home: Path) -> list[str]:
    """Command lines of the live processes whose environment names `home` (everything `run` starts inherits it)."""
    marker = f"LOANLEDGER_HOME={home}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def test_run_serves_until_ctrl_c_then_stops_everything_and_keeps_the_ledger(tmp_path, stack_ports):
    env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "home"), **stack_ports.env}
    env.pop("LOANLEDGER_DEV_LOGIN", None)  # what `run` turns on by itself, not what the caller's shell had
    log = tmp_path / "run.log"
    url = f"http://127.0.0.1:{stack_ports.api}"
    process = _start(env, log)
    try:
        ready = _wait_ready(url, process, log)
        assert ready["checks"]["deployment"] == "ok"
        assert httpx.get(f"{url}/docs").status_code == 200
        assert httpx.get(f"{url}/app/").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{stack_ports.oracle}/healthz").status_code == 200
        printed = log.read_text()
        assert f"{url}/docs" in printed and f"{url}/dashboard" in printed and f"{url}/app/" in printed
        # No unsigned login on the stack, even from this machine on the development chain: wallets sign in.
        dev_login = httpx.post(f"{url}/v1/auth/dev-login", json={"address": "0x" + "11" * 20}, timeout=5)
        assert dev_login.status_code == 404, dev_login.text
        assert "DEVELOPMENT LOGIN IS ON" not in (tmp_path / "home" / "logs" / "api.log").read_text()
        first_block = int(ready["checks"]["node"].split("block ")[1].rstrip(")"))
        # The score quorum: three signer processes beside the oracle, each with its own key; reports need two.
        running = _started_by(tmp_path / "home")
        # The automatic approval policy: its own process, signing with the policy key (POLICY_ROLE on the book).
        assert any("loanledger oracle policy" in c for c in running), running
        policy_log = (tmp_path / "home" / "logs" / "policy.log").read_text()
        assert f"automatic policy ({dev_account(DEV_POLICY).address})" in policy_log, policy_log[-2000:]
        assert sorted(n for n in (1, 2, 3) if any(f"oracle signer --name score_signer_{n}" in c for c in running)) \
            == [1, 2, 3], running
        deployed = json.loads((tmp_path / "home" / "deployments" / "local.json").read_text())
        assert deployed["signer_threshold"] == 2 and len(set(deployed["roles"]["SCORE_SIGNER_ROLE"])) == 3
        # The relayer the API is given is the one the deploy admitted on the registry (and nowhere else).
        relayer = dev_account(DEV_RELAYER).address
        assert deployed["grants"]["BorrowerRegistry"]["RELAYER_ROLE"] == [relayer]
        assert [c for c, roles in deployed["grants"].items()
                if any(relayer in holders for holders in roles.values())] == ["BorrowerRegistry"]
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert stack_ports.still_answering() == [], "still answering after Ctrl-C"

    # Started again: the same ledger (nothing redeployed), the chain where it was.
    process = _start(env, log)
    try:
        ready = _wait_ready(url, process, log)
        assert int(ready["checks"]["node"].split("block ")[1].rstrip(")")) >= first_block
        assert "already deployed" in (tmp_path / "home" / "logs" / "deploy.log").read_text()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0


def test_ctrl_c_while_starting_stops_what_had_started(tmp_path, stack_ports):
    env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "home"), **stack_ports.env}
    log = tmp_path / "run.log"
    process = _start(env, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the node answers: the deployment is next
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            httpx.post(stack_ports.env["LOANLEDGER_NODE_URL"], json={"jsonrpc": "2.0", "id": 1,
                                                                    "method": "eth_chainId", "params": []}, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert stack_ports.still_answering() == [], "something it started still runs"
    # The deployment too, and what it had started (Ape runs the deploy script as a child of `loanledger deploy`).
    assert _started_by(tmp_path / "home") == []


def test_run_dev_login_turns_the_development_login_on_for_the_services_it_starts(monkeypatch, tmp_path):
    """`run --dev-login` is the one way `run` turns it on (the API then checks the chain and the client)."""
    from typer.testing import CliRunner

    from ledger.cli import app
    from ledger.cli import run as run_command

    monkeypatch.setenv("LOANLEDGER_HOME", str(tmp_path))
    monkeypatch.delenv("LOANLEDGER_DEV_LOGIN", raising=False)
    made: list[dict[str, str]] = []

    class Interrupted:  # the stack as if Ctrl-C came at once: nothing starts
        def __init__(self, settings, say, env=None) -> None:
            made.append(dict(os.environ if env is None else env))

        def interruptible(self):
            return contextlib.nullcontext()

        def start(self) -> None:
            raise KeyboardInterrupt

        def stop(self, stop_node: bool) -> None:
            pass

    monkeypatch.setattr(run_command, "local_stack", Interrupted)
    runner = CliRunner()
    assert runner.invoke(app, ["run"]).exit_code == 0
    flagged = runner.invoke(app, ["run", "--dev-login"])
    assert flagged.exit_code == 0 and "development login ON" in flagged.output
    assert [env.get("LOANLEDGER_DEV_LOGIN") for env in made] == [None, "1"]

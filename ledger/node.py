"""The embedded node: a local anvil, as the demo, the benchmarks and `loanledger node` run it.

Anvil is a development chain, not a validator network: it stands in for a Besu/GoQuorum QBFT network
on one machine. Its accounts come from a fixed mnemonic (anvil's well-known test mnemonic), so the
development roles are the same addresses everywhere; never reuse these keys on a real network.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger.config import Settings
from ledger.errors import LoanLedgerError
from ledger.manifest import ROOT

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ROLES = ("admin", "operator", "oracle", "pauser", "signer")  # accounts 0..4; borrowers follow
# The local quorum's score signers (score_signer_1..3): account 4, then the last two of the 30 the local anvil
# makes, which nothing else uses. The one place these indices are chosen (the deploy script and the supervisor
# read them here).
DEV_SCORE_SIGNERS = (4, 28, 29)
# FourEyes' second admin and second operator, and the automatic approval policy's key: the three before those
# (the demo's people and borrowers take the low indices).
DEV_SECOND_ADMIN, DEV_SECOND_OPERATOR, DEV_POLICY = 25, 26, 27
# The API's relayer: it holds no role that does anything (RELAYER_ROLE only admits it on a permissioned chain), and
# is none of the accounts tests and the demo use as borrowers (5 onwards).
DEV_RELAYER = 24
CHAIN_ID = 31337
Account.enable_unaudited_hdwallet_features()


class NodeError(LoanLedgerError):
    """The local node could not be started or stopped."""


def anvil_binary() -> str:
    for candidate in (ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil", ROOT / "node_modules/.bin/anvil"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("anvil")
    if not found:
        raise NodeError("anvil is not installed: run `make setup` (it comes from the npm package @foundry-rs/anvil)")
    return found


def dev_account(index: int) -> LocalAccount:
    """Account `index` of the development mnemonic (0 admin, 1 operator, 2 oracle, 3 pauser, DEV_SCORE_SIGNERS,
    DEV_RELAYER)."""
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_command(port: int, *, state: Path | None = None, state_interval: int = 5, accounts: int = 30,
                  extra: tuple[str, ...] = (), quiet: bool = True) -> list[str]:
    # Zero gas price and base fee: a permissioned chain where participants don't pay for gas.
    command = [anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(CHAIN_ID),
               "--mnemonic", DEV_MNEMONIC, "--accounts", str(accounts), "--gas-price", "0", "--base-fee", "0",
               *(["--silent"] if quiet else []), *extra]
    if state is not None:
        # --state loads the file at start and dumps it on exit; the interval bounds what a kill -9 loses.
        command += ["--state", str(state), "--state-interval", str(state_interval)]
    return command


def wait_until_answering(url: str, timeout: float = 15.0, process: subprocess.Popen | None = None) -> Web3:
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 5}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NodeError(f"anvil exited with code {process.returncode} before answering at {url}")
        if w3.is_connected():
            return w3
        time.sleep(0.05)
    raise NodeError(f"anvil did not answer at {url} within {timeout:.0f} s")


@dataclass
class EphemeralNode:
    """An anvil for one run (benchmarks, scripts): started on a free port, stopped on exit."""

    extra: tuple[str, ...] = ()
    accounts: int = 30

    def __enter__(self) -> EphemeralNode:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(anvil_command(self.port, accounts=self.accounts, extra=self.extra),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.w3 = wait_until_answering(self.url, process=self.process)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@dataclass(frozen=True)
class NodeStatus:
    running: bool
    pid: int | None
    url: str
    chain_id: int | None = None
    block: int | None = None
    state_file: str = ""
    state_bytes: int = 0
    log_file: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


StopOutcome = Literal["not running", "stopped", "killed"]


class LocalNode:
    """The persistent local anvil under a data directory: <home>/chain/{state.json, anvil.pid, anvil.log}.

    Detached from whoever starts it (its own session), so `loanledger node start` returns and the node
    keeps running; the pid file is how `stop` and `status` find it again.
    """

    def __init__(self, home: Path, port: int = 8545, state_interval: int = 5):
        self.dir = Path(home) / "chain"
        self.port = port
        self.state_interval = state_interval
        self.url = f"http://127.0.0.1:{port}"
        self.state = self.dir / "state.json"
        # anvil rewrites state.json in place, so a kill during a periodic save leaves it truncated and
        # unloadable; the copy taken after each clean stop is the way back.
        self.clean_state = self.dir / "state.clean.json"
        self.pid_file = self.dir / "anvil.pid"
        self.log_file = self.dir / "anvil.log"

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalNode:
        return cls(settings.home, settings.node_port)

    def _pid(self) -> int | None:
        """The recorded pid while that process is alive and is an anvil (a stale file's pid may be reused)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_anvil(pid) else None

    def status(self) -> NodeStatus:
        pid = self._pid()
        files = {"state_file": str(self.state), "log_file": str(self.log_file),
                 "state_bytes": self.state.stat().st_size if self.state.exists() else 0}
        if pid is None:
            return NodeStatus(False, None, self.url, **files)
        w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 3}))
        try:
            return NodeStatus(True, pid, self.url, w3.eth.chain_id, w3.eth.block_number, **files)
        except Exception:  # noqa: BLE001 - a process that does not answer is reported, not raised
            return NodeStatus(True, pid, self.url, **files)

    def start(self, timeout: float = 20.0) -> tuple[NodeStatus, bool]:
        """Starts anvil detached unless it already runs; returns (status, started)."""
        if self._pid() is not None:
            return self.status(), False
        self.dir.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise NodeError(f"port {self.port} is taken by another process; set LOANLEDGER_NODE_PORT")
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        command = anvil_command(self.port, state=self.state, state_interval=self.state_interval, quiet=False,
                                extra=("--color", "never"))
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self.pid_file.write_text(str(process.pid))
        try:
            wait_until_answering(self.url, timeout, process)
        except NodeError as exc:
            process.kill()
            process.wait()
            self.pid_file.unlink(missing_ok=True)
            said = self._log_since(log_start)
            hint = ""
            if str(self.state) in said and self.clean_state.exists():
                hint = (f". The state as of the last clean stop is {self.clean_state}: copy it over {self.state} "
                        f"to go back to it (later blocks are lost)")
            raise NodeError(f"{exc}; its log ({self.log_file}) says: {said}{hint}") from None
        return self.status(), True

    def stop(self, timeout: float = 15.0) -> StopOutcome:
        """SIGTERM (anvil writes its state on the way out), SIGKILL after `timeout`."""
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        _signal_group(pid, signal.SIGTERM)
        outcome: StopOutcome = "stopped"
        if not _wait_gone(pid, timeout):
            # Loses what happened since the last periodic dump (at most --state-interval seconds).
            _signal_group(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
            outcome = "killed"
        elif self.state.exists():
            tmp = self.clean_state.with_suffix(".tmp")
            shutil.copyfile(self.state, tmp)
            os.replace(tmp, self.clean_state)
        self.pid_file.unlink(missing_ok=True)
        return outcome

    def _log_since(self, offset: int, limit: int = 600) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace").strip()
        except FileNotFoundError:
            return "(nothing)"
        return (text[-limit:] if text else "(nothing)").replace("\n", " | ")


def _is_anvil(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    # The native binary, or node running the npm wrapper script (node_modules/.bin/anvil).
    return state != "Z" and any(b"anvil" in arg for arg in cmdline[:2])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The node leads its own process group (start_new_session): the group also reaches the native
    # binary when the npm wrapper script is what was started.
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_gone(pid: int, timeout: float) -> bool:
    # Not os.waitpid: the node is usually not our child (another `loanledger` process started it).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_anvil(pid):
            return True
        time.sleep(0.05)
    return not _is_anvil(pid)


def status_json(status: NodeStatus) -> str:
    return json.dumps(status.as_dict(), indent=2)

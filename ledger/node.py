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
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger.errors import LoanLedgerError
from ledger.manifest import ROOT

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ROLES = ("admin", "operator", "oracle", "pauser", "signer")  # accounts 0..4; borrowers follow
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
    """Account `index` of the development mnemonic (0 admin, 1 operator, 2 oracle, 3 pauser, 4 score signer)."""
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_command(port: int, *, state: Path | None = None, state_interval: int = 5, accounts: int = 30,
                  extra: tuple[str, ...] = ()) -> list[str]:
    # Zero gas price and base fee: a permissioned chain where participants don't pay for gas.
    command = [anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(CHAIN_ID),
               "--mnemonic", DEV_MNEMONIC, "--accounts", str(accounts), "--gas-price", "0", "--base-fee", "0",
               "--silent", *extra]
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

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class LocalNode:
    """The persistent local anvil under a data directory: <home>/chain/{state.json, anvil.pid, anvil.log}."""

    def __init__(self, home: Path, port: int = 8545):
        self.dir = Path(home) / "chain"
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.state = self.dir / "state.json"
        self.pid_file = self.dir / "anvil.pid"
        self.log_file = self.dir / "anvil.log"

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def status(self) -> NodeStatus:
        pid = self._pid()
        size = self.state.stat().st_size if self.state.exists() else 0
        if pid is None:
            return NodeStatus(False, None, self.url, state_file=str(self.state), state_bytes=size)
        w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 3}))
        try:
            return NodeStatus(True, pid, self.url, w3.eth.chain_id, w3.eth.block_number, str(self.state), size)
        except Exception:  # noqa: BLE001 - a process that does not answer is reported, not raised
            return NodeStatus(True, pid, self.url, state_file=str(self.state), state_bytes=size)

    def start(self, timeout: float = 20.0) -> tuple[NodeStatus, bool]:
        """Starts anvil detached unless it already runs; returns (status, started)."""
        if self._pid() is not None:
            return self.status(), False
        self.dir.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise NodeError(f"port {self.port} is taken by another process; set LOANLEDGER_NODE_PORT")
        log = self.log_file.open("ab")
        process = subprocess.Popen(anvil_command(self.port, state=self.state), stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(str(process.pid))
        try:
            wait_until_answering(self.url, timeout, process)
        except NodeError:
            process.kill()
            self.pid_file.unlink(missing_ok=True)
            raise
        return self.status(), True

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM (anvil writes its state on the way out), SIGKILL after `timeout`; False if it wasn't running."""
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._pid() is None or _is_zombie(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def status_json(status: NodeStatus) -> str:
    return json.dumps(status.as_dict(), indent=2)

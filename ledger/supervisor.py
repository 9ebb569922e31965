"""The whole stack on one machine: the local node, the deployment, and every service as a real process.

`loanledger run` (and `make run`, and the demo) use it: start in dependency order, wait for each to
answer, keep them up, and on Ctrl-C (or any one dying) stop every process it started, newest first.
Logs go to <home>/logs/<service>.log. On the embedded local anvil the service keys default to the
development accounts (the same mnemonic as the node); anywhere else they must be configured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ledger.config import Settings
from ledger.errors import LoanLedgerError
from ledger.manifest import ROOT
from ledger.node import (
    DEV_POLICY,
    DEV_RELAYER,
    DEV_SCORE_SIGNERS,
    LocalNode,
    dev_account,
)

LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))  # the CLI of this environment
DEV_CHAIN_ID = 31337
# Which development account plays which service key on the local node (the deploy script's role holders).
DEV_SIGNERS = {"ADMIN": 0, "OPERATOR": 1, "ORACLE": 2, "PAUSER": 3, "RELAYER": DEV_RELAYER, "POLICY": DEV_POLICY,
               **{f"SCORE_SIGNER_{n}": index for n, index in enumerate(DEV_SCORE_SIGNERS, start=1)}}
# What unlocks a signer (ledger/config.py SignerSecrets): a service is given these only for its own signers.
_SIGNER_SECRETS = ("KEY", "PASSPHRASE", "PASSPHRASE_FILE")
# The API's one signer: the relayer (RELAYER_ROLE on the registry only: admitted on a permissioned chain, no
# power). Every decision it relays is signed by the person or service that makes it.
API_SIGNERS = ("RELAYER",)


class StackError(LoanLedgerError):
    """A service did not start, or died."""


@dataclass
class Service:
    name: str
    command: list[str]
    health_url: str | None = None      # polled until it answers 2xx; None: alive is enough
    signers: tuple[str, ...] = ()      # the DEV_SIGNERS names whose keys it is given (none: it signs nothing)
    process: subprocess.Popen | None = None


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    say: Callable[[str], None] = print
    services: list[Service] = field(default_factory=list)
    node: LocalNode | None = None
    node_started: bool = False
    # Set by Ctrl-C / SIGTERM (see `interruptible`). Python drops a KeyboardInterrupt raised while a finalizer
    # runs, so the start also checks this between steps: a stop asked for is never lost.
    interrupted: threading.Event = field(default_factory=threading.Event)

    @property
    def logs(self) -> Path:
        return self.settings.home / "logs"

    def service_env(self, signers: tuple[str, ...] | None = None) -> dict[str, str]:
        """The environment of a process; `signers`: the only service keys it gets (None: all, for the deploy)."""
        env = {**self.env, "LOANLEDGER_HOME": str(self.settings.home), "PYTHONUNBUFFERED": "1",
               "SOLCX_BINARY_PATH": self.env.get("SOLCX_BINARY_PATH", str(ROOT / ".venv" / "solcx")),
               "PATH": f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{self.env.get('PATH', '')}"}
        if signers is not None:
            for name in set(DEV_SIGNERS) - set(signers):
                for secret in _SIGNER_SECRETS:
                    env.pop(f"LOANLEDGER_{name}_{secret}", None)
        return env

    # -------------------------------------------------------------------------------------------- start

    @contextlib.contextmanager
    def interruptible(self):
        """Within it, Ctrl-C and SIGTERM set `interrupted` and raise KeyboardInterrupt."""
        def on_signal(*_):
            self.interrupted.set()
            raise KeyboardInterrupt
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _check_interrupted(self) -> None:
        if self.interrupted.is_set():
            raise KeyboardInterrupt

    def start(self, timeout: float = 60.0) -> None:
        """Node, deployment, vault keys, then every service. Stop with `stop()` even if this was interrupted:
        it stops whatever had started."""
        from ledger.chain import connect
        self.start_node()
        self._check_interrupted()
        self.dev_keys(connect(self.settings).eth.chain_id)
        self.deploy()
        self._check_interrupted()
        self.ensure_vault_keys()
        self.start_services(timeout)
        self._check_interrupted()

    def start_node(self) -> None:
        if self.settings.node_url != f"http://127.0.0.1:{self.settings.node_port}":
            self.say(f"node: external, {self.settings.node_url}")
            return
        self.node = LocalNode.from_settings(self.settings)
        # Decided before starting it, so that Ctrl-C in the middle of the start still stops it.
        self.node_started = not self.node.status().running
        status, _ = self.node.start()
        self.say(f"node: anvil {'started' if self.node_started else 'already running'} at {status.url} "
                 f"(block {status.block}, state in {status.state_file})")

    def dev_keys(self, chain_id: int) -> None:
        """On the development chain, service keys not configured default to the development accounts."""
        if chain_id != DEV_CHAIN_ID:
            return
        for name, index in DEV_SIGNERS.items():
            self.env.setdefault(f"LOANLEDGER_{name}_KEY", dev_account(index).key.hex())
        # The deploy admits the relayer the API is given (RELAYER_ROLE), configured or the development one.
        from eth_account import Account
        self.env.setdefault("LOANLEDGER_DEPLOY_RELAYER", Account.from_key(self.env["LOANLEDGER_RELAYER_KEY"]).address)
        # Not the dashboard's development login: off unless asked for (`loanledger run --dev-login`); the
        # dashboard signs in with a browser wallet holding a development key.

    def deploy(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / "deploy.log").open("ab") as log:
            # Its own process group: `loanledger deploy` runs `ape run deploy` as a child, and an interrupted start
            # must stop both (killing only the first would leave Ape deploying on its own).
            process = subprocess.Popen([LOANLEDGER, "deploy"], cwd=ROOT, env=self.service_env(), stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                returncode = process.wait()
            except BaseException:
                _stop_group(process)
                raise
        if returncode != 0:
            raise StackError(f"deploy failed (exit {returncode}); see {self.logs / 'deploy.log'}")
        self.say(f"contracts: deployed ({self.settings.manifest_path})")

    def ensure_vault_keys(self) -> None:
        """The PII vault's key file, created (0600) on first start unless the keys come from the environment."""
        from ledger.vault import KEK_ENV, KeyFile
        key_file = KeyFile(self.settings.kek_path)
        if not self.env.get(KEK_ENV) and not key_file.exists():
            key_file.create()
            self.say(f"vault: new key-encryption key in {self.settings.kek_path} (back it up: without it the "
                     f"KYC records cannot be read)")

    def add(self, name: str, args: list[str], health_url: str | None = None, signers: tuple[str, ...] = ()) -> None:
        self.services.append(Service(name, [LOANLEDGER, *args], health_url, signers))

    def start_services(self, timeout: float = 60.0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for service in self.services:
            self._check_interrupted()
            log = (self.logs / f"{service.name}.log").open("ab")
            service.process = subprocess.Popen(service.command, cwd=ROOT, env=self.service_env(service.signers),
                                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               start_new_session=True)
            self._wait_ready(service, timeout)
            self.say(f"{service.name}: up" + (f" ({service.health_url.rsplit('/', 1)[0]})" if service.health_url else ""))

    def _wait_ready(self, service: Service, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_interrupted()
            if service.process.poll() is not None:
                raise StackError(f"{service.name} exited with {service.process.returncode}; "
                                 f"see {self.logs / (service.name + '.log')}")
            if service.health_url is None:
                time.sleep(0.5)
                return
            try:
                if httpx.get(service.health_url, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise StackError(f"{service.name} did not answer {service.health_url} within {timeout:.0f}s; "
                         f"see {self.logs / (service.name + '.log')}")

    # -------------------------------------------------------------------------------------------- run, stop

    def wait(self) -> None:
        """Until Ctrl-C / SIGTERM, or until a service dies (then says which)."""
        try:
            with self.interruptible():
                while not self.interrupted.is_set():
                    for service in self.services:
                        if service.process.poll() is not None:
                            raise StackError(f"{service.name} exited with {service.process.returncode}; "
                                             f"see {self.logs / (service.name + '.log')}")
                    self.interrupted.wait(0.5)
        except KeyboardInterrupt:
            pass

    def stop(self, stop_node: bool = True) -> None:
        for service in reversed(self.services):
            if service.process is None or service.process.poll() is not None:
                continue
            service.process.send_signal(signal.SIGTERM)
        for service in reversed(self.services):
            if service.process is None:
                continue
            try:
                service.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
            self.say(f"{service.name}: stopped")
        if stop_node and self.node is not None and self.node_started:
            self.node.stop()
            self.say("node: stopped (state saved)")


def _stop_group(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stops the process group `process` leads (started with start_new_session): SIGTERM, then SIGKILL for
    whatever outlived the leader or would not stop."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def local_stack(settings: Settings, say: Callable[[str], None] = print, env: dict[str, str] | None = None) -> Stack:
    """The standard stack: node, deployment, rail and bureau stand-ins, indexer, score signers, oracle, policy, API
    (`start()` starts it)."""
    stack = Stack(settings, env=dict(os.environ if env is None else env), say=say)
    # The stand-ins and the oracle listen where the settings say the others find them.
    oracle_port, rail_port, bureau_port = (urlsplit(url).port for url in
                                           (settings.oracle_url, settings.rail_url, settings.bureau_url))
    oracle_url = f"http://127.0.0.1:{oracle_port}"
    stack.add("rail", ["rail", "--port", str(rail_port), "--webhook-url", f"{oracle_url}/v1/webhooks/payments"],
              f"http://127.0.0.1:{rail_port}/healthz")
    stack.add("bureau", ["bureau", "--port", str(bureau_port)], f"http://127.0.0.1:{bureau_port}/healthz")
    stack.add("indexer", ["index", "--follow", "--poll-interval", "0.5"])
    # The score quorum: one process per signer, each with its own key and its own bureau read, beside the oracle.
    for n in range(1, settings.score_signers + 1):
        stack.add(f"score-signer-{n}", ["oracle", "signer", "--name", f"score_signer_{n}"],
                  signers=(f"SCORE_SIGNER_{n}",))
    # Each process gets only its own keys: the oracle its own (payments, KYC registrations, anchors), the policy
    # its POLICY_ROLE key, the API API_SIGNERS; the stand-ins and the indexer none.
    stack.add("oracle", ["oracle", "run", "--port", str(oracle_port)], f"{oracle_url}/healthz", signers=("ORACLE",))
    # The automatic approval policy: its own process with its own key (POLICY_ROLE), deciding what the API relayed.
    stack.add("policy", ["oracle", "policy"], signers=("POLICY",))
    stack.add("api", ["api"], f"http://{settings.api_host}:{settings.api_port}/healthz", signers=API_SIGNERS)
    return stack

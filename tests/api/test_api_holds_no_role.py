"""The API process holds no key with a role: started as `loanledger run` starts it, its configuration read from the
running process, and every key it could sign with asked about on the chain, role by role, contract by contract.

The one role it may hold is the relayer's RELAYER_ROLE on the registry, which no function checks (it only admits
the relayer on a permissioned chain). One known exception remains, listed below by name with its follow-up.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from web3 import Web3

from ledger import manifest as manifests
from ledger.chain import load_account
from ledger.cli.roles import role_names
from ledger.config import load_settings
from ledger.deploy import deploy_stack, majority
from ledger.manifest import CONTRACT_NAMES
from ledger.node import DEV_SCORE_SIGNERS, dev_account, free_port
from ledger.supervisor import DEV_CHAIN_ID, local_stack

LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))
# No exception: the automatic policy signs with its own POLICY_ROLE key in its own process (oracle/policy.py).
KNOWN_EXCEPTIONS: dict[str, set[str]] = {}
RELAYER_ONLY = [("BorrowerRegistry", "RELAYER_ROLE")]


def service_envs(home: Path) -> dict[str, dict[str, str]]:
    """Each service's environment as `loanledger run` gives it on the development chain (ledger.supervisor), from a
    shell that configured nothing of LoanLedger's."""
    shell = {k: v for k, v in os.environ.items() if not k.startswith("LOANLEDGER_")}
    stack = local_stack(load_settings({**shell, "LOANLEDGER_HOME": str(home)}), say=lambda _: None, env=shell)
    stack.dev_keys(DEV_CHAIN_ID)
    return {service.name: stack.service_env(service.signers) for service in stack.services}


def process_environment(pid: int) -> dict[str, str]:
    """The environment a running process was started with: what its settings were loaded from."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def roles_held(bindings, addresses: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """Name -> every (contract, role) its address holds, over every role every contract of the manifest declares."""
    held: dict[str, list[tuple[str, str]]] = {name: [] for name in addresses}
    for contract_name in CONTRACT_NAMES:
        contract = bindings.by_name(contract_name)
        for role_id, role in role_names(contract).items():
            for name, address in addresses.items():
                if contract.functions.hasRole(role_id, address).call():
                    held[name].append((contract_name, role))
    return held


def spawn_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        process = subprocess.Popen([LOANLEDGER, "api", "--port", str(port)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the API did not start: {log.read_text()[-3000:]}")


def test_the_api_process_holds_no_key_with_a_role(w3: Web3, tmp_path):
    envs = service_envs(tmp_path / "home")
    assert w3.eth.chain_id == DEV_CHAIN_ID
    # The deployment `loanledger run` makes (scripts/deploy.py's local defaults, the same plan), admitting the
    # relayer it gives the API.
    signers = tuple(dev_account(i).address for i in DEV_SCORE_SIGNERS)
    bindings = deploy_stack(w3, dev_account(0).address, operator=dev_account(1).address,
                            oracle=dev_account(2).address, pauser=dev_account(3).address, score_signer=signers,
                            signer_threshold=majority(len(signers)),
                            relayer=envs["api"]["LOANLEDGER_DEPLOY_RELAYER"])
    port = free_port()
    env = {**envs["api"], "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
           "LOANLEDGER_MANIFEST": str(manifests.save(bindings.manifest, tmp_path / "manifest.json")),
           "LOANLEDGER_DB_URL": f"sqlite:///{tmp_path / 'api.db'}",
           "LOANLEDGER_KEK": base64.b64encode(os.urandom(32)).decode(),
           "LOANLEDGER_JWT_SECRET": "no-role-test-secret-of-32-bytes!"}
    log = tmp_path / "api.log"
    api = spawn_api(env, port, log)
    try:
        # What the running process was configured with, read from the process itself.
        settings = load_settings(process_environment(api.pid))
        names = settings.configured_signers()
        addresses = {name: load_account(settings, name).address for name in names}
        held = roles_held(bindings, addresses)
    finally:
        api.send_signal(signal.SIGTERM)
        try:
            api.wait(timeout=30)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait(timeout=15)

    assert names == sorted({"relayer", *KNOWN_EXCEPTIONS}), names  # no admin, pauser, oracle or signer key
    assert held["relayer"] == RELAYER_ONLY  # admitted on a permissioned chain, able to do nothing
    for name, roles in held.items():
        if name == "relayer":
            continue
        allowed = KNOWN_EXCEPTIONS.get(name, set())
        assert {role for _, role in roles} <= allowed, f"the API's {name} key holds {roles}"
    # The chain does answer for the roles the others hold: the oracle's own key, which the API does not have.
    oracle = load_account(load_settings(envs["oracle"]), "oracle").address
    assert ("BorrowerRegistry", "ORACLE_ROLE") in roles_held(bindings, {"oracle": oracle})["oracle"]


def test_each_supervised_process_is_given_only_its_own_keys(tmp_path):
    """The keys `loanledger run` hands out: the oracle its own, each score signer its own, the API API_SIGNERS, the
    stand-ins and the indexer none."""
    def keys_of(env: dict[str, str]) -> set[str]:
        return set(load_settings(env).configured_signers())

    envs = service_envs(tmp_path / "home")
    assert keys_of(envs["oracle"]) == {"oracle"}
    assert keys_of(envs["api"]) == {"relayer", *KNOWN_EXCEPTIONS}
    assert all(keys_of(envs[f"score-signer-{n}"]) == {f"score_signer_{n}"} for n in (1, 2, 3))
    assert keys_of(envs["indexer"]) == keys_of(envs["rail"]) == keys_of(envs["bureau"]) == set()

"""A real anvil per test session, the contracts deployed once, a snapshot reverted per test."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from ledger.deploy import deploy_stack

ROOT = Path(__file__).resolve().parent.parent
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()


def _anvil_binary() -> str:
    native = ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
    return str(native) if native.exists() else (shutil.which("anvil") or "anvil")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def w3():
    port = _free_port()
    proc = subprocess.Popen(
        [_anvil_binary(), "--port", str(port), "--host", "127.0.0.1", "--silent", "--gas-price", "0",
         "--base-fee", "0", "--mnemonic", ANVIL_MNEMONIC, "--accounts", "10"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    web3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
    for _ in range(100):
        if web3.is_connected():
            break
        time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("anvil did not start")
    yield web3
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def keys():
    """Anvil's deterministic accounts: admin, operator, oracle, pauser, signer, then borrowers."""
    accounts = [Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(10)]
    names = ["admin", "operator", "oracle", "pauser", "signer", "alice", "bob", "carol", "dave", "eve"]
    return dict(zip(names, accounts))


@pytest.fixture(scope="session")
def stack(w3, keys):
    return deploy_stack(
        w3, keys["admin"].address, operator=keys["operator"].address, oracle=keys["oracle"].address,
        pauser=keys["pauser"].address, score_signer=keys["signer"].address,
    )


@pytest.fixture(autouse=True)
def _isolated(request):
    """Revert the chain after each test that uses it."""
    if "w3" not in request.fixturenames:
        yield
        return
    w3 = request.getfixturevalue("w3")
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    yield
    w3.provider.make_request("evm_revert", [snapshot])

"""What every chain-facing command needs: the settings, a node that answers, the deployment manifest.

Failures here are the user's to fix (node down, not deployed yet), so they end the command with one
clear line and exit code 1, never a traceback.
"""

from __future__ import annotations

import typer
from rich.console import Console
from web3 import Web3

from ledger import manifest as manifests
from ledger.chain import NodeUnavailable, connect
from ledger.config import Settings
from ledger.contracts import Bindings, bind

err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def node(settings: Settings) -> Web3:
    try:
        return connect(settings, timeout=settings.tx_timeout)
    except NodeUnavailable as exc:
        raise fail(str(exc)) from None


def manifest(settings: Settings) -> manifests.Manifest:
    path = settings.manifest_path
    if not path.exists():
        raise fail(f"no deployment manifest at {path}: run `loanledger deploy` first (or set LOANLEDGER_MANIFEST)")
    return manifests.load(path)


def deployment(settings: Settings) -> Bindings:
    """Bindings to the deployed contracts, once the node is known to hold them (a fresh node may not)."""
    w3, deployed = node(settings), manifest(settings)
    chain_id = w3.eth.chain_id
    if deployed.chain_id != chain_id:
        raise fail(f"{settings.manifest_path} is for chain {deployed.chain_id} but the node at {settings.node_url} "
                   f"is chain {chain_id}: run `loanledger deploy`")
    every = {**deployed.contracts, **({manifests.FORWARDER: deployed.forwarder} if deployed.forwarder else {})}
    missing = [name for name, c in every.items() if not w3.eth.get_code(Web3.to_checksum_address(c.address))]
    if missing:
        raise fail(f"the node at {settings.node_url} has no code for {', '.join(missing)} of {settings.manifest_path}: "
                   f"run `loanledger deploy`")
    return bind(w3, deployed)

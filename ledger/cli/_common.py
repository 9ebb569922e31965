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

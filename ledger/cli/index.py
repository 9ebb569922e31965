"""`loanledger index`: bring the store up to the chain, once or following it."""

from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import asdict

import typer
from rich.console import Console

from ledger.cli._common import manifest as load_manifest
from ledger.cli._common import node as connect
from ledger.config import load_settings
from ledger.indexer import Indexer, IndexReport
from ledger.store import open_store


def register(app: typer.Typer) -> None:
    @app.command("index")
    def index(
        follow: bool = typer.Option(False, "--follow", help="Keep following the chain until interrupted."),
        poll_interval: float = typer.Option(2.0, "--poll-interval", min=0.1, help="Seconds between rounds."),
        batch_size: int = typer.Option(1_000, "--batch-size", min=1, help="Blocks per eth_getLogs range."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per round on stdout."),
    ) -> None:
        """Index the contracts' events into the store (resumes from the cursor)."""
        settings = load_settings()
        console = Console(stderr=as_json)
        w3 = connect(settings)
        indexer = Indexer(w3, load_manifest(settings), open_store(settings.database_url), batch_size=batch_size)

        def show(report: IndexReport) -> None:
            if as_json:
                typer.echo(json.dumps(asdict(report)))
            elif report.ranges or report.reorgs:
                for fork in report.reorgs:
                    console.print(f"[yellow]reorg[/]: rewound to block {fork}")
                console.print(f"indexed blocks [bold]{report.from_block}-{report.to_block}[/]: "
                              f"{report.events} events")
            elif not follow:
                console.print(f"up to date at block {report.to_block}")
            if report.poisoned and not as_json:  # also logged at ERROR, with each event
                console.print(f"[red]{report.poisoned} poison event(s) set aside[/]: `loanledger indexer poison`")

        if not follow:
            show(indexer.run_once())
            return
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"following {settings.node_url} every {poll_interval}s (Ctrl-C stops)")
        indexer.follow(poll_interval, stop=stop, on_report=show)

"""`loanledger indexer poison`: the events the indexer set aside because their projection raised."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.markup import escape

from ledger.config import load_settings
from ledger.indexer_status import poison_events
from ledger.store import open_store

_FIELDS = ("block_number", "tx_hash", "log_index", "contract", "address", "name", "loan_id", "borrower",
           "error_type", "error", "first_seen", "chain_id")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The indexer's own records (`loanledger index` runs it).", no_args_is_help=True)
    app.add_typer(group, name="indexer")

    @group.command("poison")
    def poison(as_json: bool = typer.Option(False, "--json", help="One JSON object per event.")) -> None:
        """Events set aside because projecting them raised: stored, left out of the read model, never retried.

        Each was logged at ERROR when first seen; /readyz and /metrics count them. Once the cause is fixed
        (usually a projection that does not know the event), a store indexed afresh from the chain takes them in."""
        events = poison_events(open_store(load_settings().database_url))
        if as_json:
            for event in events:
                typer.echo(json.dumps({name: getattr(event, name) for name in _FIELDS}))
            return
        console = Console()
        if not events:
            console.print("no poison events: every indexed event is in the read model")
            return
        # One block per event rather than a table: the hashes and error messages are too long for columns.
        console.print(f"[bold]{len(events)} poison event{'s' if len(events) != 1 else ''} set aside[/]")
        for e in events:
            seen = datetime.fromtimestamp(e.first_seen, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            subject = f"loan {e.loan_id}" if e.loan_id is not None else f"borrower {e.borrower}" if e.borrower else ""
            console.print(f"block {e.block_number}  {e.contract}.{e.name}  {subject}  first seen {seen}")
            console.print(f"  tx {e.tx_hash} log {e.log_index}")
            console.print(f"  [red]{escape(e.error_type)}[/]: {escape(e.error)}", highlight=False)

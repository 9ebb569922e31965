"""`loanledger run`: the whole stack on the persisted state, until Ctrl-C."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from ledger.cli._common import fail
from ledger.config import load_settings
from ledger.errors import LoanLedgerError
from ledger.supervisor import local_stack

DEV_LOGIN_HELP = ("Turn on the dashboard's unsigned development login (LOANLEDGER_DEV_LOGIN=1): loopback clients "
                  "on a development chain only. Off by default: sign in with a wallet holding a development key.")


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(keep_node: bool = typer.Option(False, "--keep-node", help="Leave the local node running on exit."),
            dev_login: bool = typer.Option(False, "--dev-login", help=DEV_LOGIN_HELP)) -> None:
        """Start node, contracts, rail and bureau stand-ins, indexer, oracle and API; Ctrl-C stops them all."""
        console = Console()
        settings = load_settings()
        env = {**os.environ, "LOANLEDGER_DEV_LOGIN": "1"} if dev_login else None
        stack = local_stack(settings, say=lambda line: console.print(f"[green]•[/green] {line}"), env=env)
        if dev_login:
            console.print("[bold red]development login ON[/bold red]: the dashboard's POST /v1/auth/dev-login gives "
                          "any address a token without a signature (loopback clients, development chain only)")
        try:
            with stack.interruptible():
                stack.start()
            base = f"http://{settings.api_host}:{settings.api_port}"
            console.print(f"\n[bold]LoanLedger is up.[/bold] borrower app: {base}/app/   API docs: {base}/docs   "
                          f"dashboard: {base}/dashboard\n"
                          f"logs: {stack.logs}   Ctrl-C stops everything.")
            stack.wait()
        except LoanLedgerError as exc:
            stack.stop(stop_node=not keep_node)
            raise fail(str(exc)) from None
        except KeyboardInterrupt:  # Ctrl-C while starting: stop what had started
            pass
        console.print("stopping...")
        stack.stop(stop_node=not keep_node)

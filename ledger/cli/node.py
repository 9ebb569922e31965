"""`loanledger node start|stop|status`: the local anvil whose state lives in the data directory."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ledger.cli._common import fail
from ledger.config import Settings, load_settings
from ledger.node import LocalNode, NodeError, NodeStatus, status_json


def _show(status: NodeStatus, console: Console) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("running", "[green]yes[/]" if status.running else "[red]no[/]")
    if status.running:
        table.add_row("pid", str(status.pid))
        table.add_row("chain id", "not answering" if status.chain_id is None else str(status.chain_id))
        table.add_row("block", "-" if status.block is None else str(status.block))
    table.add_row("url", status.url)
    table.add_row("state file", f"{status.state_file} ({status.state_bytes:,} bytes)")
    table.add_row("log file", status.log_file)
    console.print(table)


def _warn_if_elsewhere(settings: Settings, node: LocalNode, console: Console) -> None:
    # node_url and node_port are separate settings: the commands talk to node_url, this one runs node_port.
    if settings.node_url.rstrip("/") != node.url:
        console.print(f"[yellow]note:[/] LOANLEDGER_NODE_URL is {settings.node_url}; the other commands will not "
                      f"use this node unless it is {node.url}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The local anvil node (state kept in the data directory).", no_args_is_help=True)
    app.add_typer(group, name="node")

    @group.command("start")
    def start(timeout: float = typer.Option(20.0, "--timeout", min=1, help="Seconds to wait for the RPC.")) -> None:
        """Start the node in the background, or report the one already running."""
        settings = load_settings()
        console = Console()
        node = LocalNode.from_settings(settings)
        try:
            status, started = node.start(timeout)
        except NodeError as exc:
            raise fail(str(exc)) from None
        if started:
            console.print(f"[green]started[/] anvil (pid {status.pid}) at {status.url}, block {status.block}")
        else:
            console.print(f"already running (pid {status.pid}) at {status.url}; nothing done")
        _warn_if_elsewhere(settings, node, console)

    @group.command("stop")
    def stop(timeout: float = typer.Option(15.0, "--timeout", min=1,
                                           help="Seconds to wait for a clean exit before SIGKILL.")) -> None:
        """Stop the node; it writes its state to the data directory on the way out."""
        node = LocalNode.from_settings(load_settings())
        outcome = node.stop(timeout)
        console = Console()
        if outcome == "stopped":
            console.print(f"stopped; state saved in {node.state}")
        elif outcome == "killed":
            console.print(f"[yellow]killed[/] after {timeout:.0f} s without a clean exit; the state in {node.state} "
                          f"is from its last periodic save (at most {node.state_interval} s old)")
        else:
            console.print("not running; nothing done")

    @group.command("status")
    def status(as_json: bool = typer.Option(False, "--json", help="Print the status as JSON.")) -> None:
        """Whether the node runs, and its pid, URL, chain id, block number and state file."""
        current = LocalNode.from_settings(load_settings()).status()
        if as_json:
            typer.echo(status_json(current))
        else:
            _show(current, Console())

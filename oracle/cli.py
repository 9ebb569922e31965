"""`loanledger oracle ...`: the oracle's commands (training now; the service arrives with its issue)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

oracle_app = typer.Typer(help="Credit scoring and payment confirmations.", no_args_is_help=True)


@oracle_app.command("train")
def train_command(
    as_json: bool = typer.Option(False, "--json", help='Print {"auc": ..., "ks": ..., "gini": ...} only.'),
    out: Path = typer.Option(None, "--out", help="Folder for scorecard-v<N>.json (default: the repo's models)."),
    seed: int = typer.Option(20261124, "--seed", help="Seed of the stratified split."),
) -> None:
    """Train the scorecard on the German Credit data and report AUC, KS and Gini on a held-out split."""
    try:
        from oracle.scoring.train import train, write_model
        result = train(seed=seed)
    except ImportError as exc:
        raise typer.BadParameter(f"training needs the `train` extra (pip install -e '.[train]'): {exc}") from exc
    path = write_model(result, out) if out else write_model(result)
    if as_json:
        typer.echo(json.dumps(result.metrics))
        return
    table = Table(title=f"scorecard v{result.model['version']} (held-out {result.model['training']['held_out']})")
    for name in ("auc", "ks", "gini"):
        table.add_column(name.upper(), justify="right")
    table.add_row(*(f"{value:.4f}" for value in result.metrics.values()))
    Console().print(table)
    Console().print(f"written to {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(oracle_app, name="oracle")

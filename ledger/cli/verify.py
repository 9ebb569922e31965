"""`loanledger verify index|state|identity|log`: the auditor's checks, with --json for machines."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from ledger import verify as checks
from ledger.cli._common import deployment
from ledger.cli._common import manifest as load_manifest
from ledger.cli._common import node as connect
from ledger.config import load_settings
from ledger.store import open_store

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON.")


def _report(result: checks.VerificationResult, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        console = Console()
        mark = "[green]OK[/]" if result.ok else "[red]FAILED[/]"
        console.print(f"{mark} {result.check}: {result.checked} checked, "
                      f"{0 if result.ok else len(result.details)} discrepancies")
        if isinstance(result, checks.ActionLogResult):
            console.print(f"  {result.anchors} on-chain anchors compared"
                          + ("" if result.first_bad_seq is None else f"; first bad seq: {result.first_bad_seq}"))
        for line in result.details:
            console.print(f"  [{'green' if result.ok else 'red'}]-[/] {line}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


def _with_store(run: Callable) -> checks.VerificationResult:
    settings = load_settings()
    w3, manifest = connect(settings), load_manifest(settings)
    sessions = open_store(settings.database_url)
    with sessions() as session:
        return run(w3, manifest, session)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Verify the index, the read model and the action log against the chain.", no_args_is_help=True)
    app.add_typer(group, name="verify")

    @group.command("index")
    def index(as_json: bool = JSON_OPTION) -> None:
        """Every stored event equals the node's log, and no log up to the cursor is missing."""
        _report(_with_store(checks.index_vs_chain), as_json)

    @group.command("state")
    def state(loan: int | None = typer.Option(None, "--loan", min=1, help="Only this loan id."),
              as_json: bool = JSON_OPTION) -> None:
        """Loans recomputed from their events, and the read model, equal the contracts' views."""
        _report(_with_store(lambda w3, manifest, session: checks.recomputed_state(w3, manifest, session, loan)),
                as_json)

    @group.command("log")
    def action_log(anchors: bool = typer.Option(True, "--anchors/--no-anchors",
                                                help="Also compare with the on-chain anchors (needs the node)."),
                   as_json: bool = JSON_OPTION) -> None:
        """The action log's hash chain is intact from seq 1, and agrees with every on-chain anchor."""
        settings = load_settings()
        contract = deployment(settings).anchor if anchors else None
        _report(checks.verify_action_log(open_store(settings.database_url), contract), as_json)

    @group.command("identity")
    def identity(
        borrower: str = typer.Argument(..., help="The borrower's address."),
        commitment: str | None = typer.Option(None, "--commitment", help="The commitment, 0x + 64 hex digits."),
        record: Path | None = typer.Option(None, "--record", exists=True, dir_okay=False,
                                           help="The KYC record as JSON (needs --salt)."),
        salt: str | None = typer.Option(None, "--salt", help="The record's salt, 0x-hex."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """The commitment of an off-chain KYC record equals the one the registry holds."""
        if (commitment is None) == (record is None):
            raise typer.BadParameter("give either --commitment, or --record with --salt")
        if commitment is not None:
            try:
                value: bytes = bytes.fromhex(commitment.removeprefix("0x"))
            except ValueError:
                raise typer.BadParameter("not hex", param_hint="--commitment") from None
        else:
            if salt is None or record is None:
                raise typer.BadParameter("--record needs --salt")
            value = _commitment_of(json.loads(record.read_text()), bytes.fromhex(salt.removeprefix("0x")))
        settings = load_settings()
        _report(checks.identity(connect(settings), load_manifest(settings), borrower, value), as_json)


def _commitment_of(record: dict, salt: bytes) -> bytes:
    # The vault owns the commitment's definition; import late so `verify index|state` work without it.
    try:
        from ledger.identity import identity_commitment
    except ImportError:
        raise typer.BadParameter("this build has no ledger.identity; pass --commitment instead") from None
    return identity_commitment(record, salt)

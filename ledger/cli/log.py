"""`loanledger log anchor|head`: the action log's head, and anchoring it on-chain now (as the oracle, whose key the
anchor contract admits)."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer
from rich.console import Console

from ledger.action_log import ActionLog
from ledger.chain import NodeUnavailable, ReceiptTimeout, SignerNotConfigured, TransactionFailed, open_client
from ledger.cli._common import deployment, fail
from ledger.config import load_settings
from ledger.errors import ContractRevert
from ledger.store import open_store

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON.")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The hash-chained action log.", no_args_is_help=True)
    app.add_typer(group, name="log")

    @group.command("head")
    def head(as_json: bool = JSON_OPTION) -> None:
        """The last entry's seq and hash, and the last anchor recorded here."""
        actions = ActionLog(open_store(load_settings().database_url))
        last, anchored = actions.head(), actions.last_anchor()
        if as_json:
            typer.echo(json.dumps({"seq": last.seq if last else 0, "head": last.hash if last else None,
                                   "anchored": asdict(anchored) if anchored else None}))
            return
        console = Console()
        console.print(f"seq {last.seq}, head {last.hash}" if last else "the action log is empty")
        console.print(f"last anchor: seq {anchored.seq} in {anchored.tx_hash}" if anchored else "never anchored")

    @group.command("anchor")
    def anchor(signer: str = typer.Option("oracle", "--signer", help="Signer holding ORACLE_ROLE on the anchor."),
               as_json: bool = JSON_OPTION) -> None:
        """Write the log's head and entry count to the ActionLogAnchor contract now (no-op if nothing is new)."""
        settings = load_settings()
        contracts = deployment(settings)
        try:
            client = open_client(settings, signer, contracts.errors, w3=contracts.anchor.w3)
            anchored = ActionLog(open_store(settings.database_url)).anchor(client, contracts.anchor)
        except SignerNotConfigured as exc:
            raise fail(str(exc)) from None
        except ContractRevert as exc:
            hint = f": give '{signer}' ORACLE_ROLE" if exc.name == "AccessControlUnauthorizedAccount" else ""
            raise fail(f"the anchor contract refused: {exc}{hint}") from None
        except (NodeUnavailable, ReceiptTimeout, TransactionFailed) as exc:
            raise fail(str(exc)) from None
        if as_json:
            typer.echo(json.dumps({"anchored": anchored is not None, **(asdict(anchored) if anchored else {})}))
        elif anchored is None:
            Console().print("nothing new since the last anchor")
        else:
            Console().print(f"anchored seq {anchored.seq} (head {anchored.head}) in {anchored.tx_hash}, "
                            f"block {anchored.block_number}")

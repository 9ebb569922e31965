"""`loanledger quote`: what applying for a product gives — the terms the ProductCatalog derives for this principal
and number of installments (its service fee and the net amount paid out), and the repayment schedule computed by the
deployed LoanBook itself.

Nothing is recomputed in Python: the catalogue's `termsFor` is what an application is checked against (it refuses
what an application would be refused for, naming the rule), and the book's `quote` view is the one definition of the
maths, so what this prints is what a loan applied for now will owe.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table
from web3.exceptions import ContractLogicError, ContractPanicError, Web3RPCError

from ledger.book import DAY
from ledger.cli._common import deployment, err, fail
from ledger.config import load_settings
from ledger.products import read_product, read_status, read_terms


def _schedule_table(items: list[dict], principal: int, currency: str) -> Table:
    table = Table(title=f"Schedule (minor units of {currency}; due = days after a disbursement now)")
    for column in ("#", "due (days)", "principal", "interest", "payment", "balance after"):
        table.add_column(column, justify="right")
    balance = principal
    for number, item in enumerate(items, start=1):
        balance -= item["principal"]
        due = item["due"] // DAY if item["due"] % DAY == 0 else f"{item['due'] / DAY:.2f}"
        table.add_row(str(number), str(due), f"{item['principal']:,}", f"{item['interest']:,}",
                      f"{item['principal'] + item['interest']:,}", f"{balance:,}")
    total_principal = sum(i["principal"] for i in items)
    total_interest = sum(i["interest"] for i in items)
    table.add_section()
    table.add_row("total", "", f"{total_principal:,}", f"{total_interest:,}", f"{total_principal + total_interest:,}", "",
                  style="bold")
    return table


def register(app: typer.Typer) -> None:
    @app.command("quote")
    def quote(
        product_id: int = typer.Option(..., "--product", min=1, max=2**32 - 1, help="The product's id."),
        principal: int = typer.Option(..., "--principal", min=1, max=2**96 - 1, help="Minor units."),
        installments: int = typer.Option(..., "--installments", min=1, max=2**16 - 1),
        version: int = typer.Option(None, "--version", min=1, max=2**32 - 1,
                                    help="A version of the product (default: the latest, open to applications)."),
        as_json: bool = typer.Option(False, "--json", help='Print the terms and {"installments": [{"due", "principal", '
                                                           '"interest"}]}.'),
    ) -> None:
        """What applying for a product gives: its terms, service fee and net payout, and the LoanBook's schedule."""
        contracts = deployment(load_settings())
        catalog, book = contracts.catalog, contracts.book
        block = book.w3.eth.block_number  # every read at one block: they agree
        try:
            if version is None:  # an unknown product's latest is 0: refused below as an application would be
                version = read_status(catalog, product_id, block=block).latest_version
            offer = read_terms(catalog, product_id, version, principal, installments, block=block)
            # A monthly schedule's dates depend on the payout's: quoted for a payout at this block's time.
            starts_at = book.w3.eth.get_block(block).timestamp
            raw = book.functions.quote(offer.terms.as_tuple(), starts_at, 0, 0).call(block_identifier=block)
            product = read_product(catalog, product_id, version, block=block)
            within_cap, _, _ = catalog.functions.checkCost(offer.terms.as_tuple(), product.service_fee_bps).call(
                block_identifier=block)
        except (ContractLogicError, ContractPanicError) as exc:
            decoded = contracts.errors.from_exception(exc)
            raise fail(f"no such application: {decoded or exc}", code=2) from None
        except Web3RPCError as exc:
            # A pure view fails this way only when the terms make it too big to compute (e.g. out of gas).
            message = exc.rpc_response.get("error", {}).get("message") if exc.rpc_response else None
            raise fail(f"the node could not compute this schedule ({message or exc})", code=2) from None
        items = [{"due": due - starts_at, "principal": part, "interest": interest} for due, part, interest in raw]
        currency = product.currency_code
        if not within_cap:  # the catalogue refuses such an application unless the cap was raised since
            err.print("[yellow]note:[/] these terms are above the all-in cost cap")
        if as_json:
            typer.echo(json.dumps({
                "product_id": product_id, "product_version": version, "currency": currency, "principal": principal,
                "service_fee": offer.service_fee, "net_paid_out": offer.net_paid_out,
                "auto_approvable": offer.auto_approvable, "within_cost_cap": within_cap, "installments": items}))
            return
        console = Console()
        console.print(f"{product.display_name} (product {product_id}, version {version}): "
                      f"{product.annual_rate_bps / 100:g}% a year, "
                      + ("monthly" if product.interval == 0 else f"every {product.interval / DAY:g} days"))
        console.print(f"service fee {offer.service_fee:,}; paid out {offer.net_paid_out:,} {currency}"
                      + ("" if offer.auto_approvable else "; an operator decides the application"))
        console.print(_schedule_table(items, principal, currency))

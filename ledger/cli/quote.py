"""`loanledger quote`: a product's repayment schedule, computed by the deployed LoanBook itself.

The schedule is never recomputed in Python: the contract's `quote` view is the one definition of the
maths, so what this prints is what a loan with these terms will owe.
"""

from __future__ import annotations

import json
from enum import Enum

import typer
from rich.console import Console
from rich.table import Table
from web3.exceptions import ContractLogicError, ContractPanicError, Web3RPCError

from ledger.book import DAY
from ledger.cli._common import deployment, err, fail
from ledger.config import load_settings
from ledger.typed_data import Amortization, LoanTerms

# Terms a schedule does not depend on, set to values the LoanBook accepts at application.
LATE_FEE_BPS = 500
PENALTY_RATE_BPS = 1_800
DEFAULT_AFTER_DAYS = 90


class AmortizationName(str, Enum):
    annuity = "annuity"
    equal_principal = "equal-principal"
    bullet = "bullet"

    def as_contract(self) -> Amortization:
        return Amortization[self.name.upper()]


def _currency(code: str) -> bytes:
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise typer.BadParameter(f"{code!r} is not a three-letter ISO 4217 code", param_hint="--currency")
    return code.upper().encode()


def _schedule_table(items: list[dict], principal: int, currency: str) -> Table:
    table = Table(title=f"Schedule (minor units of {currency}; due = days after disbursement)")
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
        principal: int = typer.Option(..., "--principal", min=1, max=2**96 - 1, help="Minor units."),
        apr_bps: int = typer.Option(..., "--apr-bps", min=0, max=2**16 - 1, help="Nominal annual rate in bps."),
        installments: int = typer.Option(..., "--installments", min=1, max=2**16 - 1),
        interval_days: int = typer.Option(..., "--interval-days", min=1, max=(2**32 - 1) // DAY,
                                          help="Days between installments."),
        amortization: AmortizationName = typer.Option(..., "--amortization", case_sensitive=False),
        grace_days: int = typer.Option(3, "--grace-days", min=0, max=(2**32 - 1) // DAY,
                                       help="Days after a due date before an installment is late."),
        currency: str = typer.Option("CNY", "--currency", help="ISO 4217 code (labels only)."),
        as_json: bool = typer.Option(False, "--json", help='Print {"installments": [{"due", "principal", "interest"}]}.'),
    ) -> None:
        """The repayment schedule of a product, as the deployed LoanBook computes it."""
        terms = LoanTerms(principal, _currency(currency), apr_bps, amortization.as_contract(), installments,
                          interval_days * DAY, grace_days * DAY, LATE_FEE_BPS, PENALTY_RATE_BPS, DEFAULT_AFTER_DAYS * DAY)
        contracts = deployment(load_settings())
        try:
            raw = contracts.book.functions.quote(terms.as_tuple()).call()
        except (ContractLogicError, ContractPanicError) as exc:
            decoded = contracts.errors.from_exception(exc)
            raise fail(f"the LoanBook cannot quote these terms: {decoded or exc}", code=2) from None
        except Web3RPCError as exc:
            # A pure view fails this way only when the terms make it too big to compute (e.g. out of gas).
            message = exc.rpc_response.get("error", {}).get("message") if exc.rpc_response else None
            raise fail(f"the node could not compute this schedule ({message or exc}): fewer installments?",
                       code=2) from None
        items = [{"due": due, "principal": part, "interest": interest} for due, part, interest in raw]
        cap = contracts.book.functions.maxAnnualRateBps().call()
        if apr_bps > cap:
            err.print(f"[yellow]note:[/] {apr_bps} bps is above the book's cap of {cap} bps; "
                      f"an application with these terms would be refused")
        if as_json:
            typer.echo(json.dumps({"installments": items}))
        else:
            Console().print(_schedule_table(items, principal, currency.upper()))

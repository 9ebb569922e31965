"""`loanledger loan show ID`: one loan as the LoanBook sees it now (chain time), for operators and auditors."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from ledger.book import DAY, RUNNING, LoanStatus, read_amount_due, read_loan, read_progress, solidity_name
from ledger.cli._common import deployment, fail
from ledger.config import load_settings
from ledger.errors import ContractRevert, ErrorDecoder
from ledger.typed_data import Amortization


def _installment_state(number: int, due_at: int, paid: int, status: LoanStatus, now: int, grace: int) -> str:
    if number <= paid:
        return "paid"
    if status not in RUNNING:
        return "not owed" if status != LoanStatus.WRITTEN_OFF else "written off"
    if due_at + grace < now:
        return "overdue"
    return "due" if due_at <= now else "upcoming"


def loan_report(book: Contract, errors: ErrorDecoder, loan_id: int, now: int) -> dict:
    """Everything the book's views say about a loan at `now`; raises ContractRevert for an unknown id."""
    try:
        loan = read_loan(book, loan_id)
    except ContractCustomError as exc:
        raise errors.from_exception(exc) or exc from None
    terms, status = loan.terms, loan.status
    progress = asdict(read_progress(book, loan_id))
    owed = read_amount_due(book, loan_id, now)
    due = {**asdict(owed), "total": owed.total}
    schedule = [{"number": k, "due_at": due_at, "principal": principal, "interest": interest,
                 "state": _installment_state(k, due_at, progress["paid_installments"], status, now, terms.gracePeriod)}
                for k, (due_at, principal, interest) in enumerate(book.functions.schedule(loan_id).call(), start=1)]
    remaining = terms.principal - progress["principal_repaid"]
    return {
        "id": loan_id,
        "status": status.solidity_name,
        "borrower": loan.borrower,
        "disbursed_at": loan.disbursed_at or None,
        "as_of": now,
        "terms": {
            "principal": terms.principal, "currency": terms.currency.rstrip(b"\0").decode(errors="replace"),
            "annual_rate_bps": terms.annualRateBps, "amortization": solidity_name(Amortization(terms.amortization)),
            "installments": terms.installments, "interval": terms.interval, "grace_period": terms.gracePeriod,
            "late_fee_bps": terms.lateFeeBps, "penalty_rate_bps": terms.penaltyRateBps,
            "default_after": terms.defaultAfter,
        },
        "amounts": {
            "principal": terms.principal,
            **{k: v for k, v in progress.items() if k != "accrued_at"},
            "outstanding_principal": remaining if status in RUNNING else 0,
            "written_off_principal": remaining if status == LoanStatus.WRITTEN_OFF else 0,
            "payoff": book.functions.payoffAmount(loan_id, now).call(),
            "due": due,
        },
        "schedule": schedule,
    }


def _when(seconds: int | None, relative: bool) -> str:
    if not seconds:
        return "-"
    if relative:
        return f"+{seconds / DAY:g} d"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _print(report: dict, console: Console) -> None:
    terms, amounts, due = report["terms"], report["amounts"], report["amounts"]["due"]
    cur = terms["currency"]
    summary = Table(show_header=False, box=None, title=f"Loan {report['id']}", title_justify="left")
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("status", report["status"])
    summary.add_row("borrower", report["borrower"])
    summary.add_row("terms", f"{terms['principal']:,} {cur}, {terms['annual_rate_bps']} bps a year, "
                             f"{terms['amortization']}, {terms['installments']} x "
                             + ("monthly, " if terms["interval"] == 0 else f"{terms['interval'] / DAY:g} days, ") +
                             f"grace {terms['grace_period'] / DAY:g} d, late fee {terms['late_fee_bps']} bps, "
                             f"penalty {terms['penalty_rate_bps']} bps, default after {terms['default_after'] / DAY:g} d")
    summary.add_row("disbursed", _when(report["disbursed_at"], relative=False))
    summary.add_row("as of", _when(report["as_of"], relative=False) + " (chain time)")
    summary.add_row("repaid", f"principal {amounts['principal_repaid']:,}, interest {amounts['interest_paid']:,}, "
                              f"late fees {amounts['late_fee_paid']:,}, penalty {amounts['penalty_paid']:,}")
    summary.add_row("outstanding", f"{amounts['outstanding_principal']:,} principal; payoff {amounts['payoff']:,}")
    if amounts["written_off_principal"]:
        summary.add_row("written off", f"{amounts['written_off_principal']:,} principal")
    summary.add_row("due now", f"{due['total']:,} = principal {due['principal']:,} + interest {due['interest']:,} "
                               f"+ late fees {due['late_fee']:,} + penalty {due['penalty']:,}")
    console.print(summary)

    relative = report["disbursed_at"] is None
    table = Table(title=f"Schedule (minor units of {cur})")
    for column, justify in (("#", "right"), ("due", "left"), ("principal", "right"), ("interest", "right"),
                            ("payment", "right"), ("state", "left")):
        table.add_column(column, justify=justify)
    colours = {"paid": "green", "overdue": "red", "due": "yellow"}
    for item in report["schedule"]:
        state = item["state"]
        table.add_row(str(item["number"]), _when(item["due_at"], relative), f"{item['principal']:,}",
                      f"{item['interest']:,}", f"{item['principal'] + item['interest']:,}",
                      f"[{colours[state]}]{state}[/]" if state in colours else state)
    console.print(table)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Loans on the ledger.", no_args_is_help=True)
    app.add_typer(group, name="loan")

    @group.command("show")
    def show(
        loan_id: int = typer.Argument(..., min=1, help="The loan id (1..loanCount)."),
        as_json: bool = typer.Option(False, "--json", help="Print the loan as JSON (amounts in minor units)."),
    ) -> None:
        """A loan's terms, status, borrower, amounts repaid, outstanding and due now, and its schedule."""
        contracts = deployment(load_settings())
        now = contracts.book.w3.eth.get_block("latest")["timestamp"]
        try:
            report = loan_report(contracts.book, contracts.errors, loan_id, now)
        except ContractRevert as exc:
            if exc.name == "LoanBookUnknownLoan":
                raise fail(f"loan {loan_id} does not exist ({exc}); there are "
                           f"{contracts.book.functions.loanCount().call()} loans") from None
            raise fail(f"the LoanBook refused: {exc}") from None
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            _print(report, Console())

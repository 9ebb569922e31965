"""The `loanledger` command line: one typer app; each module in this package adds its own commands.

A module here defines `register(app: typer.Typer) -> None`; the app is assembled from all of them,
so adding a command group never means editing a central list.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(name="loanledger", help="LoanLedger: a permissioned-ledger lending system.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)


# The oracle and the API bring their own command groups; the ledger does not import them otherwise.
_EXTENSIONS = ("oracle.cli", "api.cli")


def _register_all() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}").register(app)
    for name in _EXTENSIONS:
        importlib.import_module(name).register(app)


_register_all()


def main() -> None:
    app()

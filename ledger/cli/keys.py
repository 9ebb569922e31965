"""`loanledger keys init|rotate|status`: the PII vault's key-encryption keys (KEKs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from ledger.config import Settings, load_settings
from ledger.store import open_store
from ledger.store.base import Base
from ledger.store.models.pii import PII_TABLES
from ledger.vault import KEK_ENV, KeyFile, Keyring, Vault, VaultError, keyring_from_settings

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON.")


def open_vault(settings: Settings, keyring: Keyring) -> Vault:
    sessions = open_store(settings.database_url)
    # Until the store's migrations carry the vault's tables, create them here (a no-op once they do).
    Base.metadata.create_all(sessions.kw["bind"], tables=PII_TABLES)
    return Vault(sessions, keyring)


@contextmanager
def _clear_errors() -> Iterator[None]:
    try:
        yield
    except VaultError as exc:
        Console(stderr=True).print(f"[red]error[/]: {exc}", highlight=False)
        raise typer.Exit(1) from None


def _keys_in_settings(settings: Settings) -> bool:
    return settings.kek is not None  # LOANLEDGER_KEK (or `kek` in the config file) instead of the key file


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Key-encryption keys of the PII vault.", no_args_is_help=True)
    app.add_typer(group, name="keys")

    @group.command("init")
    def init() -> None:
        """Create the key file (mode 600) with a first KEK if there is none, and the vault's tables."""
        settings, console = load_settings(), Console()
        with _clear_errors():
            if _keys_in_settings(settings):
                keyring = keyring_from_settings(settings)
                console.print(f"KEKs come from {KEK_ENV} (versions {keyring.versions}); no key file written")
            elif KeyFile(settings.kek_path).exists():
                keyring = KeyFile(settings.kek_path).load()
                console.print(f"key file {settings.kek_path} already exists (current version {keyring.current})")
            else:
                keyring = KeyFile(settings.kek_path).create()
                console.print(f"created {settings.kek_path} with KEK version {keyring.current}: back it up, "
                              "without it the vault cannot be read", highlight=False)
            open_vault(settings, keyring).ensure_index_key()

    @group.command("rotate")
    def rotate(
        retire_unused: bool = typer.Option(
            False, "--retire-unused",
            help="Afterwards drop from the key file the versions nothing uses (only when no other process "
                 "still runs with the old keys)."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Add a new KEK version to the key file and re-wrap every record's data key with it, atomically.

        With LOANLEDGER_KEK, put the new key in the variable first ("1:<old>,2:<new>"): this re-wraps to
        the highest version there.
        """
        settings = load_settings()
        with _clear_errors():
            if _keys_in_settings(settings):
                if retire_unused:
                    raise typer.BadParameter(f"remove old versions from {KEK_ENV} yourself",
                                             param_hint="--retire-unused")
                keyring = keyring_from_settings(settings)
            else:
                keyring = KeyFile(settings.kek_path).add_version()  # on disk before any DEK is wrapped with it
            vault = open_vault(settings, keyring)
            report = vault.rotate()
            retired: list[int] = []
            if retire_unused:
                in_use = vault.kek_versions_in_use()
                retired = [v for v in keyring.versions if v != keyring.current and v not in in_use]
                if retired:
                    KeyFile(settings.kek_path).retire(set(retired))
        if as_json:
            typer.echo(json.dumps({"to_version": report.to_version, "records": report.records,
                                   "vault_keys": report.vault_keys,
                                   "previous": {str(v): n for v, n in report.previous.items()}, "retired": retired}))
            return
        moved = ", ".join(f"{n} from v{v}" for v, n in sorted(report.previous.items())) or "nothing to move"
        Console().print(f"re-wrapped {report.records} record keys and {report.vault_keys} vault keys to KEK "
                        f"v{report.to_version} ({moved})" + (f"; retired {retired}" if retired else ""),
                        highlight=False)

    @group.command("status")
    def status(as_json: bool = JSON_OPTION) -> None:
        """KEK versions held, which ones wrap data, and which could be retired; exit 1 if one is missing."""
        settings = load_settings()
        with _clear_errors():
            keyring = keyring_from_settings(settings)
            in_use = open_vault(settings, keyring).kek_versions_in_use()
        missing = sorted(set(in_use) - set(keyring.versions))
        retirable = [v for v in keyring.versions if v != keyring.current and v not in in_use]
        if as_json:
            typer.echo(json.dumps({"source": keyring.source, "current": keyring.current,
                                   "versions": keyring.versions, "in_use": {str(v): n for v, n in in_use.items()},
                                   "retirable": retirable, "missing": missing}))
        else:
            console = Console()
            console.print(f"KEKs from {keyring.source}: versions {keyring.versions}, current v{keyring.current}",
                          highlight=False)
            for version, count in in_use.items():
                console.print(f"  v{version}: wraps {count} keys", highlight=False)
            if retirable:
                console.print(f"  retirable (unused): {retirable}", highlight=False)
            for version in missing:
                console.print(f"  [red]missing[/]: v{version} wraps data but is not in the keyring", highlight=False)
        if missing:
            raise typer.Exit(1)

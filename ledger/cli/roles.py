"""`loanledger roles`: who holds which role on each deployed contract, read from the chain.

Holders come from the AccessControl events (RoleGranted/RoleRevoked) since deployment, not from the
manifest: the manifest records the grants made at deployment, the chain also knows every grant and
revocation since. Where the two differ, the difference is shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.table import Table
from web3 import Web3
from web3.contract import Contract

from ledger.cli._common import deployment
from ledger.config import load_settings
from ledger.contracts import Bindings

DEFAULT_ADMIN_ROLE = b"\0" * 32
ROLE_GRANTED = bytes(Web3.keccak(text="RoleGranted(bytes32,address,address)"))
ROLE_REVOKED = bytes(Web3.keccak(text="RoleRevoked(bytes32,address,address)"))
LOG_RANGE = 5_000  # blocks per eth_getLogs request; public nodes cap ranges, anvil does not care


def role_names(contract: Contract) -> dict[bytes, str]:
    """Role id -> name, for the `*_ROLE` constants the contract's ABI declares."""
    names = {DEFAULT_ADMIN_ROLE: "DEFAULT_ADMIN_ROLE"}
    for item in contract.abi:
        if (item["type"] == "function" and item["name"].endswith("_ROLE") and not item["inputs"]
                and [o["type"] for o in item["outputs"]] == ["bytes32"]):
            names[bytes(contract.functions[item["name"]]().call())] = item["name"]
    return names


def _ranges(start: int, end: int) -> Iterator[tuple[int, int]]:
    while start <= end:
        yield start, min(end, start + LOG_RANGE - 1)
        start += LOG_RANGE


def role_holders(contract: Contract, from_block: int, to_block: int) -> dict[str, list[str]]:
    """Role name (or 0x id for a role the ABI does not name) -> current holders, in order of grant."""
    names = role_names(contract)
    holders: dict[str, dict[str, None]] = {name: {} for name in names.values()}
    granted, revoked = contract.events.RoleGranted(), contract.events.RoleRevoked()
    topics = [[Web3.to_hex(ROLE_GRANTED), Web3.to_hex(ROLE_REVOKED)]]
    for start, end in _ranges(from_block, to_block):
        logs = contract.w3.eth.get_logs({"address": contract.address, "fromBlock": start, "toBlock": end,
                                         "topics": topics})
        # The node returns logs in chain order, which is the order the grants took effect.
        for raw in logs:
            is_grant = bytes(raw["topics"][0]) == ROLE_GRANTED
            args = (granted if is_grant else revoked).process_log(raw)["args"]
            role = names.get(bytes(args["role"])) or Web3.to_hex(args["role"])
            members = holders.setdefault(role, {})
            if is_grant:
                members[Web3.to_checksum_address(args["account"])] = None
            else:
                members.pop(Web3.to_checksum_address(args["account"]), None)
    return {role: list(members) for role, members in holders.items()}


def roles_report(contracts: Bindings) -> dict:
    """Every contract's roles and holders at the latest block, and how they differ from the manifest."""
    manifest = contracts.manifest
    head = contracts.book.w3.eth.block_number
    report: dict = {"network": manifest.network, "chain_id": manifest.chain_id, "block": head, "contracts": {},
                    "differences": [],
                    # Distinct SCORE_SIGNER_ROLE signatures a credit report needs, now (the manifest: at deployment).
                    "signer_threshold": contracts.oracle.functions.signerThreshold().call()}
    for name, deployed in manifest.contracts.items():
        roles = role_holders(contracts.by_name(name), deployed.block, head)
        report["contracts"][name] = {"address": Web3.to_checksum_address(deployed.address), "roles": roles}
        granted = manifest.granted(name)
        for role, holders in roles.items():
            expected = {Web3.to_checksum_address(a) for a in granted.get(role, [])}
            for account in holders:
                if account not in expected:
                    report["differences"].append({"contract": name, "role": role, "account": account,
                                                  "change": "granted after deployment"})
            for account in sorted(expected - set(holders)):
                report["differences"].append({"contract": name, "role": role, "account": account,
                                              "change": "revoked after deployment"})
    return report


def _print(report: dict, console: Console) -> None:
    later = {(d["contract"], d["role"], d["account"]) for d in report["differences"]
             if d["change"] == "granted after deployment"}
    console.print(f"Roles on [bold]{report['network']}[/] (chain {report['chain_id']}) at block {report['block']}")
    for name, contract in report["contracts"].items():
        table = Table(title=f"{name} {contract['address']}", title_justify="left")
        table.add_column("role", no_wrap=True)
        table.add_column("holder", no_wrap=True, min_width=42)  # an address is never cut short
        table.add_column("note", overflow="fold")
        for role, holders in contract["roles"].items():
            for k, account in enumerate(holders or ["[dim]nobody[/]"]):
                note = "[yellow]granted after deployment[/]" if (name, role, account) in later else ""
                table.add_row(role if k == 0 else "", account, note)
        console.print(table)
    signers = len(report["contracts"].get("CreditOracle", {}).get("roles", {}).get("SCORE_SIGNER_ROLE", []))
    console.print(f"Score reports need {report['signer_threshold']} of the {signers} score signers' signatures")
    for d in report["differences"]:
        if d["change"] == "revoked after deployment":
            console.print(f"[yellow]revoked after deployment:[/] {d['role']} of {d['account']} on {d['contract']}")


def register(app: typer.Typer) -> None:
    @app.command("roles")
    def roles(as_json: bool = typer.Option(False, "--json", help="Print the roles as JSON.")) -> None:
        """Each contract's roles and their current holders, from the chain's grant and revoke events."""
        report = roles_report(deployment(load_settings()))
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            _print(report, Console())

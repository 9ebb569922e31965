"""Who may do what: the contracts' roles (granted and revoked by the admin, who signs each change with their own
wallet; api.services.four_eyes relays them, alone or as proposals), the score signer's rotation, and the auditors
the admin admits (kept in the store: auditing is off-chain reading).

The role cache of the API (`api.auth.RoleResolver`) is the caller's to refresh for the accounts returned.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, select
from web3.contract.contract import ContractFunction

from api.errors import ApiError
from ledger.deploy import contracts_checking
from ledger.manifest import CONTRACT_NAMES
from ledger.store.models.api import Auditor

CONTRACT_ROLES = {"operator": "OPERATOR_ROLE", "oracle": "ORACLE_ROLE", "pauser": "PAUSER_ROLE",
                  "admin": "DEFAULT_ADMIN_ROLE", "score_signer": "SCORE_SIGNER_ROLE"}
ALL_CONTRACTS = CONTRACT_NAMES


def default_contracts(role: str, grant: bool) -> list[str]:
    """Where a grant or revocation of `role` goes unless the admin names contracts: a grant only where a contract
    checks the role, as the deploy grants it (least privilege); a revocation, and the admin role, everywhere."""
    role_name = CONTRACT_ROLES[role]
    if not grant or role_name == "DEFAULT_ADMIN_ROLE":
        return list(ALL_CONTRACTS)
    return contracts_checking(role_name)


def role_calls(context, role: str, account: str, contracts: list[str] | None,
               grant: bool) -> list[tuple[str, ContractFunction]]:
    """(contract name, call) granting (or revoking) `role` to `account` on each of `contracts` (default:
    `default_contracts`) that has the role and differs: what the admin signs, in this order."""
    out = []
    for name in default_contracts(role, grant) if contracts is None else contracts:
        try:
            contract = context.bindings.by_name(name)
        except KeyError:
            raise ApiError(422, "unknown_contract", f"no contract {name!r}") from None
        role_name = CONTRACT_ROLES[role]
        if not any(f.get("name") == role_name for f in contract.abi):
            continue  # e.g. SCORE_SIGNER_ROLE exists on the credit oracle only
        role_id = contract.functions[role_name]().call()
        if contract.functions.hasRole(role_id, account).call() == grant:
            continue
        change = contract.functions.grantRole if grant else contract.functions.revokeRole
        out.append((name, change(role_id, account)))
    return out


def rotation_calls(context, old: str, new: str) -> tuple[list[tuple[str, ContractFunction]],
                                                         list[tuple[str, ContractFunction]]]:
    """The score signer's rotation on the credit oracle: (the grant to `new`, the revocation of `old`)."""
    return (role_calls(context, "score_signer", new, ["CreditOracle"], True),
            role_calls(context, "score_signer", old, ["CreditOracle"], False))


def auditors(context) -> list[str]:
    with context.sessions() as session:
        return list(session.scalars(select(Auditor.address).order_by(Auditor.address)))


def add_auditor(context, address: str, actor: str, request_id: str) -> None:
    with context.sessions.begin() as session:
        session.merge(Auditor(address=address, added_by=actor, added_at=int(time.time())))
    context.action_log.append(actor, "auditor.add", request_id, {"auditor": address})


def remove_auditor(context, address: str, actor: str, request_id: str) -> None:
    with context.sessions.begin() as session:
        session.execute(delete(Auditor).where(Auditor.address == address))
    context.action_log.append(actor, "auditor.remove", request_id, {"auditor": address})

"""Pause and unpause every contract with the pauser service account."""

from __future__ import annotations

from api.services.transactions import Sent, record


def set_paused(context, pause: bool, actor: str, request_id: str) -> list[Sent]:
    """Pauses (or unpauses) each contract that is not so already; one transaction per contract changed."""
    pauser = context.signer("pauser")
    out = []
    for contract in context.bindings.all:
        if contract.functions.paused().call() == pause:
            continue
        fn = contract.functions.pause() if pause else contract.functions.unpause()
        out.append(record(context, actor, "system.pause" if pause else "system.unpause", request_id,
                          {"contract": contract.address}, pauser.transact(fn)))
    return out

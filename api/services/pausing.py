"""Pause and unpause every contract: each pause is a call the pauser signs with their own wallet, relayed by
the API (api.services.signed_requests)."""

from __future__ import annotations

from collections.abc import Sequence

from web3.contract.contract import ContractFunction

from api.services.signed_requests import Signed, check_and_relay_all
from api.services.transactions import Sent, record


def pause_calls(context, pause: bool) -> list[ContractFunction]:
    """One call per contract that is not so already (what the pauser signs, in this order)."""
    return [contract.functions.pause() if pause else contract.functions.unpause()
            for contract in context.bindings.all if contract.functions.paused().call() != pause]


def set_paused(context, pause: bool, actor: str, signed: Sequence[Signed], request_id: str) -> list[Sent]:
    """Pauses (or unpauses) each contract that is not so already; one relayed transaction per contract changed."""
    calls = pause_calls(context, pause)
    receipts = check_and_relay_all(context, actor, calls, signed)
    return [record(context, actor, "system.pause" if pause else "system.unpause", request_id,
                   {"contract": call.address}, receipt, signed_by=actor) for call, receipt in zip(calls, receipts)]

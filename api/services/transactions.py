"""A transaction a service sent, recorded in the action log with who asked and under which request."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.encoding import to_0x_hex


@dataclass(frozen=True)
class Sent:
    """What a caller needs of a sent transaction: the action it did, its hash and its block."""

    action: str
    tx_hash: str
    block_number: int


def record(context, actor: str, action: str, request_id: str, details: dict, receipt) -> Sent:
    """Appends `action` to the action log (with the transaction's hash) and returns the transaction."""
    sent = Sent(action, to_0x_hex(receipt["transactionHash"]), receipt["blockNumber"])
    context.action_log.append(actor, action, request_id, {**details, "tx": sent.tx_hash})
    return sent

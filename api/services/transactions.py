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
    signed_by: str | None = None  # who signed it with their own wallet; None: a service account sent it


def record(context, actor: str, action: str, request_id: str, details: dict, receipt,
           signed_by: str | None = None) -> Sent:
    """Appends `action` to the action log (with the transaction's hash, and who signed it when a person did) and
    returns the transaction."""
    sent = Sent(action, to_0x_hex(receipt["transactionHash"]), receipt["blockNumber"], signed_by)
    signed = {} if signed_by is None else {"signed_by": signed_by}
    context.action_log.append(actor, action, request_id, {**details, **signed, "tx": sent.tx_hash})
    return sent

"""The oracle anchors the action log's head on-chain every `anchor_interval` seconds (when it grew).

Anchoring is what makes a wholesale rewrite of the log detectable. The anchor contract admits only the oracle's
key (ORACLE_ROLE): an anchor decides nothing, it attests what the shared store's log holds, so the process that
brings off-chain facts on-chain writes it and the API holds no key for it. `loanledger log anchor` anchors at once
with the same key. Both go through ActionLog.anchor, which is a no-op when nothing new was logged and safe when
two processes race (the contract refuses an anchor that is not forward).
"""

from __future__ import annotations

from sqlalchemy.orm import sessionmaker
from web3.contract import Contract

from ledger.action_log import ActionLog, Anchored
from ledger.chain import ChainClient


class Anchorer:
    def __init__(self, sessions: sessionmaker, client: ChainClient, anchor: Contract):
        self.log, self.client = ActionLog(sessions), client
        self.anchor = client.w3.eth.contract(address=anchor.address, abi=anchor.abi)  # on the client's node

    def anchor_once(self) -> Anchored | None:
        """Anchors the head if the log grew since the last anchor; what was anchored, or None."""
        return self.log.anchor(self.client, self.anchor)

"""The API anchors its action log's head on-chain every `anchor_interval` seconds (when it grew).

Anchoring is what makes a wholesale rewrite of the log detectable; the operator can also anchor at
any time with `loanledger log anchor`. Both go through ActionLog.anchor, which is a no-op when nothing
new was logged and safe when two processes race (the contract refuses an anchor that is not forward).
"""

from __future__ import annotations

from api.periodic import Periodic


class Anchorer(Periodic):
    def __init__(self, context, interval: float):
        super().__init__("action-log-anchor", interval, self.anchor_once)
        self.context = context

    def anchor_once(self):
        context = self.context
        return context.action_log.anchor(context.signer("operator"), context.bindings.anchor)

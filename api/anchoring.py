"""The API anchors its action log's head on-chain every `anchor_interval` seconds (when it grew).

Anchoring is what makes a wholesale rewrite of the log detectable; the operator can also anchor at
any time with `loanledger log anchor`. Both go through ActionLog.anchor, which is a no-op when nothing
new was logged and safe when two processes race (the contract refuses an anchor that is not forward).
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Anchorer:
    def __init__(self, context, interval: float):
        self.context, self.interval = context, interval
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def anchor_once(self):
        context = self.context
        return context.action_log.anchor(context.signer("operator"), context.bindings.anchor)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                anchored = self.anchor_once()
                if anchored is not None:
                    log.info("action log anchored: %s", anchored)
            except Exception:  # noqa: BLE001 - node down, no key yet: the next round tries again
                log.exception("action log anchoring failed; retrying in %.0fs", self.interval)

    def start(self) -> None:
        if self.interval > 0 and self.thread is None:
            self.thread = threading.Thread(target=self._run, name="action-log-anchor", daemon=True)
            self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

"""Jobs the API process runs on a timer, each on its own thread: the automatic policy's credit refunds.

A round that fails (the node down, the rail away) is logged and tried again next round: a timer job must
never take the process down, and never stop for good on one failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, interval: float, job: Callable[[], Any]):
        self.name, self.interval, self.job = name, interval, job
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def run_once(self) -> Any:
        return self.job()

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                result = self.job()
                if result:
                    log.info("%s: %s", self.name, result)
            except Exception:  # node down, rail away, no key yet: the next round tries again
                log.exception("%s failed; retrying in %.0fs", self.name, self.interval)

    def start(self) -> None:
        """Starts the timer; an interval of 0 means the job runs only when asked (`run_once`)."""
        if self.interval > 0 and self.thread is None:
            self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

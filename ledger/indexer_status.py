"""What the store says about its indexers: how far they got, when one last finished a round, what they set aside.

Read by the API's /readyz and /metrics and by `loanledger indexer poison`; written only by ledger.indexer. The
indexer runs as its own process (`loanledger index --follow`, one of `loanledger run`'s), so its liveness is
judged from the heartbeat it leaves in the store, which any indexer writing to this store keeps fresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from ledger.store.models.chain import IndexerCursor, PoisonEvent


@dataclass(frozen=True)
class IndexerStatus:
    block_number: int        # the last block the read model holds; -1 when nothing was indexed yet
    polled_at: int | None    # unix seconds of the newest heartbeat; None when no indexer has written one
    poison_events: int       # events set aside because their projection raised

    def silence(self, now: float) -> float | None:
        """Seconds since the last heartbeat; None when there is none."""
        return None if self.polled_at is None else max(0.0, now - self.polled_at)


def read_status(sessions: sessionmaker) -> IndexerStatus:
    with sessions() as session:
        block, polled = session.execute(select(func.max(IndexerCursor.block_number),
                                               func.max(IndexerCursor.polled_at))).one()
        poisoned = session.scalar(select(func.count()).select_from(PoisonEvent)) or 0
    return IndexerStatus(block_number=-1 if block is None else block, polled_at=polled, poison_events=poisoned)


def poison_events(sessions: sessionmaker) -> list[PoisonEvent]:
    """Every event set aside, oldest block first."""
    with sessions() as session:
        return list(session.scalars(select(PoisonEvent).order_by(PoisonEvent.block_number, PoisonEvent.log_index)))

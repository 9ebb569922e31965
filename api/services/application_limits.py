"""What one borrower can make the lender pay for: every application is relayed on-chain at the lender's cost, so
a borrower gets at most `applications_per_hour` relayed applications in any hour and at most `open_applications`
loans open (Requested or Approved, not yet paid out) at a time. Both are checked before anything is relayed, inside
the application's idempotency claim: a replay of an answered key never gets here, so it does not count twice, and
a refusal (429) releases the claim, so the same key may be retried once the limit allows.

Where the open count comes from: the chain has no per-borrower count, so it is the read model's open loans plus
what the read model cannot show yet, from the store's idempotency claims of this route: the borrower's other
applications still running (claimed, unanswered: relaying, or waiting for the policy or the indexer) and those
answered with a loan in the last IN_FLIGHT_HORIZON seconds that the indexer has not stored yet (an answer waits
for the index, `wait_indexed`, but gives up after `index_wait`). The claim of the request being checked is
committed before the check, so of two racing applications at least the later one sees the other: they never
both pass (when both see each other both are refused, and a retry passes). This holds across API processes
sharing the store, with no lock. A claim left by an API process that died before relaying (idempotency.abandoned,
no transaction recorded) holds no slot: it made no loan.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from limits import parse
from sqlalchemy import func, select
from web3 import Web3

from api.errors import ApiError
from api.idempotency import abandoned
from api.ratelimit import RateLimiter
from ledger.book import LoanStatus
from ledger.store.models.api import IdempotencyRecord
from ledger.store.models.chain import Loan

ROUTE = "POST /v1/loans"  # the idempotency route name of an application
OPEN = (LoanStatus.REQUESTED.name.title(), LoanStatus.APPROVED.name.title())
# Seconds after which what an application claim did is in the read model (the indexer follows the chain block by
# block; a relay and its policy take at most tx_timeout each): older claims are not counted twice.
IN_FLIGHT_HORIZON = 300
# A borrower at the open limit waits for a decision or cancels: no time tells when. Retry-After is a polling hint.
OPEN_RETRY_AFTER = 60


def check_open(context, borrower: str, key: str) -> None:
    """Refuses (429) the application claimed under (`borrower`, `key`) if the borrower's open applications are at
    the limit. Checked first, before the signature and the relay's estimate: no hourly slot is spent on it."""
    open_now = open_applications(context, borrower, key)
    most = context.settings.open_applications
    if open_now >= most:
        raise ApiError(429, "too_many_open_applications",
                       f"{open_now} applications are open (at most {most} in Requested or Approved, not yet paid "
                       f"out); cancel one or wait for a decision before applying again",
                       {"retry-after": str(OPEN_RETRY_AFTER)})


def counted(context, limiter: RateLimiter, borrower: str, record_tx: Callable[[str], None]) -> Callable[[str], None]:
    """The relay's `before_send`: counts the application in the borrower's hourly window (429 once over it, and then
    nothing is sent), once however often the relay re-signs, then records the transaction on the claim. So only
    what is relayed counts: an application refused before sending (a bad signature, or a refusal of the catalogue
    or the book that the relay's estimate finds) costs the lender nothing and spends no slot."""
    item = parse(f"{context.settings.applications_per_hour}/hour")
    hits: list[str] = []

    def before_send(tx_hash: str) -> None:
        if not hits:
            limiter.hit("loan_application", borrower.lower(), item, code="too_many_applications",
                        what="loan applications")
            hits.append(tx_hash)
        record_tx(tx_hash)
    return before_send


def open_applications(context, borrower: str, key: str) -> int:
    """The borrower's open loans in the read model, plus their other applications it does not show yet."""
    borrower = Web3.to_checksum_address(borrower)
    since = int(time.time()) - IN_FLIGHT_HORIZON
    with context.sessions() as session:
        indexed = session.scalar(select(func.count()).select_from(Loan).where(
            Loan.borrower == borrower, Loan.status.in_(OPEN))) or 0
        claims = session.scalars(select(IdempotencyRecord).where(
            IdempotencyRecord.principal == borrower, IdempotencyRecord.route == ROUTE,
            IdempotencyRecord.key != key, IdempotencyRecord.created_at >= since)).all()
        now = time.time()
        # A claim whose process died before sending anything made no loan and never will: not open. One that
        # recorded a transaction may have made one (reconciled on its retry): open until the horizon.
        running = sum(1 for c in claims if c.status_code is None and (c.tx_hash or not abandoned(c, now)))
        answers = [json.loads(c.response) for c in claims if c.status_code == 201 and c.response]
        made = [answer["loan_id"] for answer in answers if answer.get("status") in OPEN]
        unindexed = len(made) - (session.scalar(select(func.count()).select_from(Loan).where(
            Loan.id.in_(made))) or 0) if made else 0
    return indexed + running + unindexed

"""Reconciliation: a provider's settlement statement for one UTC day against the ledger.

Each statement line is found on the ledger by the hash the chain knows it by, payment_ref =
keccak256("<provider>:<rail reference>") (oracle.payments.inbound.payment_ref), in the read model's confirmed
payments. A line lands in one category:

- matched: on-chain with the same amount;
- amount_differs: on-chain with another amount;
- rail_only: on the rail, not on-chain; with the outbox's status and reason when the oracle received it
  (rejected or set aside: received but not applied), none when its webhook never arrived;
- chain_only: a payment confirmed on-chain, dated that day, whose reference no line of the statement carries
  (a confirmation the rail never made: credited by hand, by another provider's key, or forged).

Every row also names the suspense item of its reference, if there is one (a payment received and not
applied: refused on-chain, set aside, or refused by the intake, which leaves no outbox row), with its state.

Money going back is a line of its own with its own reference: a refund, a reversal (a collection charged back) or
a return (a payout sent back) is matched by the credit refund, reversal or payout reversal on-chain, while the
payment it reverses stays matched by its own entry (nothing on-chain is deleted). A suspense refund never goes
on-chain: its line is matched by the suspense item's refund order (kind `suspense_refund`); a chargeback of a
payment held in suspense by the oracle's record of it (kind `suspense_reversal`: the item is `reversed`). A repayment that
overpaid is matched by what the book applied plus what it held as credit.

So for every statement, lines = matched + amount_differs + rail_only. Chain-only payments are those of this
provider (by the outbox row that confirmed them) and those no outbox row explains; a payment the oracle
confirmed for another provider belongs to that provider's report.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from ledger.encoding import to_0x_hex
from ledger.store.models.chain import Payment
from ledger.store.models.outbox import OutboxItem
from ledger.store.models.suspense import RefundOrder, SuspenseItem
from oracle.payments.inbound import payment_ref
from oracle.payments.provider import (
    PaymentProvider,
    ProviderError,
    StatementEntry,
    StatementUnsupported,
)
from oracle.suspense import TAKEN_FROM_SUSPENSE

log = logging.getLogger(__name__)

MATCHED, AMOUNT_DIFFERS, RAIL_ONLY, CHAIN_ONLY = "matched", "amount_differs", "rail_only", "chain_only"
CATEGORIES = (MATCHED, AMOUNT_DIFFERS, RAIL_ONLY, CHAIN_ONLY)
CSV_COLUMNS = ("category", "provider", "reference", "payment_ref", "direction", "kind", "loan_id", "rail_amount",
               "ledger_amount", "currency", "paid_at", "outbox_status", "outbox_reason", "suspense_item_id",
               "suspense_state")


@dataclass(frozen=True)
class ReconciliationRow:
    category: str
    provider: str | None
    reference: str | None  # the rail's reference (None for a chain-only payment no outbox row explains)
    payment_ref: str  # 0x-hex, as on-chain
    direction: str | None = None  # the rail's: payout | collection | refund | reversal | return
    kind: str | None = None  # the ledger's: disbursement | repayment | recovery | credit_refund | reversal | ...
    loan_id: int | None = None
    rail_amount: int | None = None
    ledger_amount: int | None = None
    currency: str | None = None
    paid_at: int | None = None
    outbox_status: str | None = None  # rail-only lines the oracle received: why they are not on-chain
    outbox_reason: str | None = None
    suspense_item_id: int | None = None  # the payment held in suspense (refunded, applied or still open)
    suspense_state: str | None = None


@dataclass
class Reconciliation:
    provider: str
    day: date
    rows: list[ReconciliationRow] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CATEGORIES, 0)
        for row in self.rows:
            counts[row.category] += 1
        return counts

    @property
    def unmatched(self) -> int:
        return len(self.rows) - self.counts[MATCHED]

    @property
    def balanced(self) -> bool:
        return self.unmatched == 0

    def as_json(self) -> dict:
        # Ids and amounts as strings: they may be past what a JSON reader's doubles hold exactly.
        rows = [{k: str(v) if k in ("loan_id", "rail_amount", "ledger_amount") and v is not None else v
                 for k, v in asdict(row).items()} for row in self.rows]
        return {"provider": self.provider, "date": self.day.isoformat(), "counts": self.counts,
                "statement_lines": sum(1 for row in self.rows if row.category != CHAIN_ONLY),
                "unmatched": self.unmatched, "balanced": self.balanced, "rows": rows}

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
        return out.getvalue()


def day_bounds(day: date) -> tuple[int, int]:
    """[start, end) of a UTC day in unix seconds."""
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    return start, start + int(timedelta(days=1).total_seconds())


def _taken_from_suspense(seen: OutboxItem | None) -> bool:
    return seen is not None and seen.status == "done" and seen.outcome == TAKEN_FROM_SUSPENSE


def received_amount(paid: Payment) -> int:
    """What the rail moved for an on-chain payment: an overpaying repayment is applied in part (`amount`) and the
    rest held as the borrower's credit (`credit`), one line of the statement for both."""
    return paid.amount + (paid.credit if paid.kind == "repayment" else 0)


def reconcile(provider: str, day: date, statement: Iterable[StatementEntry],
              sessions: sessionmaker) -> Reconciliation:
    """Sorts each statement line, and each on-chain payment of the day, into its category (see the module)."""
    lines = {to_0x_hex(payment_ref(provider, entry.reference)): entry for entry in statement}
    start, end = day_bounds(day)
    with sessions() as session:
        on_chain = {p.payment_ref: p for p in session.scalars(
            select(Payment).where(Payment.payment_ref.in_(list(lines)))).unique()} if lines else {}
        received = {o.payment_ref: o for o in session.scalars(
            select(OutboxItem).where(OutboxItem.payment_ref.in_(list(lines))))} if lines else {}
        held = {i.payment_ref: i for i in session.scalars(
            select(SuspenseItem).where(SuspenseItem.payment_ref.in_(list(lines))))} if lines else {}
        # Suspense refunds never go on-chain: the refund order the operator placed is their ledger entry.
        refunds = [entry.reference for entry in lines.values() if entry.direction == "refund"]
        refunded = {r.refund_reference: r for r in session.scalars(
            select(RefundOrder).where(RefundOrder.provider == provider, RefundOrder.refund_reference.in_(refunds)))
        } if refunds else {}
        of_the_day = list(session.scalars(
            select(Payment).where(Payment.paid_at >= start, Payment.paid_at < end)).unique())
        result = Reconciliation(provider, day)
        for ref, entry in lines.items():
            paid = on_chain.get(ref)
            suspended = held.get(ref)
            base = {"provider": provider, "reference": entry.reference, "payment_ref": ref,
                    "direction": entry.direction, "loan_id": entry.loan_id, "rail_amount": entry.amount,
                    "currency": entry.currency, "paid_at": entry.paid_at,
                    "suspense_item_id": suspended.id if suspended else None,
                    "suspense_state": suspended.state if suspended else None}
            off_book = refunded.get(entry.reference) if paid is None else None
            if off_book is not None:
                category = MATCHED if off_book.amount == entry.amount else AMOUNT_DIFFERS
                result.rows.append(ReconciliationRow(category, **base, kind="suspense_refund",
                                                     ledger_amount=off_book.amount))
            elif paid is None and _taken_from_suspense(received.get(ref)):
                # A chargeback of money held in suspense never goes on-chain: the oracle's row is its entry.
                seen = received[ref]
                category = MATCHED if seen.amount == entry.amount else AMOUNT_DIFFERS
                result.rows.append(ReconciliationRow(category, **base, kind="suspense_reversal",
                                                     ledger_amount=seen.amount))
            elif paid is None:
                seen = received.get(ref)
                result.rows.append(ReconciliationRow(
                    RAIL_ONLY, **base, outbox_status=seen.status if seen else None,
                    outbox_reason=(seen.last_error or seen.outcome) if seen else None))
            else:
                # What the rail delivered is what the book applied plus what it held as credit.
                category = MATCHED if received_amount(paid) == entry.amount else AMOUNT_DIFFERS
                result.rows.append(ReconciliationRow(category, **base, kind=paid.kind,
                                                     ledger_amount=received_amount(paid)))
        for paid in of_the_day:
            if paid.payment_ref in lines or paid.provider not in (None, provider):
                continue
            result.rows.append(ReconciliationRow(
                CHAIN_ONLY, provider=paid.provider, reference=paid.rail_reference, payment_ref=paid.payment_ref,
                kind=paid.kind, loan_id=paid.loan_id, ledger_amount=received_amount(paid), paid_at=paid.paid_at))
    return result


class StatementUnavailable(ProviderError):
    """A provider did not hand over its statement for the day (not answering, or in a layout we cannot read)."""


def reconcile_day(providers: Mapping[str, PaymentProvider], day: date,
                  sessions: sessionmaker) -> tuple[list[Reconciliation], dict[str, str]]:
    """Each provider's statement for `day` against the ledger: (the reports, {provider skipped: why}).

    What `loanledger rail reconcile` and the API's reconciliation route both run. A provider whose adapter reads
    no statements is skipped; one that does not answer raises `StatementUnavailable` naming it.
    """
    reports, skipped = [], {}
    for name, provider in providers.items():
        try:
            statement = provider.statement(day)
        except StatementUnsupported as exc:
            skipped[name] = str(exc)
            continue
        except ProviderError as exc:
            raise StatementUnavailable(f"{name}'s statement for {day}: {exc}") from exc
        reports.append(reconcile(name, day, statement, sessions))
    return reports, skipped


class ScheduledReconciliation:
    """The oracle's daily run: the previous UTC day of every provider that publishes statements.

    Each round reconciles yesterday again, so an item that settles late (an outbox item that waited for the
    node) leaves the count; `unmatched` is what the last complete run found, per provider, for the gauge
    `loanledger_oracle_reconciliation_unmatched`. A provider that does not answer keeps its last figures and is
    asked again next round; one whose adapter reads no statements is skipped.
    """

    def __init__(self, providers: Mapping[str, PaymentProvider], sessions: sessionmaker,
                 clock: Callable[[], float] = time.time):
        self.providers, self.sessions, self.clock = dict(providers), sessions, clock
        self.results: dict[str, Reconciliation] = {}
        self._unsupported: set[str] = set()

    @property
    def unmatched(self) -> dict[str, int]:
        return {name: result.unmatched for name, result in self.results.items()}

    def run_once(self) -> dict[str, Reconciliation]:
        day = datetime.fromtimestamp(self.clock(), UTC).date() - timedelta(days=1)
        for name, provider in self.providers.items():
            if name in self._unsupported:
                continue
            try:
                statement = provider.statement(day)
            except StatementUnsupported as exc:
                log.info("reconciliation: %s; skipped", exc)
                self._unsupported.add(name)
                continue
            except ProviderError as exc:
                log.warning("reconciliation: %s's statement for %s: %s; asking again next round", name, day, exc)
                continue
            result = reconcile(name, day, statement, self.sessions)
            self.results[name] = result
            (log.info if result.balanced else log.warning)(
                "reconciliation %s %s: %s", name, day, ", ".join(f"{c} {n}" for c, n in result.counts.items()))
        return self.results

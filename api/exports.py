"""Exports of whole datasets (loans, events, payments) as CSV with a header row or as a JSON array, streamed in
batches of short sessions, in the list routes' order; amounts are written as integers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import Select, select

from api.audit_queries import EVENT_ORDER, LOAN_ORDER, PAYMENT_ORDER
from api.paging import Keyset, page
from api.schemas import LoanOut
from api.schemas.audit import EventOut, PaymentOut
from ledger.store.models.chain import ChainEvent, Loan, Payment

EXPORT_BATCH = 1_000


class Dataset(str, Enum):
    loans = "loans"
    events = "events"
    payments = "payments"


class ExportFormat(str, Enum):
    csv = "csv"
    json = "json"


LOAN_COLUMNS = tuple(name for name in LoanOut.model_fields if name != "schedule")
EVENT_COLUMNS = tuple(EventOut.model_fields)
PAYMENT_COLUMNS = tuple(PaymentOut.model_fields)


@dataclass(frozen=True)
class Export:
    columns: tuple[str, ...]
    order: Keyset
    query: Callable[[], Select]
    row: Callable[[Any], dict[str, Any]]


EXPORTS = {
    Dataset.loans: Export(LOAN_COLUMNS, LOAN_ORDER, lambda: select(Loan),
                          lambda r: {c: getattr(r, c) for c in LOAN_COLUMNS}),
    Dataset.events: Export(EVENT_COLUMNS, EVENT_ORDER, lambda: select(ChainEvent),
                           lambda r: EventOut.model_validate(r).model_dump()),
    Dataset.payments: Export(PAYMENT_COLUMNS, PAYMENT_ORDER, lambda: select(Payment),
                             lambda r: PaymentOut.model_validate(r).model_dump()),
}


def export_rows(sessions, spec: Export) -> Iterator[dict[str, Any]]:
    """Every row of the dataset in its stable order, read in batches (one short session each)."""
    after = None
    while True:
        with sessions() as session:
            rows, after = page(session, spec.query(), spec.order, after, EXPORT_BATCH)
            batch = [spec.row(r) for r in rows]
        yield from batch
        if after is None:
            return


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)  # amounts are ints: written as integers, never in exponent form


def csv_text(columns: tuple[str, ...], rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for n, row in enumerate(rows, 1):
        writer.writerow([_cell(row[c]) for c in columns])
        if n % EXPORT_BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_array(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield "["
    for n, row in enumerate(rows):
        yield ("," if n else "") + json.dumps(row, separators=(",", ":"))
    yield "]"

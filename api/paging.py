"""Keyset paging: a stable total order over a table, and an opaque cursor to resume after a row.

A page boundary never drops or repeats a row even while the indexer appends, because the next page
starts after the last key shown, not at an offset.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from api.errors import ApiError

MAX_KEY = 2**63 - 1  # cursors carry BIGINT keys


def encode_cursor(key: tuple) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, types: tuple[type, ...]) -> tuple | None:
    """The key a cursor carries; 422 `invalid_cursor` for anything this API did not hand out."""
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(key, list) and len(key) == len(types)
                and all(type(v) is t for v, t in zip(key, types, strict=True))
                and all(0 <= v <= MAX_KEY for v in key if isinstance(v, int))):
            raise ValueError
    except ValueError:  # also binascii.Error, JSONDecodeError, UnicodeDecodeError
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API returned: start without it") from None
    return tuple(key)


@dataclass(frozen=True)
class Keyset:
    """A stable total order over a table, and how to resume after a row."""

    columns: tuple  # ORM columns, most significant first (one or two)
    types: tuple[type, ...]

    def query(self, query: Select, after: tuple | None, limit: int) -> Select:
        if after is not None:
            first = self.columns[0]
            if len(self.columns) == 1:
                query = query.where(first > after[0])
            else:
                second = self.columns[1]
                query = query.where(or_(first > after[0], and_(first == after[0], second > after[1])))
        return query.order_by(*self.columns).limit(limit + 1)

    def key(self, row: Any) -> tuple:
        return tuple(getattr(row, column.key) for column in self.columns)


def page(session: Session, query: Select, order: Keyset, after: tuple | None, limit: int) -> tuple[list, tuple | None]:
    """Up to `limit` rows after `after`, and the key to resume from (None on the last page)."""
    rows = list(session.scalars(order.query(query, after, limit)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, order.key(rows[-1])


def next_cursor(key: tuple | None) -> str | None:
    return None if key is None else encode_cursor(key)

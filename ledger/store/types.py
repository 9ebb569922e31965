"""Column types shared by the models."""

from __future__ import annotations

from sqlalchemy import Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

_DIGITS = 78  # enough for any uint256


class MinorUnits(TypeDecorator[int]):
    """A non-negative integer up to uint256 (money in minor units, ids): exact on every backend.

    PostgreSQL gets NUMERIC(78, 0). SQLite has no exact type past int64 (a larger integer literal
    silently becomes a REAL), so there it is zero-padded text: exact, and it still sorts and
    compares numerically. Sum such columns in Python or on PostgreSQL, not with SQLite's SUM.
    """

    impl = Numeric(_DIGITS, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(_DIGITS))
        return dialect.type_descriptor(Numeric(_DIGITS, 0))

    def process_bind_param(self, value, dialect: Dialect):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"amounts are ints of minor units, got {type(value).__name__}: {value!r}")
        if value < 0 or value >= 10**_DIGITS:
            raise ValueError(f"amount out of range: {value}")
        return str(value).zfill(_DIGITS) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect: Dialect):
        return None if value is None else int(value)

    @property
    def python_type(self) -> type:
        return int

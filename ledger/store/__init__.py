"""The off-chain store: SQLAlchemy 2 models, sessions and migrations (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from sqlalchemy.orm import sessionmaker

from ledger.store.migration import migrate


def open_store(url: str) -> sessionmaker:
    """Migrate the database at `url` to the newest schema and return a session factory for it."""
    return sessionmaker(migrate(url), expire_on_commit=False)


__all__ = ["migrate", "open_store"]

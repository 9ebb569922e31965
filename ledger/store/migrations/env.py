"""Alembic environment: the engine comes from ledger.store.migration (or sqlalchemy.url for the CLI)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

import ledger.store.models  # noqa: F401 - registers every table on Base.metadata
from ledger.store.base import Base, make_engine

# Any constant works; it only has to be the same for every LoanLedger process.
_PG_MIGRATION_LOCK = 0x4C6F616E  # "Loan"


def run_migrations_online() -> None:
    config = context.config
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url", "")
    engine = config.attributes.get("engine") or make_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # API, oracle and indexer all migrate on start: let one do it while the others wait.
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            connection.commit()
        try:
            context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True,
                              render_as_batch=connection.dialect.name == "sqlite")
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
                connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_migrations_online()

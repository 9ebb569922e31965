"""The off-chain store: SQLAlchemy 2 models, sessions and migrations (SQLite by default, PostgreSQL by URL)."""

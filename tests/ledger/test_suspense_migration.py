"""Migration 0012 on SQLite and PostgreSQL: items written before it keep their data, an item without an
outbox row can be stored after it, one item per (provider, reference), and it downgrades."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from ledger.store.base import make_engine
from ledger.store.migration import alembic_config

COLUMNS = ("provider, reference, payment_ref, loan_id, amount, currency, reason, received_at, state, created_at, "
           "updated_at")


def _insert(connection, outbox_item_id, reference: str, **extra) -> None:
    names = ", ".join(dict.fromkeys(["outbox_item_id", *COLUMNS.split(", "), *extra]))
    values = {"outbox_item_id": outbox_item_id, "provider": "mockpay", "reference": reference,
              "payment_ref": "0x" + "ab" * 32, "loan_id": 7, "amount": 24_394, "currency": "CNY",
              "reason": "LoanBookOverpayment", "received_at": 1, "state": "open", "created_at": 1, "updated_at": 1,
              **extra}
    if connection.dialect.name == "sqlite":  # MinorUnits is zero-padded text there
        values.update(loan_id=str(values["loan_id"]).zfill(78), amount=str(values["amount"]).zfill(78))
    connection.execute(text(f"INSERT INTO suspense_items ({names}) VALUES "
                            f"({', '.join(':' + n.strip() for n in names.split(','))})"), values)


def test_0012_keeps_old_items_and_lets_an_item_have_no_outbox_row(db_url):
    engine = make_engine(db_url)
    config = alembic_config(engine)
    try:
        command.upgrade(config, "0008")
        with engine.begin() as connection:
            _insert(connection, 41, "COL-1")
        command.upgrade(config, "head")
        with engine.begin() as connection:
            row = connection.execute(text("SELECT outbox_item_id, reference, reason, detail, event_id, paid_at "
                                          "FROM suspense_items")).one()
            assert tuple(row) == (41, "COL-1", "LoanBookOverpayment", None, None, None)
            _insert(connection, None, "COL-2", detail="loan_id: 2**256", event_id="evt_2", paid_at=5)
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _insert(connection, None, "COL-2")  # the same payment again
        with engine.begin() as connection:
            _insert(connection, None, "COL-2", provider="otherpay")  # another provider's reference
        columns = {c["name"]: c for c in inspect(engine).get_columns("suspense_items")}
        assert columns["outbox_item_id"]["nullable"] is True
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM suspense_items WHERE outbox_item_id IS NULL"))
        command.downgrade(config, "0008")
        assert "detail" not in {c["name"] for c in inspect(engine).get_columns("suspense_items")}
        with engine.begin() as connection:
            assert connection.execute(text("SELECT outbox_item_id FROM suspense_items")).scalars().all() == [41]
        command.upgrade(config, "head")
    finally:
        engine.dispose()

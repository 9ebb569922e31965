"""the loan book's money model in the read model: credit balances, recoveries, reversals

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ledger.store.types

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNITS = ledger.store.types.MinorUnits(precision=78, scale=0)


_NEW_AMOUNTS = {'loans': ('credit_balance', 'recovered'), 'payments': ('credit', 'recovery')}


def upgrade() -> None:
    # Added nullable, filled with zero through the column type (SQLite keeps amounts as zero-padded text, so a
    # server default of '0' would not be the stored form of 0), then made NOT NULL.
    for table, columns in _NEW_AMOUNTS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.add_column(sa.Column(column, _UNITS, nullable=True))
        typed = sa.table(table, *(sa.column(column, _UNITS) for column in columns))
        op.execute(typed.update().values({column: 0 for column in columns}))
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(column, existing_type=_UNITS, nullable=False)
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reverses', sa.String(length=66), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_column('reverses')
        batch_op.drop_column('recovery')
        batch_op.drop_column('credit')
    with op.batch_alter_table('loans', schema=None) as batch_op:
        batch_op.drop_column('recovered')
        batch_op.drop_column('credit_balance')

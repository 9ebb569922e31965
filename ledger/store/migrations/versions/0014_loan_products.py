"""loans record the product version their terms came from, its service fee and methods

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 12:30:00.000000

Applications are by product now: the terms are the product version's, with an up-front service fee, a
frequency, a day count and an early-repayment method, and the request says whether the automatic policy may
approve it. Existing rows (loans made before products) keep product 0 and the defaults they were made with.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ledger.store.types

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('loans') as batch:
        batch.add_column(sa.Column('service_fee', ledger.store.types.MinorUnits(precision=78, scale=0),
                                   nullable=False, server_default='0'))
        batch.add_column(sa.Column('frequency', sa.String(length=16), nullable=False,
                                   server_default='FixedInterval'))
        batch.add_column(sa.Column('day_count', sa.String(length=16), nullable=False,
                                   server_default='Actual365Fixed'))
        batch.add_column(sa.Column('early_repayment', sa.String(length=32), nullable=False,
                                   server_default='ReduceInstallments'))
        batch.add_column(sa.Column('product_id', sa.BigInteger(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('product_version', sa.BigInteger(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('auto_approvable', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index('ix_loans_product', ['product_id', 'product_version'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('loans') as batch:
        batch.drop_index('ix_loans_product')
        for column in ('auto_approvable', 'product_version', 'product_id', 'early_repayment', 'day_count',
                       'frequency', 'service_fee'):
            batch.drop_column(column)

"""credit refund orders: an Overpaid loan's credit paid back over the rail, once

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ledger.store.types

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_UNITS = ledger.store.types.MinorUnits(precision=78, scale=0)


def upgrade() -> None:
    op.create_table('credit_refund_orders',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('loan_id', _UNITS, nullable=False),
    sa.Column('payment_ref', sa.String(length=66), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('payment_reference', sa.String(length=64), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('amount', _UNITS, nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('refund_reference', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('ordered_by', sa.String(length=42), nullable=False),
    sa.Column('ordered_at', sa.BigInteger(), nullable=False),
    sa.Column('sent_at', sa.BigInteger(), nullable=True),
    sa.Column('settled_at', sa.BigInteger(), nullable=True),
    sa.Column('failed_at', sa.BigInteger(), nullable=True),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_refund_orders')),
    sa.UniqueConstraint('idempotency_key', name='uq_credit_refund_orders_idempotency_key')
    )
    op.create_index('ix_credit_refund_orders_loan_id', 'credit_refund_orders', ['loan_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_credit_refund_orders_loan_id', table_name='credit_refund_orders')
    op.drop_table('credit_refund_orders')

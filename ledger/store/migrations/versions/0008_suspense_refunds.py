"""suspense items (received money the loan book refused) and their refund orders

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 07:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ledger.store.types

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_UNITS = ledger.store.types.MinorUnits(precision=78, scale=0)


def upgrade() -> None:
    op.create_table('suspense_items',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('outbox_item_id', sa.BigInteger(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('payment_ref', sa.String(length=66), nullable=False),
    sa.Column('loan_id', _UNITS, nullable=False),
    sa.Column('amount', _UNITS, nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('resolved_by', sa.String(length=42), nullable=True),
    sa.Column('resolved_at', sa.BigInteger(), nullable=True),
    sa.Column('refund_order_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suspense_items')),
    sa.UniqueConstraint('outbox_item_id', name='uq_suspense_items_outbox_item_id')
    )
    op.create_index('ix_suspense_items_state', 'suspense_items', ['state'], unique=False)
    op.create_table('refund_orders',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('suspense_item_id', sa.BigInteger(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('payment_reference', sa.String(length=64), nullable=False),
    sa.Column('loan_id', _UNITS, nullable=False),
    sa.Column('amount', _UNITS, nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('refund_reference', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('ordered_by', sa.String(length=42), nullable=False),
    sa.Column('ordered_at', sa.BigInteger(), nullable=False),
    sa.Column('sent_at', sa.BigInteger(), nullable=True),
    sa.Column('refunded_at', sa.BigInteger(), nullable=True),
    sa.Column('failed_at', sa.BigInteger(), nullable=True),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refund_orders')),
    sa.UniqueConstraint('idempotency_key', name='uq_refund_orders_idempotency_key'),
    sa.UniqueConstraint('suspense_item_id', name='uq_refund_orders_suspense_item_id')
    )


def downgrade() -> None:
    op.drop_table('refund_orders')
    op.drop_index('ix_suspense_items_state', table_name='suspense_items')
    op.drop_table('suspense_items')

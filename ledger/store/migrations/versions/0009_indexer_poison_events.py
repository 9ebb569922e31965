"""indexer poison events (set aside, never a stall) and the indexer's heartbeat

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 08:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('indexer_poison_events',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('contract', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=42), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('tx_hash', sa.String(length=66), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('loan_id', sa.BigInteger(), nullable=True),
    sa.Column('borrower', sa.String(length=42), nullable=True),
    sa.Column('error_type', sa.String(length=128), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('first_seen', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_indexer_poison_events')),
    sa.UniqueConstraint('tx_hash', 'log_index', name='uq_indexer_poison_events_tx_hash_log_index')
    )
    op.add_column('indexer_cursor', sa.Column('polled_at', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column('indexer_cursor', 'polled_at')
    op.drop_table('indexer_poison_events')

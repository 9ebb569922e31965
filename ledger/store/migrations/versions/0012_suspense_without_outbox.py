"""suspense items without an outbox item: refused webhooks are held too, one item per rail reference

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 09:00:00.000000

A webhook the intake refuses (a loan id past uint256, an unknown currency...) never gets an outbox row, so
`outbox_item_id` becomes nullable and the uniqueness moves to what identifies a received payment: the
provider and its own reference. Batch mode: SQLite alters a column by copying the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('suspense_items') as batch:
        batch.alter_column('outbox_item_id', existing_type=sa.BigInteger(), nullable=True)
        batch.drop_constraint('uq_suspense_items_outbox_item_id', type_='unique')
        batch.create_unique_constraint('uq_suspense_items_provider_reference', ['provider', 'reference'])
        batch.create_index('ix_suspense_items_outbox_item_id', ['outbox_item_id'], unique=False)
        batch.add_column(sa.Column('detail', sa.Text(), nullable=True))
        batch.add_column(sa.Column('event_id', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('paid_at', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # Only when every item has its outbox row: an item the intake held has none to point back to.
    with op.batch_alter_table('suspense_items') as batch:
        batch.drop_column('paid_at')
        batch.drop_column('event_id')
        batch.drop_column('detail')
        batch.drop_index('ix_suspense_items_outbox_item_id')
        batch.drop_constraint('uq_suspense_items_provider_reference', type_='unique')
        batch.create_unique_constraint('uq_suspense_items_outbox_item_id', ['outbox_item_id'])
        batch.alter_column('outbox_item_id', existing_type=sa.BigInteger(), nullable=False)

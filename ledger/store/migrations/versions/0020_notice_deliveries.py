"""notice deliveries: SMS notices on their way to the borrower; the language each borrower reads them in

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 04:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('notice_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('notification_id', sa.BigInteger(), nullable=False),
    sa.Column('borrower', sa.String(length=42), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('facts', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.BigInteger(), nullable=False),
    sa.Column('claimed_at', sa.BigInteger(), nullable=True),
    sa.Column('provider', sa.String(length=16), nullable=True),
    sa.Column('provider_reference', sa.String(length=128), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice_deliveries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_notice_deliveries_idempotency_key')),
    sa.UniqueConstraint('notification_id', name=op.f('uq_notice_deliveries_notification_id'))
    )
    op.create_index('ix_notice_deliveries_status', 'notice_deliveries', ['status'], unique=False)
    op.create_index(op.f('ix_notice_deliveries_borrower'), 'notice_deliveries', ['borrower'], unique=False)
    op.create_table('borrower_languages',
    sa.Column('borrower', sa.String(length=42), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('borrower', name=op.f('pk_borrower_languages'))
    )


def downgrade() -> None:
    op.drop_table('borrower_languages')
    op.drop_index(op.f('ix_notice_deliveries_borrower'), table_name='notice_deliveries')
    op.drop_index('ix_notice_deliveries_status', table_name='notice_deliveries')
    op.drop_table('notice_deliveries')

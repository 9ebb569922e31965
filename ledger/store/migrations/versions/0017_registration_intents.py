"""registration intents: completed KYCs the oracle registers on-chain

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 00:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('registration_intents',
    sa.Column('borrower', sa.String(length=42), nullable=False),
    sa.Column('commitment', sa.String(length=66), nullable=False),
    sa.Column('kyc_expires_at', sa.BigInteger(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=64), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.BigInteger(), nullable=False),
    sa.Column('tx_hash', sa.String(length=66), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('borrower', name=op.f('pk_registration_intents')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_registration_intents_idempotency_key'))
    )
    op.create_index('ix_registration_intents_status', 'registration_intents', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_registration_intents_status', table_name='registration_intents')
    op.drop_table('registration_intents')

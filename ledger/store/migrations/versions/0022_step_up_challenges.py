"""step-up challenges: one-time codes bound to an action and its parameters (applying, a phone change, a reschedule)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01 04:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('step_up_challenges',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('address', sa.String(length=42), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('binding', sa.String(length=64), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('used_at', sa.BigInteger(), nullable=True),
    sa.Column('used_for', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_step_up_challenges'))
    )
    with op.batch_alter_table('step_up_challenges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_step_up_challenges_address'), ['address'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('step_up_challenges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_step_up_challenges_address'))
    op.drop_table('step_up_challenges')

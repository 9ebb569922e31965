"""the outbox names the earlier payment a refund or reversal returns

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('oracle_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reverses', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('oracle_outbox', schema=None) as batch_op:
        batch_op.drop_column('reverses')

"""idempotency_keys: the claim's owner and the transaction it signed, so a crashed claim can be reconciled

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 07:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column('tx_hash', sa.String(length=66), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_column('tx_hash')
        batch_op.drop_column('owner')

"""registration intents: wallet recovery (kind `recover`, the wallet it moves from), held for an operator

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 04:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('registration_intents') as batch:
        batch.add_column(sa.Column('recovered_from', sa.String(length=42), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('registration_intents') as batch:
        batch.drop_column('recovered_from')

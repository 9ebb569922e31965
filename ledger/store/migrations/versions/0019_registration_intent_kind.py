"""registration intents: a kind, register or update (a KYC renewal sends updateBorrower)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 04:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('registration_intents') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='register'))


def downgrade() -> None:
    with op.batch_alter_table('registration_intents') as batch:
        batch.drop_column('kind')

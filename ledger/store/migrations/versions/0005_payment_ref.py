"""payments.reference is the on-chain hash: named payment_ref

The rail's own reference is not a column of `payments`: it is kept beside its hash in the oracle's
outbox (oracle_outbox.reference, unique per payment_ref) and joined when payments are read.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 06:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.alter_column('reference', new_column_name='payment_ref')


def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.alter_column('payment_ref', new_column_name='reference')

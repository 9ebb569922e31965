"""debit mandates and collection intents: automatic debit on the due date (issue 17)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 05:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ledger.store.types

revision: str = '0023'
down_revision: str | None = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_AMOUNT = ledger.store.types.MinorUnits(precision=78, scale=0)


def upgrade() -> None:
    op.create_table('debit_mandates',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('loan_id', sa.BigInteger(), nullable=False),
    sa.Column('borrower', sa.String(length=42), nullable=False),
    sa.Column('card', sa.String(length=32), nullable=False),
    sa.Column('max_amount', _AMOUNT, nullable=False),
    sa.Column('valid_until', sa.BigInteger(), nullable=False),
    sa.Column('nonce', sa.BigInteger(), nullable=False),
    sa.Column('signature', sa.String(length=132), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.Column('revocation_signature', sa.String(length=132), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_debit_mandates')),
    sa.UniqueConstraint('borrower', 'nonce', name='uq_debit_mandates_borrower_nonce')
    )
    with op.batch_alter_table('debit_mandates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_debit_mandates_loan_id'), ['loan_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_debit_mandates_borrower'), ['borrower'], unique=False)
    op.create_table('collection_intents',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('mandate_id', sa.BigInteger(), nullable=False),
    sa.Column('loan_id', sa.BigInteger(), nullable=False),
    sa.Column('due_at', sa.BigInteger(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('amount', _AMOUNT, nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('retry_at', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection_intents')),
    sa.UniqueConstraint('key', name='uq_collection_intents_key')
    )
    with op.batch_alter_table('collection_intents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_collection_intents_mandate_id'), ['mandate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_collection_intents_loan_id'), ['loan_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('collection_intents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_collection_intents_loan_id'))
        batch_op.drop_index(batch_op.f('ix_collection_intents_mandate_id'))
    op.drop_table('collection_intents')
    with op.batch_alter_table('debit_mandates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_debit_mandates_borrower'))
        batch_op.drop_index(batch_op.f('ix_debit_mandates_loan_id'))
    op.drop_table('debit_mandates')

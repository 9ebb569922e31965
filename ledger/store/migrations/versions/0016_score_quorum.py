"""score quorum: report proposals and the score signers' signatures or refusals

Revision ID: 0016
Revises: 0014
Create Date: 2026-11-30 19:30:00.000000

Numbered 0016 because 0015 was taken by a parallel change: when both are merged, this one revises 0015.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ledger.store.types

revision: str = '0016'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('score_proposals',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('report_id', ledger.store.types.MinorUnits(precision=78, scale=0), nullable=False),
    sa.Column('model_version', sa.BigInteger(), nullable=False),
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('oracle', sa.String(length=42), nullable=False),
    sa.Column('entries', sa.Text(), nullable=False),
    sa.Column('digest', sa.String(length=66), nullable=False),
    sa.Column('threshold', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('tx_hash', sa.String(length=66), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('deadline', sa.BigInteger(), nullable=False),
    sa.Column('decided_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_score_proposals'))
    )
    op.create_index('ix_score_proposals_state', 'score_proposals', ['state'], unique=False)
    op.create_table('score_signatures',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('proposal_id', _ID, nullable=False),
    sa.Column('signer', sa.String(length=42), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('signature', sa.String(length=132), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('disputed', sa.Text(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['score_proposals.id'],
                            name=op.f('fk_score_signatures_proposal_id_score_proposals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_score_signatures')),
    sa.UniqueConstraint('proposal_id', 'signer', name='uq_score_signatures_proposal_id')
    )


def downgrade() -> None:
    op.drop_table('score_signatures')
    op.drop_index('ix_score_proposals_state', table_name='score_proposals')
    op.drop_table('score_proposals')

"""four_eyes_proposals: FourEyes' proposals indexed from their events (the proposals list reads them)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 03:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import sqlalchemy as sa
from alembic import op

from ledger.store.proposals import (
    CONTRACT,
    PROPOSAL_EVENTS,
    ProposalEventError,
    fold_proposal,
)

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    proposals = op.create_table('four_eyes_proposals',
    sa.Column('proposal_id', sa.String(length=66), nullable=False),
    sa.Column('proposer', sa.String(length=42), nullable=False),
    sa.Column('target', sa.String(length=42), nullable=False),
    sa.Column('selector', sa.String(length=10), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('nonce', sa.BigInteger(), nullable=False),
    sa.Column('proposed_block', sa.BigInteger(), nullable=False),
    sa.Column('proposed_at', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('closed_by', sa.String(length=42), nullable=True),
    sa.Column('closed_block', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('proposal_id', name=op.f('pk_four_eyes_proposals'))
    )
    op.create_index('ix_four_eyes_proposals_state', 'four_eyes_proposals', ['state'], unique=False)
    _backfill(proposals)


def _backfill(proposals: sa.Table) -> None:
    """A store indexed before this revision already holds FourEyes' events, and the indexer does not read them
    again: project them here, as the indexer would have (set-aside events left out). A proposal whose events do not
    replay is left out too; the indexer rebuilds it when its next event comes."""
    events = sa.table('events', sa.column('contract', sa.String), sa.column('name', sa.String),
                      sa.column('args', sa.JSON), sa.column('block_number', sa.BigInteger),
                      sa.column('block_time', sa.BigInteger), sa.column('tx_hash', sa.String),
                      sa.column('log_index', sa.Integer))
    poison = sa.table('indexer_poison_events', sa.column('tx_hash', sa.String), sa.column('log_index', sa.Integer))
    bind = op.get_bind()
    skip = {tuple(r) for r in bind.execute(sa.select(poison.c.tx_hash, poison.c.log_index))}
    rows = [r for r in bind.execute(sa.select(events).where(events.c.contract == CONTRACT,
                                                            events.c.name.in_(PROPOSAL_EVENTS))
                                    .order_by(events.c.block_number, events.c.log_index))
            if (r.tx_hash, r.log_index) not in skip]
    folded = []
    for _, of_one in groupby(sorted(rows, key=lambda r: r.args['proposalId']), key=lambda r: r.args['proposalId']):
        try:
            folded.append(fold_proposal(sorted(of_one, key=lambda r: (r.block_number, r.log_index))))
        except ProposalEventError:
            continue
    if folded:
        op.bulk_insert(proposals, folded)


def downgrade() -> None:
    op.drop_index('ix_four_eyes_proposals_state', table_name='four_eyes_proposals')
    op.drop_table('four_eyes_proposals')

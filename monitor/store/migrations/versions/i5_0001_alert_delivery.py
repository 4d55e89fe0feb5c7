"""alert delivery: outbox leases, error history, batches; stories on items

Revision ID: i5_0001
Revises: i3_0001
Create Date: 2026-11-26 19:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'i5_0001'
down_revision: str | None = 'i3_0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('errors', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('batch', sa.String(length=64), nullable=True))

    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('story_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('title_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('simhash', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_items_story_id'), ['story_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_items_story_id'))
        batch_op.drop_column('simhash')
        batch_op.drop_column('title_key')
        batch_op.drop_column('story_id')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('batch')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('errors')

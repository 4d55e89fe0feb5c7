"""items.last_seen_at: when a feed last served the item (retention prunes on it)

Revision ID: i7_0001
Revises: i5_0001
Create Date: 2026-11-26 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'i7_0001'
down_revision: str | None = "i5_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(), nullable=True))
    op.execute('UPDATE items SET last_seen_at = fetched_at')
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.alter_column('last_seen_at', existing_type=sa.DateTime(), nullable=False)
        batch_op.create_index(batch_op.f('ix_items_last_seen_at'), ['last_seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_items_last_seen_at'))
        batch_op.drop_column('last_seen_at')

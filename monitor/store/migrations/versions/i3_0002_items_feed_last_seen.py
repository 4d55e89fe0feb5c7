"""items: an index on (feed_id, last_seen_at) for the 304 refresh of a feed's items

Revision ID: i3_0002
Revises: i8_0001
Create Date: 2026-11-26 20:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "i3_0002"
down_revision: str | None = "i8_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index("ix_items_feed_id_last_seen_at", ["feed_id", "last_seen_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_feed_id_last_seen_at")

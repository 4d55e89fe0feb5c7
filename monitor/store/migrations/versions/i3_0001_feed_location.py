"""feeds: fetch_url after permanent redirects, gone_at after 410, health_alerted_at

Revision ID: i3_0001
Revises: 0001
Create Date: 2026-11-26 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i3_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fetch_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("gone_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("health_alerted_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.drop_column("health_alerted_at")
        batch_op.drop_column("gone_at")
        batch_op.drop_column("fetch_url")

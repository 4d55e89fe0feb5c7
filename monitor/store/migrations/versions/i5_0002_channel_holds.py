"""channel_holds: a channel's Retry-After, so no worker sends to it before then

Revision ID: i5_0002
Revises: i3_0002
Create Date: 2026-11-26 21:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i5_0002"
down_revision: str | None = "i3_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_holds",
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_channel_holds")),
    )


def downgrade() -> None:
    op.drop_table("channel_holds")

"""Storage: SQLAlchemy models, Alembic migrations and the Store. SQLite by default."""

from .db import create, migrate, schema_status
from .repo import (
    FeedRow,
    FetchState,
    NewItem,
    NewMatch,
    PendingAlert,
    PollCounts,
    Store,
    StoredItem,
)

__all__ = [
    "FeedRow",
    "FetchState",
    "NewItem",
    "NewMatch",
    "PendingAlert",
    "PollCounts",
    "Store",
    "StoredItem",
    "create",
    "migrate",
    "schema_status",
]

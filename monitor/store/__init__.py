"""Storage: SQLAlchemy models, Alembic migrations and the Store. SQLite by default."""

from .db import create, migrate, schema_status
from .housekeeping import Pruned, StoreStats
from .repo import (
    FeedRow,
    FetchState,
    NewItem,
    NewMatch,
    PendingAlert,
    PollCounts,
    Source,
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
    "Pruned",
    "Source",
    "Store",
    "StoreStats",
    "StoredItem",
    "create",
    "migrate",
    "schema_status",
]

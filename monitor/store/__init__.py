"""Storage: SQLAlchemy models, Alembic migrations and the Store. SQLite by default."""

from .cluster import ExclusiveLock, exclusive
from .db import create, migrate, schema_status
from .housekeeping import Pruned, StoreStats
from .repo import (
    AuditEntry,
    Edit,
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
    "AuditEntry",
    "Edit",
    "ExclusiveLock",
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
    "exclusive",
    "migrate",
    "schema_status",
]

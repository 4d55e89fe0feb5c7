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
    StateWrite,
    Store,
    StoredItem,
    SubscriptionRow,
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
    "StateWrite",
    "Store",
    "StoreStats",
    "StoredItem",
    "SubscriptionRow",
    "create",
    "exclusive",
    "migrate",
    "schema_status",
]

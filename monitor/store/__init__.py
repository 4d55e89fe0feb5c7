"""Storage: SQLAlchemy models, Alembic migrations and the Store. SQLite by default."""

from .cluster import ExclusiveLock, exclusive
from .db import create, migrate, schema_status
from .housekeeping import Pruned, StoreStats
from .matches import MatchRow, recent_matches, watchlist_names
from .repo import (
    AuditEntry,
    Edit,
    FeedRow,
    FetchState,
    NewItem,
    NewMatch,
    PendingAlert,
    PollCounts,
    PollWrite,
    Source,
    StateWrite,
    Store,
    StoredItem,
    SubscriptionRow,
)
from .users import Accounts, SessionInfo, UserRow

__all__ = [
    "Accounts",
    "AuditEntry",
    "Edit",
    "ExclusiveLock",
    "FeedRow",
    "FetchState",
    "MatchRow",
    "NewItem",
    "NewMatch",
    "PendingAlert",
    "PollCounts",
    "PollWrite",
    "Pruned",
    "SessionInfo",
    "Source",
    "StateWrite",
    "Store",
    "StoreStats",
    "StoredItem",
    "SubscriptionRow",
    "UserRow",
    "create",
    "exclusive",
    "migrate",
    "recent_matches",
    "schema_status",
    "watchlist_names",
]

"""monitor: a news-feed watch daemon.

Polls feeds, matches every new item against watchlists of keywords and actors,
stores the matches and alerts the right people through apprise.
"""

__version__ = "0.1.0"

from .errors import (
    AlertError,
    ConfigError,
    FeedError,
    MonitorError,
    Problem,
    QueryError,
    StoreError,
)

__all__ = [
    "AlertError",
    "ConfigError",
    "FeedError",
    "MonitorError",
    "Problem",
    "QueryError",
    "StoreError",
    "__version__",
]

"""The one error root of monitor.

    MonitorError
    ├── ConfigError   settings file, watchlists, channel URLs (carries every Problem found)
    ├── QueryError    a malformed rule: position and reason
    ├── FeedError     a feed that could not be fetched or parsed
    ├── StoreError    the database
    ├── NotFound      a watchlist, feed or user that is not there (catalog edits)
    └── AlertError    a channel that could not be reached

Errors a user sees name the file, the field or the feed, and say what to do.
Foreign errors are wrapped with ``raise ... from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Base of every error monitor raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration file: where, and why."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"


class ConfigError(MonitorError):
    """The configuration is invalid; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class QueryError(MonitorError):
    """A rule could not be parsed. ``column`` is 1-based."""

    def __init__(self, reason: str, column: int) -> None:
        self.reason = reason
        self.column = column
        super().__init__(f"{reason} at column {column}")


class FeedError(MonitorError):
    """A feed could not be fetched or parsed; the message is what the feed's error shows."""


class StoreError(MonitorError):
    """The database refused or could not be reached."""


class AlertError(MonitorError):
    """A channel could not be configured or reached."""


class NotFound(MonitorError):
    """An edit named a watchlist, a feed or a user that does not exist."""

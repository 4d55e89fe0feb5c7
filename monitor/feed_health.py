"""Feed health: which feeds deserve an admin alert, once when they have been failing too
long and once when they recover. Pure: feeds and ``now`` in, notices out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .store import FeedRow

__all__ = ["HealthNotice", "feed_status", "health_notices"]


@dataclass(frozen=True)
class HealthNotice:
    feed_id: int
    failing: bool
    """True: the feed has been failing too long; False: it has recovered."""
    title: str
    body: str


def feed_status(f: FeedRow, now: datetime) -> str:
    """A feed's health in one word, as `feeds list` and the console show it."""
    if not f.active:
        return "paused"
    if f.last_checked_at is None:
        return "new"
    if f.gone_at is not None:
        return "gone"
    if f.consecutive_failures:
        return f"failing ×{f.consecutive_failures}"
    if f.next_check_at is not None and f.next_check_at < now - 2 * f.interval:
        return "late"
    return "ok"


def _name(f: FeedRow) -> str:
    return f.title or f.location


def _when(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M} UTC" if t else "never"


def health_notices(feeds: Iterable[FeedRow], now: datetime,
                   after: timedelta) -> list[HealthNotice]:
    """A notice for each feed without a success for longer than ``after`` (and not yet
    alerted), and for each alerted feed that has succeeded since."""
    out = []
    for f in feeds:
        if f.health_alerted_at is None and f.consecutive_failures > 0:
            since = f.last_success_at or f.created_at
            if since is not None and now - since >= after:
                out.append(HealthNotice(f.id, True, f"[monitor] feed failing: {_name(f)}", (
                    f"Feed: {f.location}\n"
                    f"Last success: {_when(f.last_success_at)}\n"
                    f"Consecutive failures: {f.consecutive_failures}\n"
                    f"Last error: {f.last_error}\n"
                    f"Next check: {_when(f.next_check_at)}\n")))
        elif f.health_alerted_at is not None and f.consecutive_failures == 0:
            out.append(HealthNotice(f.id, False, f"[monitor] feed recovered: {_name(f)}", (
                f"Feed: {f.location}\n"
                f"Failing alert sent: {_when(f.health_alerted_at)}\n"
                f"Last success: {_when(f.last_success_at)}\n")))
    return out

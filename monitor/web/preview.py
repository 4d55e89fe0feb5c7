"""The watchlist editor's preview: what the edited watchlist would add and drop, over
the items stored in the last N days, against the saved one (``backtest``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..backtest import BacktestHit, RuleCount, backtest
from ..errors import QueryError
from ..match import compile_watchlist
from ..store import Store, StoredItem
from .views import spec_of

__all__ = ["MAX_DAYS", "Preview", "PreviewItem", "preview"]

MAX_DAYS = 90


@dataclass(frozen=True)
class PreviewItem:
    id: int
    title: str
    link: str | None
    feed: str
    fetched_at: datetime
    rules: tuple[int, ...] = ()
    """The rules (0-based) of the edited watchlist that fire on it."""


@dataclass(frozen=True)
class Preview:
    days: int
    scanned: int
    matched: int
    """Items the edited watchlist matches."""
    saved_matched: int | None
    """Items the saved watchlist matches (None: a new watchlist)."""
    rules: tuple[RuleCount, ...]
    added: tuple[PreviewItem, ...]
    dropped: tuple[PreviewItem, ...]
    added_total: int
    dropped_total: int


def preview(store: Store, edited: dict[str, Any], saved: dict[str, Any] | None,
            now: datetime, days: int, limit: int = 50) -> Preview:
    """Match ``edited`` (and ``saved``, if any) over the items fetched in the last
    ``days`` days. The edited watchlist must compile (QueryError otherwise); a saved
    one that no longer compiles counts as none."""
    days = max(1, min(days, MAX_DAYS))
    watchlist = compile_watchlist(spec_of(edited))
    baseline = None
    if saved is not None:
        try:
            baseline = compile_watchlist(spec_of(saved))
        except (QueryError, KeyError, TypeError):
            baseline = None
    report = backtest(watchlist, store.items(since=now - timedelta(days=days)),
                      baseline=baseline)
    gained: tuple[BacktestHit, ...] = report.hits if baseline is None else report.gained
    lost: tuple[StoredItem, ...] = () if baseline is None else report.lost
    added = tuple(PreviewItem(h.item.id, h.item.title, h.item.link,
                              h.item.feed_title or h.item.feed_url, h.item.fetched_at,
                              tuple(r.index for r in h.match.rules)) for h in gained[:limit])
    dropped = tuple(PreviewItem(i.id, i.title, i.link, i.feed_title or i.feed_url,
                                i.fetched_at) for i in lost[:limit])
    matched = len(report.hits)
    return Preview(
        days=days, scanned=report.scanned, matched=matched,
        saved_matched=None if baseline is None else matched - len(gained) + len(lost),
        rules=report.rules,
        added=added, dropped=dropped, added_total=len(gained), dropped_total=len(lost))

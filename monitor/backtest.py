"""Backtest: what a watchlist would have matched among the stored items.

Pure over its inputs: the caller reads the items from the store and shows the report.
The items are matched exactly as the poller matches new ones (``stored_document``,
the compiled ``Matcher``), so a backtest of the running watchlist finds what it found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .match import Matcher, Watchlist, WatchlistMatch
from .poll import stored_document
from .store import StoredItem

__all__ = ["BacktestHit", "BacktestReport", "RuleCount", "backtest"]


@dataclass(frozen=True)
class BacktestHit:
    item: StoredItem
    match: WatchlistMatch


@dataclass(frozen=True)
class RuleCount:
    index: int
    rule: str
    items: int


@dataclass(frozen=True)
class BacktestReport:
    watchlist: str
    scanned: int
    hits: tuple[BacktestHit, ...]
    rules: tuple[RuleCount, ...]
    """Per rule, in order: how many items it fired on (an item may fire several)."""


def backtest(watchlist: Watchlist, items: Iterable[StoredItem],
             progress: Callable[[int], None] | None = None) -> BacktestReport:
    """Match every item against ``watchlist``; ``progress(n)`` after each item."""
    matcher = Matcher.of([watchlist])
    counts = [0] * len(watchlist.rules)
    hits = []
    scanned = 0
    for item in items:
        scanned += 1
        for m in matcher.match(stored_document(item)):
            hits.append(BacktestHit(item, m))
            for r in m.rules:
                counts[r.index] += 1
        if progress is not None:
            progress(scanned)
    rules = tuple(RuleCount(r.index, r.text, counts[r.index]) for r in watchlist.rules)
    return BacktestReport(watchlist.name, scanned, tuple(hits), rules)

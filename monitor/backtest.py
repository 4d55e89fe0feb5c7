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
    gained: tuple[BacktestHit, ...] = ()
    """With a baseline: the hits the baseline did not have."""
    lost: tuple[StoredItem, ...] = ()
    """With a baseline: the items the baseline matched and this watchlist does not."""


def backtest(watchlist: Watchlist, items: Iterable[StoredItem],
             progress: Callable[[int], None] | None = None,
             baseline: Watchlist | None = None) -> BacktestReport:
    """Match every item against ``watchlist``, and against ``baseline`` (the version in
    force) if given, to report what an edit gains and loses; ``progress(n)`` after each
    item."""
    matcher = Matcher.of([watchlist])
    before = Matcher.of([baseline]) if baseline is not None else None
    counts = [0] * len(watchlist.rules)
    hits: list[BacktestHit] = []
    gained: list[BacktestHit] = []
    lost: list[StoredItem] = []
    scanned = 0
    for item in items:
        scanned += 1
        doc = stored_document(item)
        now = [BacktestHit(item, m) for m in matcher.match(doc)]
        hits += now
        for h in now:
            for r in h.match.rules:
                counts[r.index] += 1
        if before is not None:
            then = bool(before.match(doc))
            if now and not then:
                gained += now
            elif then and not now:
                lost.append(item)
        if progress is not None:
            progress(scanned)
    rules = tuple(RuleCount(r.index, r.text, counts[r.index]) for r in watchlist.rules)
    return BacktestReport(watchlist.name, scanned, tuple(hits), rules, tuple(gained),
                          tuple(lost))

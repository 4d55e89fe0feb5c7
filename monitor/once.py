"""The polls of ``monitor run --once``: every active feed once, claimed under a lease
as the daemon claims its due feeds, so that several ``run --once`` (and daemons) on one
PostgreSQL share the feeds and none is polled twice.

"Every feed once" is every active feed not checked since ``since``: the start of the
run on SQLite (one process), and ``ONCE_FRESH`` before it on PostgreSQL, where a feed
another process checked that recently (or since) was this round's, done by a run
started at about the same time (from cron on two hosts, say). Each batch is claimed
and polled at the clock's time then, so a long run's checks stay fresh for a run that
starts while it goes on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from .errors import StoreError
from .poll import Poller, PollReport
from .store import FeedRow, PollCounts, Store

__all__ = ["ONCE_FRESH", "claim_feeds", "poll_every_feed"]

log = logging.getLogger(__name__)

ONCE_FRESH = timedelta(minutes=1)
"""On a shared database, a feed checked this long before a ``run --once`` began is not
polled again by it."""


async def claim_feeds(store: Store, owner: str, now: datetime, lease: timedelta, room: int,
                      unchecked_since: datetime | None = None) -> list[FeedRow]:
    """``Store.claim_due_feeds`` in a thread: a claim waits for SQLite's lock while a
    batch of polls is written, and the event loop goes on meanwhile. If the wait is
    cancelled (a stop, a reload), what the claim took is given back, so no feed stays
    under a lease that nobody polls."""
    lock = threading.Lock()
    cancelled = False
    claimed: list[FeedRow] = []

    def let_go(feeds: list[FeedRow]) -> None:
        try:
            store.release_feeds(owner, [f.id for f in feeds])
        except StoreError as exc:  # their lease ends them
            log.warning("could not give back %d claimed feeds: %s", len(feeds), exc)

    def claim() -> list[FeedRow]:
        nonlocal claimed
        feeds = store.claim_due_feeds(owner, now, lease, room,
                                      unchecked_since=unchecked_since)
        with lock:
            if not cancelled:
                claimed = feeds
                return feeds
        let_go(feeds)
        return []

    try:
        return await asyncio.to_thread(claim)
    except asyncio.CancelledError:
        with lock:
            cancelled = True
        if claimed:  # claimed before the cancel reached it: given back from here
            let_go(claimed)
        raise


async def poll_every_feed(store: Store, poller: Poller, owner: str,
                          clock: Callable[[], datetime], *, lease: timedelta,
                          limit: int) -> list[PollReport]:
    """Claim feeds not checked since the round began, ``limit`` in flight at most, and
    poll each (``poller`` must write as ``owner``); when no feed is left to claim,
    wait for the polls in flight. Returns the reports by feed URL.

    Feeds are claimed a quarter of ``limit`` at a time at least, not one per finished
    poll: a claim is a transaction (and on SQLite, a scan of the feeds); claiming per
    poll cost a 304 round more than its polls."""
    start = clock()
    since = start - ONCE_FRESH if store.several_workers else start
    reports: list[PollReport] = []
    seen: set[int] = set()
    inflight: set[asyncio.Task[PollReport]] = set()
    polling: dict[asyncio.Task[PollReport], FeedRow] = {}
    exhausted = False
    while True:
        room = limit - len(inflight)
        if not exhausted and (room >= max(1, limit // 4) or not inflight):
            now = clock()
            claimed = await claim_feeds(store, owner, now, lease, room, unchecked_since=since)
            fresh = [f for f in claimed if f.id not in seen]
            _give_back(store, owner, [f for f in claimed if f.id in seen])
            if not fresh:
                exhausted = True
            for feed in fresh:
                seen.add(feed.id)
                task = asyncio.create_task(poller.poll(feed, now), name=f"poll {feed.url}")
                inflight.add(task)
                polling[task] = feed
        if not inflight:
            break
        done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
        reports += [_report(store, owner, polling.pop(t), t) for t in done]
    return sorted(reports, key=lambda r: r.feed)


def _report(store: Store, owner: str, feed: FeedRow, task: asyncio.Task[PollReport]
            ) -> PollReport:
    """The poll's report; a poll that raised (a bug) costs its feed this round, not the
    run: reported failed, and its claim given back."""
    exc = task.exception()
    if exc is None:
        return task.result()
    log.error("poll of %s crashed", feed.url, exc_info=exc)
    _give_back(store, owner, [feed])
    return PollReport(feed.url, False, None,
                      f"internal error ({type(exc).__name__}); see the log", PollCounts())


def _give_back(store: Store, owner: str, feeds: list[FeedRow]) -> None:
    """A feed claimed again after its poll could not be written: left for the next run."""
    if feeds:
        store.release_feeds(owner, [f.id for f in feeds])

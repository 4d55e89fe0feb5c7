"""The one place that reads and writes the database.

The store takes and returns plain dataclasses; no SQLAlchemy object leaves this module.
Every method is one transaction. ``record_poll`` writes a feed's fetch state, its new
items, their matches and their outbox rows together: all of them or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StoreError
from . import cluster, housekeeping
from .catalog import AuditEntry, CatalogStore, Edit
from .housekeeping import Pruned, StoreStats
from .items import forget_stories
from .models import Feed, Item, Watchlist
from .outbox import OutboxStore, PendingAlert, Source
from .polls import NewItem, NewMatch, PollCounts, PollWrite, record_polls
from .states import FetchState, StateWrite
from .subscriptions import SubscriptionRow, SubscriptionStore

__all__ = [
    "AuditEntry",
    "Edit",
    "FeedRow",
    "FetchState",
    "NewItem",
    "NewMatch",
    "PendingAlert",
    "PollCounts",
    "PollWrite",
    "Source",
    "StateWrite",
    "Store",
    "StoredItem",
    "SubscriptionRow",
]


@dataclass(frozen=True)
class FeedRow:
    id: int
    url: str
    title: str | None
    interval: timedelta
    active: bool
    etag: str | None
    last_modified: str | None
    last_checked_at: datetime | None
    last_success_at: datetime | None
    next_check_at: datetime | None
    last_status: int | None
    last_error: str | None
    consecutive_failures: int
    fetch_url: str | None = None
    gone_at: datetime | None = None
    health_alerted_at: datetime | None = None
    created_at: datetime | None = None
    items: int = 0

    @property
    def location(self) -> str:
        """The URL to fetch: where permanent redirects have led, else the configured one."""
        return self.fetch_url or self.url


@dataclass(frozen=True)
class StoredItem:
    """An item as stored, with its feed: what a backtest matches again."""

    id: int
    feed_url: str
    feed_title: str | None
    link: str | None
    title: str
    summary: str
    content: str
    author: str
    published_at: datetime | None
    fetched_at: datetime


class Store(OutboxStore, SubscriptionStore, CatalogStore):
    """Reads and writes feeds, items, matches, the alert outbox, WebSub subscriptions and
    the catalog's edits."""

    # ------------------------------------------------------------ configuration

    def sync_feeds(self, feeds: Iterable[tuple[str, str | None, timedelta]], now: datetime) -> None:
        """Make the configured feeds the active ones: add new, update intervals and titles,
        deactivate those no longer configured (their items stay)."""
        wanted = {url: (title, interval) for url, title, interval in feeds}
        try:
            with self._session() as s, s.begin():
                cluster.serialize(s, "sync-config")
                existing = {f.url: f for f in s.scalars(select(Feed))}
                for url, (title, interval) in wanted.items():
                    row = existing.get(url)
                    if row is None:
                        s.add(Feed(url=url, title=title, active=True, consecutive_failures=0,
                                   interval_seconds=int(interval.total_seconds()),
                                   created_at=now, next_check_at=now))
                    else:
                        row.active = True
                        row.interval_seconds = int(interval.total_seconds())
                        if title:
                            row.title = title
                for url, row in existing.items():
                    if url not in wanted:
                        row.active = False
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save feeds: {exc}") from exc

    def sync_watchlists(self, definitions: dict[str, dict[str, Any]], now: datetime) -> None:
        """Store each watchlist's definition by name (a record of what matched what)."""
        try:
            with self._session() as s, s.begin():
                cluster.serialize(s, "sync-config")
                existing = {w.name: w for w in s.scalars(select(Watchlist))}
                for name, definition in definitions.items():
                    row = existing.get(name)
                    if row is None:
                        s.add(Watchlist(name=name, definition=definition, updated_at=now))
                    elif row.definition != definition:
                        row.definition = definition
                        row.updated_at = now
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save watchlists: {exc}") from exc

    # ------------------------------------------------------------ feeds

    def feeds(self, *, active_only: bool = True, counts: bool = True) -> list[FeedRow]:
        """The feeds, by URL. ``counts`` fills ``FeedRow.items``, which reads every item:
        for listings, not for the daemon's own rounds."""
        return self._feed_rows(_FEEDS.c.active.is_(True) if active_only else None,
                               counts=counts)

    def catalog_feeds(self, *, counts: bool = True) -> list[FeedRow]:
        """Every feed not removed, paused ones included, by URL; ``counts`` fills
        ``FeedRow.items`` (reading every item: for listings)."""
        return self._feed_rows(_FEEDS.c.removed_at.is_(None), counts=counts)

    def health_feeds(self) -> list[FeedRow]:
        """The active feeds whose health may call for a notice (``feed_health``): failing
        and not yet alerted, or alerted and succeeding since. Few, unlike ``feeds``: the
        daemon asks every minute."""
        c = _FEEDS.c
        return self._feed_rows(and_(c.active.is_(True), or_(
            and_(c.health_alerted_at.is_(None), c.consecutive_failures > 0),
            and_(c.health_alerted_at.is_not(None), c.consecutive_failures == 0))),
            counts=False)

    def _feed_rows(self, where: ColumnElement[bool] | None, *, counts: bool) -> list[FeedRow]:
        query = select(*_FEED_COLUMNS)
        if counts:
            query = (select(*_FEED_COLUMNS, func.count(_ITEMS.c.id))
                     .select_from(_FEEDS.outerjoin(_ITEMS)).group_by(_FEEDS.c.id))
        if where is not None:
            query = query.where(where)
        with self.engine.connect() as conn:
            return [_feed_row(r) for r in conn.execute(query.order_by(_FEEDS.c.url))]

    def due_feeds(self, now: datetime, limit: int) -> list[FeedRow]:
        query = (select(*_FEED_COLUMNS)
                 .where(_FEEDS.c.active.is_(True), _FEEDS.c.next_check_at <= now)
                 .order_by(_FEEDS.c.next_check_at).limit(limit))
        with self.engine.connect() as conn:
            return [_feed_row(r) for r in conn.execute(query)]

    @property
    def several_workers(self) -> bool:
        """Whether several daemons may share this database (PostgreSQL; SQLite: one)."""
        return cluster.is_postgres(self.engine)

    def claim_due_feeds(self, owner: str, now: datetime, lease: timedelta,
                        limit: int, *, unchecked_since: datetime | None = None
                        ) -> list[FeedRow]:
        """Claim due feeds for ``owner`` under a lease (``cluster.claim_feeds``): with
        several workers on PostgreSQL each gets its own, none waits for another. With
        ``unchecked_since``: the feeds not checked since then, due or not."""
        return [_feed_row(r) for r in cluster.claim_feeds(
            self.engine, owner, now, lease, limit, unchecked_since=unchecked_since,
            columns=_FEED_COLUMNS[1:])]

    def release_feeds(self, owner: str, ids: list[int]) -> None:
        cluster.release_feeds(self.engine, owner, ids)

    def release_all_feeds(self) -> int:
        """Drop every feed claim (only for the one daemon of a SQLite file)."""
        return cluster.release_all_feeds(self.engine)

    def record_poll(self, feed_id: int, state: FetchState, items: Sequence[NewItem],
                    seen: Sequence[str] = (), *,
                    story_window: timedelta = timedelta(hours=48),
                    owner: str | None = None) -> PollCounts:
        """In one transaction: the feed's fetch state, its new items, their matches and
        outbox rows, and the time the feed last served each key in ``seen``. Items the
        feed already has are skipped, so a re-served feed never alerts twice. A matched
        item joins the story of an item seen within ``story_window`` (dedup.StoryIndex);
        a channel that already has an alert for that story gets a ``merged`` row instead
        of a second alert.

        With ``owner`` (a worker that claimed the feed), the feed row is locked and the
        poll is refused (StoreError) unless the claim is still the owner's: a worker
        whose lease expired and whose feed another worker took over stores nothing, so
        an item is never stored, nor alerted on, twice. The claim ends with the write."""
        return _one(self.record_polls([PollWrite(feed_id, state, items, seen, owner)],
                                      story_window=story_window))

    def record_polls(self, writes: Sequence[PollWrite], *,
                     story_window: timedelta = timedelta(hours=48)
                     ) -> list[PollCounts | StoreError]:
        """Many polls in one transaction, each as ``record_poll`` (or ``record_push``,
        without a state) would store it, in their order: a poll may join the story of
        an item of an earlier one. Returns, per poll, its counts or the error that
        refused it (a feed taken over by another worker, or gone); a database error
        refuses them all."""
        return record_polls(self.engine, writes, story_window)

    def record_states(self, writes: Sequence[StateWrite]) -> list[StoreError | None]:
        """The fetch states of many polls that stored no items (304s, failures), in one
        transaction: ``record_poll`` without items, for each. Returns, per write, None
        or the error that refused it (a feed taken over by another worker); a database
        error refuses them all (StoreError)."""
        results = self.record_polls([PollWrite(w.feed_id, w.state, owner=w.owner)
                                     for w in writes])
        return [r if isinstance(r, StoreError) else None for r in results]

    def set_health_alerted(self, feed_id: int, at: datetime | None) -> None:
        """Record that the admin channel was told the feed is failing (None: recovered)."""
        try:
            with self._session() as s, s.begin():
                s.execute(update(Feed).where(Feed.id == feed_id).values(health_alerted_at=at))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save the health of feed {feed_id}: {exc}") from exc

    def record_push(self, feed_id: int, items: Sequence[NewItem], seen: Sequence[str],
                    now: datetime, *, story_window: timedelta = timedelta(hours=48)
                    ) -> PollCounts:
        """Content a WebSub hub pushed: like ``record_poll`` without the fetch state (the
        feed's validators and schedule stay as its polls left them). The feed row is
        locked (PostgreSQL), so a push and a poll of one feed store each item once."""
        return _one(self.record_polls([PollWrite(feed_id, None, items, seen, pushed_at=now)],
                                      story_window=story_window))

    def feed(self, feed_id: int) -> FeedRow | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(*_FEED_COLUMNS).where(_FEEDS.c.id == feed_id)).first()
        return None if found is None else _feed_row(found)

    # ------------------------------------------------------------ operations

    def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        housekeeping.ping(self.engine)

    def stats(self) -> StoreStats:
        return housekeeping.stats(self.engine)

    def active_feeds(self) -> int:
        return housekeeping.active_feeds(self.engine)

    def dispose(self) -> None:
        """Close the pool's connections and drop what is kept for this database (the
        story index): a reload's old store. The first app of a process is frozen out of
        the cyclic collector's sight (``daemon.settle_gc``), so its engine, and the
        index kept under it, would otherwise stay."""
        self.engine.dispose()
        forget_stories(self.engine)

    def prune(self, unmatched_before: datetime, matched_before: datetime) -> Pruned:
        try:
            return housekeeping.prune(self.engine, unmatched_before, matched_before)
        finally:
            forget_stories(self.engine)
    # ------------------------------------------------------------ stored items

    def count_items(self, since: datetime | None = None) -> int:
        """How many items were fetched at or after ``since`` (all, if None)."""
        with self._session() as s:
            query = select(func.count(Item.id))
            if since is not None:
                query = query.where(Item.fetched_at >= since)
            return int(s.scalar(query) or 0)

    def items(self, *, since: datetime | None = None, ids: Sequence[int] | None = None,
              batch: int = 500) -> Iterator[StoredItem]:
        """Stored items in id order: those fetched at or after ``since``, or those with
        the given ``ids``. Read ``batch`` at a time, so a long backtest holds no more."""
        after = 0
        while True:
            with self._session() as s:
                query = (select(Item, Feed).join(Feed, Item.feed_id == Feed.id)
                         .where(Item.id > after).order_by(Item.id).limit(batch))
                if since is not None:
                    query = query.where(Item.fetched_at >= since)
                if ids is not None:
                    query = query.where(Item.id.in_(list(ids)))
                rows = [_stored_item(i, f) for i, f in s.execute(query)]
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].id

    # ------------------------------------------------------------ several workers

    def once(self, name: str) -> AbstractContextManager[bool]:
        """``with store.once("retention") as mine:`` — whether this worker runs the job
        now (a PostgreSQL advisory lock; always True on SQLite)."""
        return cluster.once(self.engine, name)

    def publish(self, name: str, value: Any, now: datetime, by: str) -> int:
        """Share ``value`` with every worker; returns its version."""
        return cluster.publish(self.engine, name, value, now, by)

    def shared_version(self, name: str) -> int | None:
        return cluster.shared_version(self.engine, name)

    def shared(self, name: str) -> tuple[int, Any] | None:
        return cluster.shared(self.engine, name)

    # ------------------------------------------------------------ outbox


def _one(results: list[PollCounts | StoreError]) -> PollCounts:
    (result,) = results
    if isinstance(result, StoreError):
        raise result
    return result


def _stored_item(i: Item, f: Feed) -> StoredItem:
    return StoredItem(
        id=i.id, feed_url=f.url, feed_title=f.title, link=i.link, title=i.title,
        summary=i.summary, content=i.content, author=i.author, published_at=i.published_at,
        fetched_at=i.fetched_at,
    )


_FEEDS = cast(Table, Feed.__table__)
_ITEMS = cast(Table, Item.__table__)
_FEED_COLUMNS = tuple(_FEEDS.c[name] for name in (
    "id", "url", "title", "interval_seconds", "active", "etag", "last_modified",
    "last_checked_at", "last_success_at", "next_check_at", "last_status", "last_error",
    "consecutive_failures", "fetch_url", "gone_at", "health_alerted_at", "created_at"))
"""A ``FeedRow``'s columns in its fields' order (``interval`` in seconds): feeds are
read as plain rows, not ORM objects, which a poll round of thousands would build."""


def _feed_row(r: Sequence[Any]) -> FeedRow:
    """A row of ``_FEED_COLUMNS``, and optionally its count of items."""
    return FeedRow(r[0], r[1], r[2], timedelta(seconds=r[3]), *r[4:])

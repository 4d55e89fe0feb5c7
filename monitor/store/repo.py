"""The one place that reads and writes the database.

The store takes and returns plain dataclasses; no SQLAlchemy object leaves this module.
Every method is one transaction. ``record_poll`` writes a feed's fetch state, its new
items, their matches and their outbox rows together: all of them or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import StoreError
from .models import Feed, Item, Match, Outbox, Watchlist

__all__ = [
    "FeedRow",
    "FetchState",
    "NewItem",
    "NewMatch",
    "PendingAlert",
    "Store",
    "StoredItem",
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
    items: int = 0


@dataclass(frozen=True)
class FetchState:
    """The outcome of one poll of a feed, as the feed row keeps it."""

    checked_at: datetime
    next_check_at: datetime
    ok: bool
    status: int | None = None
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class NewMatch:
    watchlist: str
    rules: list[dict[str, Any]]
    snippet: str
    marks: list[list[int]]
    channels: tuple[str, ...]


@dataclass(frozen=True)
class NewItem:
    key: str
    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str
    author: str
    published_at: datetime | None
    matches: tuple[NewMatch, ...] = ()


@dataclass(frozen=True)
class PendingAlert:
    """An outbox row with everything needed to render its message."""

    id: int
    channel: str
    attempts: int
    watchlist: str
    rules: list[dict[str, Any]]
    snippet: str
    marks: list[list[int]]
    title: str
    link: str | None
    published_at: datetime | None
    feed_title: str | None
    feed_url: str
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None


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


@dataclass
class PollCounts:
    new_items: int = 0
    matches: int = 0
    alerts: int = 0
    watchlists: set[str] = field(default_factory=set)


class Store:
    """Reads and writes feeds, items, matches and the alert outbox."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ------------------------------------------------------------ configuration

    def sync_feeds(self, feeds: Iterable[tuple[str, str | None, timedelta]], now: datetime) -> None:
        """Make the configured feeds the active ones: add new, update intervals and titles,
        deactivate those no longer configured (their items stay)."""
        wanted = {url: (title, interval) for url, title, interval in feeds}
        try:
            with self._session() as s, s.begin():
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

    def feeds(self, *, active_only: bool = True) -> list[FeedRow]:
        with self._session() as s:
            query = select(Feed, func.count(Item.id)).outerjoin(Item).group_by(Feed.id)
            if active_only:
                query = query.where(Feed.active.is_(True))
            return [_feed_row(f, n) for f, n in s.execute(query.order_by(Feed.url))]

    def due_feeds(self, now: datetime, limit: int) -> list[FeedRow]:
        with self._session() as s:
            query = (
                select(Feed)
                .where(Feed.active.is_(True), Feed.next_check_at <= now)
                .order_by(Feed.next_check_at)
                .limit(limit)
            )
            return [_feed_row(f) for f in s.scalars(query)]

    def known_keys(self, feed_id: int, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` the feed already has."""
        found: set[str] = set()
        with self._session() as s:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                found.update(s.scalars(select(Item.key).where(Item.feed_id == feed_id,
                                                              Item.key.in_(chunk))))
        return found

    def record_poll(self, feed_id: int, state: FetchState, items: Sequence[NewItem]) -> PollCounts:
        """In one transaction: the feed's fetch state, its new items, their matches and
        outbox rows. Items the feed already has are skipped, so a re-served feed never
        alerts twice."""
        counts = PollCounts()
        try:
            with self._session() as s, s.begin():
                feed = s.get(Feed, feed_id)
                if feed is None:
                    raise StoreError(f"feed {feed_id} no longer exists")
                _apply_state(feed, state)
                if not items:
                    return counts
                known = set(s.scalars(select(Item.key).where(
                    Item.feed_id == feed_id, Item.key.in_([i.key for i in items]))))
                watchlist_ids = {n: i for n, i in s.execute(select(Watchlist.name, Watchlist.id))}
                for new in items:
                    if new.key in known:
                        continue
                    known.add(new.key)
                    item = Item(feed_id=feed_id, key=new.key, guid=new.guid, link=new.link,
                                title=new.title, summary=new.summary, content=new.content,
                                author=new.author, published_at=new.published_at,
                                fetched_at=state.checked_at)
                    s.add(item)
                    counts.new_items += 1
                    if not new.matches:
                        continue
                    s.flush()
                    for m in new.matches:
                        match = Match(item_id=item.id, watchlist_id=watchlist_ids[m.watchlist],
                                      rules=m.rules, snippet=m.snippet, marks=m.marks,
                                      created_at=state.checked_at)
                        s.add(match)
                        s.flush()
                        counts.matches += 1
                        counts.watchlists.add(m.watchlist)
                        for channel in m.channels:
                            s.add(Outbox(match_id=match.id, channel=channel, status="pending",
                                         attempts=0, next_attempt_at=state.checked_at,
                                         created_at=state.checked_at))
                            counts.alerts += 1
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save the poll of feed {feed_id}: {exc}") from exc
        return counts

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

    # ------------------------------------------------------------ outbox

    def pending_alerts(self, due_at: datetime | None, limit: int = 10_000,
                       channels: Iterable[str] | None = None) -> list[PendingAlert]:
        """Outbox rows still to send, oldest first: those due at ``due_at``, or every
        pending row when it is None."""
        with self._session() as s:
            query = (
                select(Outbox, Match, Item, Feed, Watchlist.name)
                .join(Match, Outbox.match_id == Match.id)
                .join(Item, Match.item_id == Item.id)
                .join(Feed, Item.feed_id == Feed.id)
                .join(Watchlist, Match.watchlist_id == Watchlist.id)
                .where(Outbox.status == "pending")
                .order_by(Outbox.id)
                .limit(limit)
            )
            if due_at is not None:
                query = query.where(Outbox.next_attempt_at <= due_at)
            if channels is not None:
                query = query.where(Outbox.channel.in_(list(channels)))
            return [
                PendingAlert(
                    id=o.id, channel=o.channel, attempts=o.attempts, watchlist=wl,
                    rules=m.rules, snippet=m.snippet, marks=m.marks, title=i.title,
                    link=i.link, published_at=i.published_at, feed_title=f.title,
                    feed_url=f.url, created_at=o.created_at,
                    next_attempt_at=o.next_attempt_at, last_error=o.last_error,
                )
                for o, m, i, f, wl in s.execute(query)
            ]

    def mark_sent(self, outbox_id: int, now: datetime) -> None:
        with self._session() as s, s.begin():
            s.execute(update(Outbox).where(Outbox.id == outbox_id)
                      .values(status="sent", sent_at=now, attempts=Outbox.attempts + 1,
                              last_error=None))

    def mark_failed(self, outbox_id: int, error: str, retry_at: datetime) -> None:
        with self._session() as s, s.begin():
            s.execute(update(Outbox).where(Outbox.id == outbox_id)
                      .values(attempts=Outbox.attempts + 1, last_error=error,
                              next_attempt_at=retry_at))

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        """(channel, status) -> number of rows."""
        with self._session() as s:
            rows = s.execute(select(Outbox.channel, Outbox.status, func.count())
                             .group_by(Outbox.channel, Outbox.status))
            return {(c, st): n for c, st, n in rows}


def _apply_state(feed: Feed, st: FetchState) -> None:
    feed.last_checked_at = st.checked_at
    feed.next_check_at = st.next_check_at
    feed.last_status = st.status
    if st.ok:
        feed.last_success_at = st.checked_at
        feed.last_error = None
        feed.consecutive_failures = 0
        if st.etag is not None or st.last_modified is not None or st.status == 200:
            feed.etag, feed.last_modified = st.etag, st.last_modified
        if st.title and not feed.title:
            feed.title = st.title
    else:
        feed.last_error = st.error
        feed.consecutive_failures += 1


def _stored_item(i: Item, f: Feed) -> StoredItem:
    return StoredItem(
        id=i.id, feed_url=f.url, feed_title=f.title, link=i.link, title=i.title,
        summary=i.summary, content=i.content, author=i.author, published_at=i.published_at,
        fetched_at=i.fetched_at,
    )


def _feed_row(f: Feed, items: int = 0) -> FeedRow:
    return FeedRow(
        id=f.id, url=f.url, title=f.title, interval=timedelta(seconds=f.interval_seconds),
        active=f.active, etag=f.etag, last_modified=f.last_modified,
        last_checked_at=f.last_checked_at, last_success_at=f.last_success_at,
        next_check_at=f.next_check_at, last_status=f.last_status, last_error=f.last_error,
        consecutive_failures=f.consecutive_failures, items=items,
    )

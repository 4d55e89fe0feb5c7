"""Writing the new items of a batch of polls, their matches and outbox rows: in bulk.

Most new items match nothing: they are inserted in multi-row ``INSERT … RETURNING``
statements for the whole batch, on the driver's cursor (``_driver_rows``), not as ORM
objects flushed one by one. The few that match then get their story, their matches
and their outbox rows in the order of the polls and of their feeds, exactly as if
each poll were written alone: a matched item joins the story of an item seen within
the window, the batch's earlier items included, and a channel already alerted on that
story gets a ``merged`` row.

``RETURNING`` gives each row's id with its feed and key (an item's key is unique in its
feed, a match's item and watchlist too), not in parameter order: asking SQLAlchemy for
the parameter order made it insert one row per statement on SQLite.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Column, Connection, Table, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError

from ..dedup import StoryCandidate, StoryIndex, StoryKeys
from .models import Item, Match, Outbox, UTCDateTime, Watchlist, sqlite_text

if TYPE_CHECKING:
    from .polls import NewItem, PollCounts, PollWrite

__all__ = ["BatchItems", "forget_stories"]

_CHUNK = 500
"""Keys per ``IN (…)``: well under SQLite's and PostgreSQL's parameter limits."""
_ROWS = 64
"""Rows of a multi-row statement (``_pieces``); 13 parameters each, well under the
limits too. The driver keeps each statement prepared, on each pooled connection: at 256
rows those statements held about 5 MB more of the daemon's peak at 10,000 feeds, for no
CPU saved (``bench.cold_stages``: 0.76 against 0.75 ms a feed)."""
_ITEMS = cast(Table, Item.__table__)
_MATCHES = cast(Table, Match.__table__)
_OUTBOX = cast(Table, Outbox.__table__)
_SERVED = (update(_ITEMS)
           .where(_ITEMS.c.feed_id == bindparam("b_feed_id"),
                  _ITEMS.c.key == bindparam("b_key"))
           .values(last_seen_at=bindparam("b_now")))
_STORY = (update(_ITEMS).where(_ITEMS.c.id == bindparam("b_item_id"))
          .values(story_id=bindparam("b_story_id")))
_COLUMNS = ("feed_id", "key", "guid", "link", "title", "summary", "content", "author",
            "published_at", "fetched_at", "last_seen_at", "title_key", "simhash")
"""An item's row as ``BatchItems`` inserts it (its ``story_id`` is set later)."""
_MATCH_COLUMNS = ("item_id", "watchlist_id", "rules", "snippet", "marks", "created_at")
_ALERTED = (select(_ITEMS.c.story_id, _OUTBOX.c.channel).distinct()
            .select_from(_OUTBOX.join(_MATCHES, _OUTBOX.c.match_id == _MATCHES.c.id)
                         .join(_ITEMS, _MATCHES.c.item_id == _ITEMS.c.id))
            .where(_ITEMS.c.story_id.in_(bindparam("b_stories", expanding=True)),
                   _OUTBOX.c.status != "merged"))
"""The channels each of the stories ``b_stories`` has an alert on."""


def _mark(conn: Connection) -> str:
    """The driver's positional placeholder."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _bind(conn: Connection, column: Column[Any]) -> Callable[[Any], Any]:
    """What the driver takes for a value of ``column``, as SQLAlchemy would pass it (an
    aware datetime: naive UTC, or SQLite's text; JSON: its text)."""
    if conn.dialect.name == "sqlite" and isinstance(column.type, UTCDateTime):
        return sqlite_text  # the same text as SQLAlchemy's processors, for half the CPU
    processor = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return processor if processor is not None else (lambda value: value)


def _insert(conn: Connection, table: Table, columns: Sequence[str],
            rows: Sequence[tuple[Any, ...]], returning: Sequence[str]) -> list[Any]:
    """Insert the rows (values of ``columns``, as the driver takes them: ``_bind``)
    through the driver, ``_ROWS`` a statement (``INSERT … VALUES (…), (…)
    RETURNING``): SQLAlchemy's own ``executemany`` spent more CPU building and
    converting each row's parameters than SQLite spent storing it. Returns the
    ``returning`` columns of the rows, in no particular order."""
    out: list[Any] = []
    one = "(" + ", ".join([_mark(conn)] * len(columns)) + ")"
    names = ", ".join(f'"{c}"' for c in columns)
    back = ", ".join(f'"{c}"' for c in returning)
    for start, size in _pieces(len(rows)):
        sql = (f'INSERT INTO {table.name} ({names}) VALUES {", ".join([one] * size)} '
               f"RETURNING {back}")
        out += _driver_rows(conn, sql, tuple(chain.from_iterable(rows[start : start + size])))
    return out


def _driver_rows(conn: Connection, sql: str, params: tuple[Any, ...]) -> Sequence[Any]:
    """The rows ``sql`` returns, run on the driver's cursor of ``conn``'s connection (in
    its transaction): SQLAlchemy's result objects for the bulk statements took a fifth
    of the CPU of a cold cycle's writes (``bench.cold_stages``: record 0.47 against
    0.36 ms a feed). A driver error is raised as SQLAlchemy's, as ``execute`` raises it,
    with the statement's start and without its parameters (the server's own message may
    still quote a row: PostgreSQL's ``DETAIL``)."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    except conn.dialect.loaded_dbapi.Error as exc:
        shown = sql if len(sql) <= 200 else f"{sql[:200]} …"  # 64 rows: 3 kB of marks
        raise DBAPIError.instance(shown, None, exc, conn.dialect.loaded_dbapi.Error,
                                  hide_parameters=True, dialect=conn.dialect) from exc
    finally:
        cursor.close()


def _pieces(n: int) -> list[tuple[int, int]]:
    """(start, size) of the statements for ``n`` rows: ``_ROWS`` at a time, the rest in
    powers of two. The driver keeps each distinct statement prepared (SQLite's cache
    holds 128 a connection): statements of any length took 13 MB of the daemon's peak."""
    out = []
    start = 0
    size = _ROWS
    while start < n:
        while size > n - start:
            size //= 2
        out.append((start, size))
        start += size
    return out


class BatchItems:
    """The items of a batch of polls (``polls.record_polls``), written run by run: the
    known keys of a run's feeds in one read, its served keys in one ``executemany``, its
    new items in one ``INSERT``; then the story, matches and outbox rows of the matched
    items, in the order of the polls and of their feeds. The story candidates (on SQLite
    the index kept between batches, ``_kept_stories``), the watchlists' ids and the
    channels each story was alerted on are read once a batch and kept up to date with
    the batch's own rows, so the outcome is that of writing each poll whole, one after
    the other: an item joins the story of an earlier item of the batch, and a channel
    already alerted on a story gets a ``merged`` row."""

    def __init__(self, conn: Connection, story_window: timedelta, since: datetime) -> None:
        self.conn = conn
        self.window = story_window
        self.since = since
        """The earliest poll time of the batch, less the window: what a story may join."""
        self._kept: StoryIndex | None = None
        """The matched items stored before the batch that a story may join: on SQLite
        the index kept between batches (``_kept_stories``), read under ``_CACHE_LOCK``."""
        self._batch = StoryIndex()
        """The batch's own matched items, which the kept index has not read: they are
        not stored until the batch commits."""
        self._watchlists: dict[str, int] | None = None
        self._alerted: set[tuple[int, str]] = set()
        """(story, channel) that has an alert (an outbox row not ``merged``)."""
        self._read: set[int] = set()
        """The stories whose alerts were read from the database."""

    def write(self, polls: Sequence[tuple[PollWrite, PollCounts]]) -> None:
        """A run of polls of distinct feeds."""
        conn = self.conn
        known = self._known({w.feed_id: list(dict.fromkeys([*w.seen, *(i.key for i in w.items)]))
                             for w, _ in polls if w.seen or w.items})
        served = [{"b_feed_id": w.feed_id, "b_key": key, "b_now": w.at}
                  for w, _ in polls for key in dict.fromkeys(w.seen)
                  if key in known.get(w.feed_id, ())]  # new items are inserted as seen
        if served:
            conn.execute(_SERVED, served)
        rows: list[tuple[Any, ...]] = []
        matching: list[tuple[PollWrite, PollCounts, NewItem]] = []  # most new items match nothing
        time = _bind(conn, _ITEMS.c.fetched_at)
        for w, counts in polls:
            have = known.setdefault(w.feed_id, set())
            at = time(w.at)
            for new in w.items:
                if new.key in have:  # stored before, or earlier in this poll
                    continue
                have.add(new.key)
                if new.matches:
                    matching.append((w, counts, new))
                counts.new_items += 1
                rows.append((w.feed_id, new.key, new.guid, new.link, new.title, new.summary,
                             new.content, new.author, time(new.published_at), at, at,
                             new.title_key, new.simhash))
        if not rows:
            return
        ids = {(feed_id, key): item_id for item_id, feed_id, key
               in _insert(conn, _ITEMS, _COLUMNS, rows, ("id", "feed_id", "key"))}
        matched = [(w, counts, new, ids[w.feed_id, new.key]) for w, counts, new in matching]
        if matched:
            self._write_matches(matched)

    def _known(self, keys: dict[int, list[str]]) -> dict[int, set[str]]:
        """Which of its ``keys`` each feed has: a join of the (feed, key) pairs with the
        items' unique index, ``_ROWS`` pairs a statement, whatever the feeds."""
        pairs = [(feed_id, key) for feed_id, ks in keys.items() for key in ks]
        known: dict[int, set[str]] = {}
        mark = _mark(self.conn)
        for start, size in _pieces(len(pairs)):
            values = ", ".join([f"(CAST({mark} AS INTEGER), CAST({mark} AS VARCHAR))",
                                *[f"({mark}, {mark})"] * (size - 1)])
            sql = ("SELECT items.feed_id, items.key FROM (VALUES " + values + ") AS wanted "
                   "JOIN items ON items.feed_id = wanted.column1 AND items.key = wanted.column2")
            for feed_id, key in _driver_rows(
                    self.conn, sql, tuple(chain.from_iterable(pairs[start : start + size]))):
                known.setdefault(feed_id, set()).add(key)
        return known

    def _write_matches(self, matched: Sequence[tuple[PollWrite, PollCounts, NewItem, int]]
                       ) -> None:
        """Story, matches and outbox rows of the matched items, in order. A row's merge
        depends only on the alerts written before it: kept in ``_alerted``, read from
        the database once for each story that existed before the batch."""
        conn = self.conn
        if self._watchlists is None:
            self._watchlists = {n: i for n, i in conn.execute(select(Watchlist.name,
                                                                     Watchlist.id))}
        if self._kept is None:
            self._kept = _kept_stories(conn, self.since)
        kept, batch, watchlist_ids = self._kept, self._batch, self._watchlists
        joined: list[int | None] = []  # per matched item: the story it joined, or None
        stories = []
        kept_lock = _CACHE_LOCK if conn.dialect.name == "sqlite" else contextlib.nullcontext()
        with kept_lock:  # another thread's batch may add to the kept index meanwhile
            for w, _, new, item_id in matched:
                keys = StoryKeys(new.title_key, new.simhash)
                found = [e for e in (kept.earliest(keys, now=w.at, window=self.window),
                                     batch.earliest(keys, now=w.at, window=self.window))
                         if e is not None]
                story = min(found)[1] if found else None
                story_id = item_id if story is None else story
                batch.add(StoryCandidate(item_id, story_id, w.feed_id, w.at,
                                         new.title_key, new.simhash))
                joined.append(story)
                stories.append({"b_item_id": item_id, "b_story_id": story_id})
        conn.execute(_STORY, stories)
        self._read_alerts({s for s in joined if s is not None} - self._read)
        rules, marks = _bind(conn, _MATCHES.c.rules), _bind(conn, _MATCHES.c.marks)
        created = _bind(conn, _MATCHES.c.created_at)
        match_rows = [(item_id, watchlist_ids[m.watchlist], rules(m.rules), m.snippet,
                       marks(m.marks), created(w.at))
                      for w, _, new, item_id in matched for m in new.matches]
        match_ids = {(item_id, watchlist_id): match_id for match_id, item_id, watchlist_id
                     in _insert(conn, _MATCHES, _MATCH_COLUMNS, match_rows,
                                ("id", "item_id", "watchlist_id"))}
        outbox = []
        for (w, counts, new, item_id), story in zip(matched, joined, strict=True):
            for m in new.matches:
                match_id = match_ids[item_id, watchlist_ids[m.watchlist]]
                counts.matches += 1
                counts.by_watchlist[m.watchlist] = counts.by_watchlist.get(m.watchlist, 0) + 1
                for channel in m.channels:  # in order: an earlier row may merge this one
                    merged = story is not None and (story, channel) in self._alerted
                    if not merged:
                        self._alerted.add((item_id if story is None else story, channel))
                        counts.alerts += 1
                    outbox.append({"match_id": match_id, "channel": channel,
                                   "status": "merged" if merged else "pending",
                                   "attempts": 0, "errors": [], "next_attempt_at": w.at,
                                   "created_at": w.at})
        if outbox:
            conn.execute(insert(_OUTBOX), outbox)

    def _read_alerts(self, stories: set[int]) -> None:
        """The channels each of ``stories`` was alerted on, into ``_alerted``."""
        ordered = sorted(stories)
        for i in range(0, len(ordered), _CHUNK):
            self._alerted.update((story, channel) for story, channel in self.conn.execute(
                _ALERTED, {"b_stories": ordered[i : i + _CHUNK]}))
        self._read |= stories


def _kept_stories(conn: Connection, since: datetime) -> StoryIndex:
    """The matched items fetched since ``since`` (the only ones that can share a story
    with a new alert), indexed. On SQLite (one writer, ids in commit order) the index
    is kept between batches and only the rows stored since are read and added to it:
    re-reading every matched item of the window for every poll made a cold cycle
    quadratic in its feeds, and so did re-indexing them for every batch (4 of the 10 s
    the store took for a cold cycle of 10,000 feeds). On PostgreSQL, where another
    worker's rows may commit out of id order, every batch reads them all."""
    engine = conn.engine
    if engine.dialect.name != "sqlite":
        return StoryIndex(_read_candidates(conn, since))
    with _CACHE_LOCK:
        kept = _CACHES.setdefault(engine, _Kept())
        margin = since - _MARGIN  # polls' clocks differ a little; StoryIndex.find filters
        fresh = _read_candidates(conn, margin, after=kept.after)
        if fresh:
            kept.after = max(c.item_id for c in fresh)
        index = kept.index
        # Rows arrive about oldest first: once the one a quarter of the way in is out of
        # the window (and its margin), the index is built again without the stale ones
        # (each row costs about one rebuild in all).
        if len(index) and index[len(index) // 4].fetched_at < margin:
            index = kept.index = StoryIndex(c for c in index if c.fetched_at >= margin)
        for c in fresh:
            index.add(c)
        return index


_CANDIDATES = (select(_ITEMS.c.id, _ITEMS.c.story_id, _ITEMS.c.feed_id, _ITEMS.c.fetched_at,
                      _ITEMS.c.title_key, _ITEMS.c.simhash)
               .where(_ITEMS.c.fetched_at >= bindparam("b_since"),
                      _ITEMS.c.story_id.is_not(None), _ITEMS.c.id > bindparam("b_after")))


def _read_candidates(conn: Connection, since: datetime, after: int = 0
                     ) -> list[StoryCandidate]:
    rows = conn.execute(_CANDIDATES, {"b_since": since, "b_after": after})
    return [StoryCandidate(*r) for r in rows]


class _Kept:
    def __init__(self) -> None:
        self.index = StoryIndex()
        self.after = 0
        """The highest item id read."""


_CACHES: weakref.WeakKeyDictionary[Any, _Kept] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()
_MARGIN = timedelta(hours=1)


def forget_stories(engine: Any) -> None:
    """Drop the kept candidates (items were deleted: prune)."""
    with _CACHE_LOCK:
        _CACHES.pop(engine, None)

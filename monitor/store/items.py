"""Writing a poll's new items, their matches and outbox rows: in bulk.

Most new items match nothing: they are inserted in one statement (``executemany``
with ``RETURNING``), not as ORM objects flushed one by one. The few that match then
get their story, their matches and their outbox rows in the order the feed served
them, exactly as before: a matched item joins the story of an item seen within the
window, this poll's earlier items included, and a channel already alerted on that
story gets a ``merged`` row.

``RETURNING`` gives each row's id with its key (an item's key is unique in its feed,
a match's item and watchlist too), not in parameter order: asking SQLAlchemy for the
parameter order made it insert one row per statement on SQLite.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from ..dedup import StoryCandidate, StoryKeys, find_story
from .models import Item, Match, Outbox, Watchlist

if TYPE_CHECKING:
    from .repo import NewItem, PollCounts

__all__ = ["known_keys", "write_items"]

_CHUNK = 500
"""Keys per ``IN (…)``: well under SQLite's and PostgreSQL's parameter limits."""
_ITEMS = cast(Table, Item.__table__)
_MATCHES = cast(Table, Match.__table__)
_OUTBOX = cast(Table, Outbox.__table__)
# Built once, with an expanding parameter for the keys: building ``key IN (…)`` from
# the values made a bound parameter object per key, per poll.
_KNOWN_KEYS = select(_ITEMS.c.key).where(_ITEMS.c.feed_id == bindparam("b_feed_id"),
                                        _ITEMS.c.key.in_(bindparam("b_keys", expanding=True)))
"""Which of ``b_keys`` the feed ``b_feed_id`` has."""
_SERVED = (update(_ITEMS)
           .where(_ITEMS.c.feed_id == bindparam("b_feed_id"),
                  _ITEMS.c.key.in_(bindparam("b_keys", expanding=True)))
           .values(last_seen_at=bindparam("b_now")))
_STORY = (update(_ITEMS).where(_ITEMS.c.id == bindparam("b_item_id"))
          .values(story_id=bindparam("b_story_id")))


def known_keys(conn: Connection, feed_id: int, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` the feed already has."""
    known: set[str] = set()
    for i in range(0, len(keys), _CHUNK):
        known.update(conn.execute(_KNOWN_KEYS, {"b_feed_id": feed_id,
                                               "b_keys": keys[i : i + _CHUNK]}).scalars())
    return known


def write_items(s: Session, feed_id: int, items: Sequence[NewItem], seen: Sequence[str],
                now: datetime, story_window: timedelta, counts: PollCounts) -> None:
    """The new items of a poll or a push with their matches and outbox rows; and the
    time the feed last served each key in ``seen``. Items the feed has are skipped."""
    conn = s.connection()
    known = known_keys(conn, feed_id, list(dict.fromkeys([*seen, *(i.key for i in items)])))
    served = [k for k in dict.fromkeys(seen) if k in known]  # new items are inserted as seen
    for i in range(0, len(served), _CHUNK):
        conn.execute(_SERVED, {"b_feed_id": feed_id, "b_keys": served[i : i + _CHUNK],
                               "b_now": now})
    if not items:
        return
    fresh: list[NewItem] = []
    for new in items:
        if new.key not in known:
            known.add(new.key)
            fresh.append(new)
    if not fresh:
        return
    rows = [{"feed_id": feed_id, "key": n.key, "guid": n.guid, "link": n.link,
             "title": n.title, "summary": n.summary, "content": n.content,
             "author": n.author, "published_at": n.published_at, "fetched_at": now,
             "last_seen_at": now, "story_id": None, "title_key": n.title_key,
             "simhash": n.simhash} for n in fresh]
    by_key = {key: item_id for item_id, key in conn.execute(
        insert(_ITEMS).returning(_ITEMS.c.id, _ITEMS.c.key), rows)}
    ids = [by_key[n.key] for n in fresh]
    counts.new_items += len(fresh)
    if any(n.matches for n in fresh):
        _write_matches(s, feed_id, fresh, ids, now, story_window, counts)


def _write_matches(s: Session, feed_id: int, fresh: Sequence[NewItem], ids: Sequence[int],
                   now: datetime, story_window: timedelta, counts: PollCounts) -> None:
    """Story, matches and outbox rows of the matched items, in the feed's order.

    The stories are found first (an item may join the story of an earlier one of this
    poll), then written in one statement, as are the matches; the outbox rows follow
    one at a time, in order, since an earlier row may merge a later one. A row's merge
    depends only on the outbox rows already written, so this is the order of writing
    each item whole, one after the other."""
    conn = s.connection()
    watchlist_ids = {n: i for n, i in conn.execute(select(Watchlist.name, Watchlist.id))}
    candidates = _story_candidates(s, now - story_window)
    matched: list[tuple[NewItem, int, int | None]] = []  # item, id, story joined (or None)
    stories = []
    for new, item_id in zip(fresh, ids, strict=True):
        if not new.matches:
            continue
        story = find_story(StoryKeys(new.title_key, new.simhash), candidates, now=now,
                           window=story_window)
        story_id = item_id if story is None else story
        candidates.append(StoryCandidate(item_id, story_id, feed_id, now,
                                         new.title_key, new.simhash))
        matched.append((new, item_id, story))
        stories.append({"b_item_id": item_id, "b_story_id": story_id})
    conn.execute(_STORY, stories)
    match_rows = [{"item_id": item_id, "watchlist_id": watchlist_ids[m.watchlist],
                   "rules": m.rules, "snippet": m.snippet, "marks": m.marks,
                   "created_at": now} for new, item_id, _ in matched for m in new.matches]
    match_ids = {(item_id, watchlist_id): match_id for match_id, item_id, watchlist_id in
                 conn.execute(insert(_MATCHES).returning(_MATCHES.c.id, _MATCHES.c.item_id,
                                                         _MATCHES.c.watchlist_id), match_rows)}
    for new, item_id, story in matched:
        for m in new.matches:
            match_id = match_ids[item_id, watchlist_ids[m.watchlist]]
            counts.matches += 1
            counts.watchlists.add(m.watchlist)
            counts.by_watchlist[m.watchlist] = counts.by_watchlist.get(m.watchlist, 0) + 1
            for channel in m.channels:  # one at a time: an earlier row may merge this one
                merged = story is not None and _story_alerted(s, story, channel)
                conn.execute(insert(_OUTBOX).values(
                    match_id=match_id, channel=channel,
                    status="merged" if merged else "pending", attempts=0, errors=[],
                    next_attempt_at=now, created_at=now))
                counts.alerts += not merged


def _story_candidates(s: Session, since: datetime) -> list[StoryCandidate]:
    """Matched items fetched since ``since``: the only ones that can share a story with
    a new alert. On SQLite (one writer, ids in commit order) they are kept between
    polls and only the rows added since are read: re-reading every matched item of
    the window for every poll made a cold cycle quadratic in its feeds."""
    engine = s.get_bind()
    if engine.dialect.name != "sqlite":
        return _read_candidates(s, since)
    with _CACHE_LOCK:
        cache = _CACHES.setdefault(engine, _Candidates())
        margin = since - _MARGIN  # polls' clocks differ a little; find_story filters
        fresh = _read_candidates(s, margin, after=cache.after)
        if fresh:
            cache.after = max(c.item_id for c in fresh)
        if cache.rows and cache.rows[0].fetched_at < margin:  # oldest first, about
            cache.rows = [c for c in cache.rows if c.fetched_at >= margin]
        cache.rows += fresh
        return list(cache.rows)


_CANDIDATES = (select(_ITEMS.c.id, _ITEMS.c.story_id, _ITEMS.c.feed_id, _ITEMS.c.fetched_at,
                      _ITEMS.c.title_key, _ITEMS.c.simhash)
               .where(_ITEMS.c.fetched_at >= bindparam("b_since"),
                      _ITEMS.c.story_id.is_not(None), _ITEMS.c.id > bindparam("b_after")))


def _read_candidates(s: Session, since: datetime, after: int = 0) -> list[StoryCandidate]:
    rows = s.connection().execute(_CANDIDATES, {"b_since": since, "b_after": after})
    return [StoryCandidate(*r) for r in rows]


class _Candidates:
    def __init__(self) -> None:
        self.rows: list[StoryCandidate] = []
        self.after = 0
        """The highest item id read."""


_CACHES: weakref.WeakKeyDictionary[Any, _Candidates] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()
_MARGIN = timedelta(hours=1)


def forget_stories(engine: Any) -> None:
    """Drop the kept candidates (items were deleted: prune)."""
    with _CACHE_LOCK:
        _CACHES.pop(engine, None)


def _story_alerted(s: Session, story: int, channel: str) -> bool:
    query = (select(Outbox.id).join(Match, Outbox.match_id == Match.id)
             .join(Item, Match.item_id == Item.id)
             .where(Item.story_id == story, Outbox.channel == channel,
                    Outbox.status != "merged").limit(1))
    return s.scalar(query) is not None


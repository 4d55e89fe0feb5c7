"""Stored matches for reading (the console's Matches page): newest first, filtered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from .models import Feed, Item, Match, Watchlist
from .outbox import Source, _sources

__all__ = ["MatchRow", "recent_matches", "watchlist_names"]


@dataclass(frozen=True)
class MatchRow:
    id: int
    watchlist: str
    item_id: int
    title: str
    link: str | None
    feed_url: str
    feed_title: str | None
    published_at: datetime | None
    created_at: datetime
    rules: list[dict[str, Any]]
    snippet: str
    marks: list[list[int]]
    also: tuple[Source, ...] = ()
    """The other feeds that carried the same story."""


def recent_matches(engine: Engine, *, watchlist: str | None = None, feed: str | None = None,
                   since: datetime | None = None, until: datetime | None = None,
                   limit: int = 50, offset: int = 0) -> list[MatchRow]:
    """Matches found in [since, until), newest first, of one watchlist and one feed (by
    URL) when given."""
    with Session(engine) as s:
        query = (select(Match, Item, Feed, Watchlist.name)
                 .join(Item, Match.item_id == Item.id)
                 .join(Feed, Item.feed_id == Feed.id)
                 .join(Watchlist, Match.watchlist_id == Watchlist.id)
                 .order_by(Match.created_at.desc(), Match.id.desc())
                 .limit(limit).offset(offset))
        if watchlist:
            query = query.where(Watchlist.name == watchlist)
        if feed:
            query = query.where(Feed.url == feed)
        if since is not None:
            query = query.where(Match.created_at >= since)
        if until is not None:
            query = query.where(Match.created_at < until)
        rows = list(s.execute(query))
        also = _sources(s, {i.story_id for _, i, _, _ in rows if i.story_id})
        return [
            MatchRow(
                id=m.id, watchlist=wl, item_id=i.id, title=i.title, link=i.link,
                feed_url=f.url, feed_title=f.title, published_at=i.published_at,
                created_at=m.created_at, rules=list(m.rules), snippet=m.snippet,
                marks=list(m.marks),
                also=tuple(src for item_id, src in also.get(i.story_id or -1, [])
                           if item_id != i.id and src.feed_url != f.url),
            )
            for m, i, f, wl in rows
        ]


def watchlist_names(engine: Engine) -> list[str]:
    """Every watchlist that has a row (matches refer to it), by name."""
    with Session(engine) as s:
        return list(s.scalars(select(Watchlist.name).order_by(Watchlist.name)))

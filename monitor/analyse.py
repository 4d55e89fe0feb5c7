"""What a poll finds in a parsed feed: each distinct entry as a ``NewItem``, with the
watchlists it matches, their snippets and channels, and its story keys.

This is pure CPU and runs where the feed was parsed: in a parse worker
(``workers.ParseWorkers.analyse``), so matching uses the worker's core and not the
daemon's. The worker gets the ``Analyser`` (the matcher, the routes) pickled, once per
version. Every entry is analysed, new or not: the daemon does not know which items a
feed already has until it writes them, and the store skips those (an entry it already
has costs a match, never a second alert).

The module imports no database or HTTP code, so a worker starts small.
"""

from __future__ import annotations

import functools
import itertools
import pickle
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from .dedup import identity, story_keys
from .match import EVERY, Document, Matcher, Watchlist, WatchlistMatch, snippet
from .parse import Entry, ParsedFeed

__all__ = ["Analysed", "Analyser", "NewItem", "NewMatch", "match_entry"]

@dataclass(frozen=True)
class NewMatch:
    watchlist: str
    rules: list[dict[str, Any]]
    snippet: str
    marks: list[list[int]]
    channels: tuple[str, ...]


class NewItem(NamedTuple):
    """A new entry as the store takes it. A tuple: a worker's answer holds thousands of
    them, and each is made from a tuple of its values in C (``_item_of``), in the
    worker and again where the daemon unpickles the answer: no Python call nor
    dictionary per item."""

    key: str
    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str
    author: str
    published_at: datetime | None
    matches: tuple[NewMatch, ...] = ()
    title_key: str | None = None
    simhash: str | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _item_of, (tuple(self),)


_item_of = functools.partial(tuple.__new__, NewItem)
"""``NewItem`` of a tuple of its values, in C (a NamedTuple's own ``__new__`` is a
Python function)."""


def _texts(entry: Entry, feed_title: str | None,
           fields: Collection[str]) -> dict[str, str | None]:
    """What the watchlists see of a new entry, as text: the ``fields`` the matcher's
    rules look at (the others would be read for nothing)."""
    texts = {"title": entry.title, "summary": entry.summary, "content": entry.content,
             "author": entry.author, "feed": feed_title, "url": entry.link}
    return {name: text for name, text in texts.items() if name in fields}


def match_entry(entry: Entry, feed_title: str | None, matcher: Matcher,
                routes: Mapping[str, tuple[str, ...]],
                min_rules: Mapping[str, int] | None = None) -> tuple[NewMatch, ...]:
    """Every watchlist that matches the entry, with its snippet and the channels it goes
    to: those subscribed to the watchlist (or to every watchlist, ``"*"``) whose
    ``min_rules`` the match reaches."""
    texts = _texts(entry, feed_title, matcher.scanned)
    if matcher.excludes(texts):  # most items: no document built, nothing evaluated
        return ()
    doc = Document.of(**texts)
    out = []
    for m in matcher.match(doc):
        routed = dict.fromkeys((*routes.get(m.watchlist, ()), *routes.get(EVERY, ())))
        channels = tuple(c for c in routed if len(m.rules) >= (min_rules or {}).get(c, 1))
        out.append(_new_match(doc, m, channels))
    return tuple(out)


def _new_match(doc: Document, m: WatchlistMatch, channels: tuple[str, ...]) -> NewMatch:
    snip = snippet(doc, m.terms)
    rules = [{"index": r.index, "rule": r.rule,
              "terms": [{"field": t.field, "start": t.start, "end": t.end, "text": t.text}
                        for t in r.terms]}
             for r in m.rules]
    return NewMatch(m.watchlist, rules, snip.text, [list(x) for x in snip.marks], channels)


@dataclass(frozen=True)
class Analysed:
    """A parsed feed with its entries analysed: ``items`` has each distinct entry (a
    guid repeated within the feed counts once), ``seen`` every entry's key."""

    feed: ParsedFeed
    """The feed without its entries (``entries`` is empty): they are the items, and a
    worker's answer would carry each twice."""
    items: list[NewItem]
    seen: list[str]
    published: list[datetime]
    """The entries' publication dates, where they have one (the adaptive interval)."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled with its items as plain tuples, in one call: no Python call per item
        either way."""
        return _analysed, (self.feed, list(map(tuple, self.items)), self.seen,
                           self.published)


def _analysed(feed: ParsedFeed, items: list[tuple[Any, ...]], seen: list[str],
              published: list[datetime]) -> Analysed:
    if set(map(len, items)) - {len(NewItem._fields)}:  # a worker of other code (an upgrade)
        raise ValueError("an answer's items do not have NewItem's fields")
    return Analysed(feed, list(map(_item_of, items)), seen, published)


_VERSIONS = itertools.count(1)


@dataclass(eq=False)
class Analyser:
    """The matcher and the routes of one configuration: what analysing needs. A parse
    worker keeps the last one it was sent; ``version`` tells it a new one apart."""

    matcher: Matcher
    routes: Mapping[str, tuple[str, ...]]
    min_rules: Mapping[str, int] = field(default_factory=dict)
    version: int = field(default_factory=lambda: next(_VERSIONS))
    _pickled: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(cls, watchlists: Sequence[Watchlist],
           routes: Mapping[str, tuple[str, ...]],
           min_rules: Mapping[str, int] | None = None) -> Analyser:
        return cls(Matcher.of(watchlists), dict(routes), dict(min_rules or {}))

    def pickled(self) -> bytes:
        """This analyser as a worker receives it; pickled once, then kept."""
        if self._pickled is None:
            self._pickled = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        return self._pickled

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pickled": None}

    def analyse(self, parsed: ParsedFeed, feed_title: str | None = None) -> Analysed:
        """Every distinct entry of ``parsed`` as a NewItem; ``feed_title`` is the title
        the feed is stored under (the feed's own title when None)."""
        keyed: dict[str, Entry] = {}
        for e in parsed.entries:
            keyed.setdefault(identity(e), e)
        title = feed_title or parsed.title
        items = []
        for key, e in keyed.items():
            matches = match_entry(e, title, self.matcher, self.routes, self.min_rules)
            story = story_keys(e.title, e.content or e.summary) if matches else None
            items.append(_item_of((  # NewItem's fields, in order
                key, e.guid, e.link, e.title, e.summary, e.content, e.author, e.published,
                matches, story.title_key if story else None, story.simhash if story else None)))
        return Analysed(replace(parsed, entries=()), items, list(keyed),
                        [e.published for e in parsed.entries if e.published])

"""One poll of one feed: fetch, parse, match, store. The update loop's single step.

Parsing and matching are pure and run in a worker thread, so a large feed does not
stall the other fetches. The store write is one transaction per poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .dedup import identity
from .errors import FeedError
from .fetch import Fetcher, FetchResult
from .match import Document, Matcher, Watchlist, WatchlistMatch, snippet
from .parse import Entry, parse_feed
from .store import FeedRow, FetchState, NewItem, NewMatch, PollCounts, Store, StoredItem

__all__ = ["PollReport", "Poller", "document", "match_entry", "stored_document"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollReport:
    feed: str
    ok: bool
    status: int | None
    error: str | None
    counts: PollCounts


def document(entry: Entry, feed_title: str | None, link: str | None = None) -> Document:
    """What the watchlists see of a new entry."""
    return Document.of(title=entry.title, summary=entry.summary, content=entry.content,
                       author=entry.author, feed=feed_title, url=link or entry.link)


def stored_document(item: StoredItem) -> Document:
    """What the watchlists saw of a stored item: the same fields as ``document``."""
    return Document.of(title=item.title, summary=item.summary, content=item.content,
                       author=item.author, feed=item.feed_title, url=item.link)


def match_entry(entry: Entry, feed_title: str | None, matcher: Matcher,
                routes: Mapping[str, tuple[str, ...]]) -> tuple[NewMatch, ...]:
    """Every watchlist that matches the entry, with its snippet and the channels it goes to."""
    doc = document(entry, feed_title)
    return tuple(_new_match(doc, m, routes.get(m.watchlist, ())) for m in matcher.match(doc))


def _new_match(doc: Document, m: WatchlistMatch, channels: tuple[str, ...]) -> NewMatch:
    snip = snippet(doc, m.terms)
    rules = [{"index": r.index, "rule": r.rule,
              "terms": [{"field": t.field, "start": t.start, "end": t.end, "text": t.text}
                        for t in r.terms]}
             for r in m.rules]
    return NewMatch(m.watchlist, rules, snip.text, [list(x) for x in snip.marks], channels)


class Poller:
    def __init__(self, store: Store, fetcher: Fetcher, watchlists: Sequence[Watchlist],
                 routes: Mapping[str, tuple[str, ...]]) -> None:
        self.store = store
        self.fetcher = fetcher
        self.matcher = Matcher.of(watchlists)
        self.routes = routes

    async def poll(self, feed: FeedRow, now: datetime) -> PollReport:
        result = await self.fetcher.fetch(feed.url, feed.etag, feed.last_modified)
        next_check = now + feed.interval
        if result.error is None and result.not_modified:
            state = FetchState(now, next_check, True, 304, etag=result.etag,
                               last_modified=result.last_modified)
            return self._record(feed, state, [])
        if result.error is not None:
            return self._record(feed, FetchState(now, next_check, False, result.status,
                                                 error=result.error), [])
        try:
            title, items = await asyncio.to_thread(self._process, feed, result)
        except FeedError as exc:
            return self._record(feed, FetchState(now, next_check, False, result.status,
                                                 error=str(exc)), [])
        state = FetchState(now, next_check, True, result.status, etag=result.etag,
                           last_modified=result.last_modified, title=title)
        return self._record(feed, state, items)

    def _process(self, feed: FeedRow, result: FetchResult) -> tuple[str, list[NewItem]]:
        parsed = parse_feed(result.body, result.headers)
        if parsed.warning:
            log.info("feed %s is malformed but readable: %s", feed.url, parsed.warning)
        keyed: dict[str, Entry] = {}
        for e in parsed.entries:
            keyed.setdefault(identity(e), e)  # a guid repeated within the feed counts once
        known = self.store.known_keys(feed.id, list(keyed))
        feed_title = feed.title or parsed.title
        items = []
        for key, e in keyed.items():
            if key in known:
                continue
            items.append(NewItem(
                key=key, guid=e.guid, link=e.link, title=e.title, summary=e.summary,
                content=e.content, author=e.author, published_at=e.published,
                matches=match_entry(e, feed_title, self.matcher, self.routes),
            ))
        return parsed.title, items

    def _record(self, feed: FeedRow, state: FetchState, items: list[NewItem]) -> PollReport:
        counts = self.store.record_poll(feed.id, state, items)
        if state.ok:
            log.info("polled %s: %s, %d new items, %d matches", feed.url,
                     state.status, counts.new_items, counts.matches)
        else:
            log.warning("feed %s failed: %s", feed.url, state.error)
        return PollReport(feed.url, state.ok, state.status, state.error, counts)

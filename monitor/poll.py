"""One poll of one feed: fetch, parse, match, store. The update loop's single step.

Parsing runs where the daemon can stop it (``workers.ParseWorkers``: a process with a
deadline and a memory cap); without one, in a thread. Matching runs in a worker
thread, so a large feed does not stall the other fetches. The store write is one
transaction per poll.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .config import EVERY
from .dedup import identity, story_keys
from .errors import FeedError, StoreError
from .fetch import FeedAuth, Fetcher, FetchResult
from .match import Document, Matcher, Watchlist, WatchlistMatch, snippet
from .parse import Entry, ParsedFeed, parse_feed
from .schedule import adaptive_interval, next_check
from .store import (
    FeedRow,
    FetchState,
    NewItem,
    NewMatch,
    PollCounts,
    StateWrite,
    Store,
    StoredItem,
)
from .websub import Push, Subscriber, discover

__all__ = ["FeedOptions", "ParseFn", "PollReport", "Poller", "document", "match_entry",
           "parse_in_thread", "stored_document"]

log = logging.getLogger(__name__)

ParseFn = Callable[[bytes, Mapping[str, str], str], Awaitable[ParsedFeed]]
"""Feed bytes, response headers, URL -> the parsed feed; raises FeedError."""


async def parse_in_thread(body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
    """Parse in a worker thread: for tests and tools; the daemon uses ParseWorkers."""
    return await asyncio.to_thread(parse_feed, body, headers, url)


@dataclass(frozen=True)
class PollReport:
    feed: str
    ok: bool
    status: int | None
    error: str | None
    counts: PollCounts
    fetch_seconds: float = 0.0


def document(entry: Entry, feed_title: str | None, link: str | None = None,
             fields: Collection[str] | None = None) -> Document:
    """What the watchlists see of a new entry; only ``fields`` when given (those the
    matcher's rules look at: the others would be read for nothing)."""
    return Document.of(**_texts(entry, feed_title, link, fields))


def _texts(entry: Entry, feed_title: str | None, link: str | None = None,
           fields: Collection[str] | None = None) -> dict[str, str | None]:
    """``document``'s fields, as text."""
    texts = {"title": entry.title, "summary": entry.summary, "content": entry.content,
             "author": entry.author, "feed": feed_title, "url": link or entry.link}
    if fields is not None:
        texts = {name: text for name, text in texts.items() if name in fields}
    return texts


def stored_document(item: StoredItem) -> Document:
    """What the watchlists saw of a stored item: the same fields as ``document``."""
    return Document.of(title=item.title, summary=item.summary, content=item.content,
                       author=item.author, feed=item.feed_title, url=item.link)


def match_entry(entry: Entry, feed_title: str | None, matcher: Matcher,
                routes: Mapping[str, tuple[str, ...]],
                min_rules: Mapping[str, int] | None = None) -> tuple[NewMatch, ...]:
    """Every watchlist that matches the entry, with its snippet and the channels it goes
    to: those subscribed to the watchlist (or to every watchlist, ``"*"``) whose
    ``min_rules`` the match reaches."""
    texts = _texts(entry, feed_title, fields=matcher.scanned)
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
class FeedOptions:
    """Per-feed fetch settings that live in the configuration, not the database."""

    auth: FeedAuth | None = None
    adaptive: tuple[timedelta, timedelta] | None = None
    """(floor, ceiling) when the interval follows the feed's publishing rate."""


class StateWriter:
    """Writes the states of polls that store no items (304s, failures) together: each
    write joins a batch, and a batch is written, in one transaction from one thread,
    as soon as the previous one is done. A round of 304s then costs a few commits, not
    one per feed queueing on SQLite's lock; nothing waits for a batch to fill."""

    def __init__(self, store: Store, max_batch: int = 500) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: list[tuple[StateWrite, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, write: StateWrite) -> None:
        """Raises StoreError if this state was refused (or the batch failed)."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="write poll states")
        await future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[:self.max_batch]
            del self._queue[:self.max_batch]
            try:
                errors: list[StoreError | None] = await asyncio.to_thread(
                    self.store.record_states, [w for w, _ in batch])
            except StoreError as exc:
                errors = [exc] * len(batch)
            except Exception as exc:  # a bug must fail these polls, not leave them waiting
                log.exception("writing the states of %d polls failed", len(batch))
                errors = [StoreError(f"cannot save the polls of {len(batch)} feeds: "
                                     f"internal error ({type(exc).__name__}); see the log")
                          ] * len(batch)
            for (_, future), error in zip(batch, errors, strict=True):
                if future.done():  # its poll was cancelled
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)


class Poller:
    def __init__(self, store: Store, fetcher: Fetcher, watchlists: Sequence[Watchlist],
                 routes: Mapping[str, tuple[str, ...]],
                 options: Mapping[str, FeedOptions] | None = None,
                 jitter: Callable[[], float] = random.random, *,
                 min_rules: Mapping[str, int] | None = None,
                 story_window: timedelta = timedelta(hours=48),
                 parse: ParseFn = parse_in_thread,
                 owner: str | None = None,
                 websub: Subscriber | None = None,
                 default_options: FeedOptions | None = None) -> None:
        self.store = store
        self.owner = owner
        """The worker whose claims this poller's writes must hold (None: no claims)."""
        self.fetcher = fetcher
        self.matcher = Matcher.of(watchlists)
        self.routes = routes
        self.options = options or {}
        self.default_options = default_options or FeedOptions()
        """For a feed not in ``options``: one added in the console or by OPML import."""
        self.jitter = jitter
        self.min_rules = dict(min_rules or {})
        self.story_window = story_window
        self.parse = parse
        self.websub = websub
        """Subscribes feeds that advertise a WebSub hub (None: WebSub off)."""
        self.states = StateWriter(store)

    async def poll(self, feed: FeedRow, now: datetime) -> PollReport:
        """Poll one feed. Never raises: whatever goes wrong is the report's error, and is
        recorded on the feed when the database allows."""
        try:
            return await self._poll(feed, now)
        except StoreError as exc:
            log.error("could not store the poll of %s: %s", feed.url, exc)
            return PollReport(feed.url, False, None, f"database: {exc}", PollCounts())

    def _state(self, feed: FeedRow, now: datetime, result: FetchResult, *, ok: bool,
               error: str | None = None, title: str | None = None,
               interval: timedelta | None = None, ttl: timedelta | None = None) -> FetchState:
        failures = 0 if ok else feed.consecutive_failures + 1
        decision = next_check(now, interval=interval or feed.interval, status=result.status,
                              ok=ok, failures=failures, headers=result.headers, ttl=ttl,
                              jitter=self.jitter())
        if result.moved_to:
            log.info("feed %s moved permanently to %s", feed.url, result.moved_to)
        return FetchState(
            now, decision.at, ok, result.status, error=error,
            etag=result.etag if ok else None,
            last_modified=result.last_modified if ok else None,
            title=title, moved_to=result.moved_to,
        )

    async def _poll(self, feed: FeedRow, now: datetime) -> PollReport:
        options = self.options.get(feed.url, self.default_options)
        result = await self.fetcher.fetch(feed.location, feed.etag, feed.last_modified,
                                          options.auth)
        if result.error is None and result.not_modified:
            return await self._record(feed, self._state(feed, now, result, ok=True), [], result)
        if result.error is not None:
            return await self._record(feed, self._state(feed, now, result, ok=False,
                                                  error=result.error), [], result)
        try:
            parsed = await self.parse(result.body, result.headers, feed.location)
            items, seen = await asyncio.to_thread(self._process, feed, parsed)
        except FeedError as exc:
            return await self._record(feed, self._state(feed, now, result, ok=False,
                                                  error=str(exc)), [], result)
        except StoreError:
            raise
        except Exception as exc:  # a bug costs this feed this poll, never the daemon
            log.exception("processing %s failed", feed.url)
            error = f"internal error while processing the feed ({type(exc).__name__}); see the log"
            return await self._record(
                feed, self._state(feed, now, result, ok=False, error=error), [], result)
        interval = None
        if options.adaptive is not None:
            interval = adaptive_interval([e.published for e in parsed.entries if e.published],
                                         *options.adaptive)
        state = self._state(feed, now, result, ok=True, title=parsed.title, interval=interval,
                            ttl=parsed.ttl)
        report = await self._record(feed, state, items, result, seen)
        if self.websub is not None:
            advert = discover(parsed.hub, parsed.self_link, result.headers, feed.location)
            try:
                await self.websub.consider(feed.id, advert, now)
            except StoreError as exc:  # the poll is stored; the next one tries again
                log.error("could not subscribe %s at its WebSub hub: %s", feed.url, exc)
            except Exception:  # nor may a hub's oddity (or a bug) undo a stored poll
                log.exception("subscribing %s at its WebSub hub failed", feed.url)
        return report

    async def push(self, push: Push) -> PollReport:
        """Content a WebSub hub pushed (signature already checked): parsed, matched and
        stored like a poll's, leaving the feed's fetch state alone. Never raises."""
        try:
            feed = await asyncio.to_thread(self.store.feed, push.feed_id)
            if feed is None:
                raise FeedError("the feed no longer exists")
            parsed = await self.parse(push.body, push.headers, feed.location)
            items, seen = await asyncio.to_thread(self._process, feed, parsed)
            counts = await asyncio.to_thread(self.store.record_push, feed.id, items, seen,
                                             push.at, story_window=self.story_window)
        except (FeedError, StoreError) as exc:
            log.warning("content pushed for %s not stored: %s", push.feed_url, exc)
            return PollReport(push.feed_url, False, None, str(exc), PollCounts())
        except Exception as exc:  # a bug costs this push, never the daemon; polls go on
            log.exception("processing content pushed for %s failed", push.feed_url)
            return PollReport(push.feed_url, False, None, type(exc).__name__, PollCounts())
        log.info("pushed to %s by its hub: %d new items, %d matches", push.feed_url,
                 counts.new_items, counts.matches)
        return PollReport(push.feed_url, True, None, None, counts)

    def _process(self, feed: FeedRow, parsed: ParsedFeed) -> tuple[list[NewItem], list[str]]:
        """Match the new entries; also the keys of every entry served (for retention)."""
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
            matches = match_entry(e, feed_title, self.matcher, self.routes, self.min_rules)
            story = story_keys(e.title, e.content or e.summary) if matches else None
            items.append(NewItem(
                key=key, guid=e.guid, link=e.link, title=e.title, summary=e.summary,
                content=e.content, author=e.author, published_at=e.published,
                matches=matches, title_key=story.title_key if story else None,
                simhash=story.simhash if story else None,
            ))
        return items, list(keyed)

    async def _record(self, feed: FeedRow, state: FetchState, items: list[NewItem],
                      result: FetchResult, seen: list[str] | None = None) -> PollReport:
        if not items and not seen:  # a 304 or a failure: batched with the others
            await self.states.write(StateWrite(feed.id, state, self.owner))
            counts = PollCounts()
        else:  # in a thread: a thousand items must not stall the event loop
            counts = await asyncio.to_thread(self.store.record_poll, feed.id, state, items,
                                             seen or [], story_window=self.story_window,
                                             owner=self.owner)
        if state.ok:  # a 304 at DEBUG: 10,000 feeds are 10,000 unchanged lines a round
            log.log(logging.DEBUG if state.status == 304 else logging.INFO,
                    "polled %s: %s, %d new items, %d matches", feed.url, state.status,
                    counts.new_items, counts.matches)
        else:
            log.warning("feed %s failed: %s", feed.url, state.error)
        return PollReport(feed.url, state.ok, state.status, state.error, counts,
                          result.elapsed)

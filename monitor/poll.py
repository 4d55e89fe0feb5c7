"""One poll of one feed: fetch, parse, match, store. The update loop's single step.

Parsing and matching run where the daemon can stop them and on another core
(``workers.ParseWorkers``: a process with a deadline and a memory cap); without one,
in a thread. The store writes polls in batches (``PollWriter``), a transaction for all
the polls done meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .analyse import Analysed, Analyser
from .errors import FeedError, StoreError
from .fetch import FeedAuth, Fetcher, FetchResult
from .match import Document, Matcher, Watchlist
from .parse import parse_feed
from .schedule import adaptive_interval, next_check
from .store import (
    FeedRow,
    FetchState,
    NewItem,
    PollCounts,
    PollWrite,
    Store,
    StoredItem,
)
from .websub import Push, Subscriber, discover

__all__ = ["AnalyseFn", "FeedOptions", "PollReport", "PollWriter", "Poller", "Ticket",
           "analyse_in_thread", "stored_document"]

log = logging.getLogger(__name__)

AnalyseFn = Callable[[bytes, Mapping[str, str], str, Analyser, str | None],
                     Awaitable[Analysed]]
"""Feed bytes, response headers, URL, analyser, the feed's stored title -> the parsed
feed with its entries analysed; raises FeedError."""


async def analyse_in_thread(body: bytes, headers: Mapping[str, str], url: str,
                            analyser: Analyser, feed_title: str | None) -> Analysed:
    """Parse and analyse in a worker thread: for tests and tools; the daemon uses
    ParseWorkers, whose processes can be stopped."""
    return await asyncio.to_thread(
        lambda: analyser.analyse(parse_feed(body, headers, url), feed_title))


@dataclass(frozen=True)
class PollReport:
    feed: str
    ok: bool
    status: int | None
    error: str | None
    counts: PollCounts
    fetch_seconds: float = 0.0


def stored_document(item: StoredItem) -> Document:
    """What the watchlists saw of a stored item: the fields ``analyse.match_entry`` reads."""
    return Document.of(title=item.title, summary=item.summary, content=item.content,
                       author=item.author, feed=item.feed_title, url=item.link)


@dataclass(frozen=True)
class FeedOptions:
    """Per-feed fetch settings that live in the configuration, not the database."""

    auth: FeedAuth | None = None
    adaptive: tuple[timedelta, timedelta] | None = None
    """(floor, ceiling) when the interval follows the feed's publishing rate."""


class PollWriter:
    """Writes polls together: each joins a batch, and a batch is written, in one
    transaction from one thread (``Store.record_polls``), once the previous one is done.
    A round of cold polls, or of 304s, then costs a few commits, not one per feed
    queueing on SQLite's lock.

    A batch waits, at most ``linger`` seconds, for ``min_batch`` polls while more are on
    their way (``expect``): a transaction has a fixed cost (reading the story
    candidates, the commit), and written as they came, the polls of a cold round went
    out one to four a transaction, at twice the CPU of batches of 100. A poll that
    nobody else is running alongside is written at once."""

    def __init__(self, store: Store, story_window: timedelta = timedelta(hours=48),
                 max_batch: int = 500, max_items: int = 2000, *, min_batch: int = 32,
                 linger: float = 0.1) -> None:
        self.store = store
        self.story_window = story_window
        self.max_batch = max_batch
        self.max_items = max_items
        """A batch ends once its polls bring this many items (it has at least one poll):
        a transaction of a round of large feeds stays short."""
        self.min_batch = min_batch
        self.linger = linger
        self._queue: list[tuple[PollWrite, asyncio.Future[PollCounts]]] = []
        self._queued_items = 0
        self._writer: asyncio.Task[None] | None = None
        self._expected = 0
        """Polls on their way: expected (``expect``), not yet queued nor given up."""
        self._wake: asyncio.Future[None] | None = None

    def expect(self) -> Ticket:
        """A poll has started that will write (or ``Ticket.close`` when it will not)."""
        self._expected += 1
        return Ticket(self)

    async def write(self, write: PollWrite, ticket: Ticket | None = None) -> PollCounts:
        """Raises StoreError if this poll was refused (or the batch failed)."""
        future: asyncio.Future[PollCounts] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        self._queued_items += len(write.items)
        if ticket is not None:
            ticket.close()
        self._poke()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="write polls")
        return await future

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _gather(self) -> None:
        """Wait, ``linger`` at most, while fewer than ``min_batch`` polls (and
        ``max_items`` items) are queued and more are on their way."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger
        while (self._expected > 0 and len(self._queue) < self.min_batch
               and self._queued_items < self.max_items):
            left = deadline - loop.time()
            if left <= 0:
                return
            self._wake = loop.create_future()
            try:
                await asyncio.wait_for(self._wake, left)
            except TimeoutError:
                return
            finally:
                self._wake = None

    async def _drain(self) -> None:
        while self._queue:
            await self._gather()
            size, items = 0, 0
            while size < min(self.max_batch, len(self._queue)) and items < self.max_items:
                items += len(self._queue[size][0].items)
                size += 1
            batch = self._queue[:size]
            del self._queue[:size]
            self._queued_items -= items
            results: list[PollCounts | StoreError]
            try:
                results = await asyncio.to_thread(
                    self.store.record_polls, [w for w, _ in batch],
                    story_window=self.story_window)
            except StoreError as exc:
                results = [exc] * len(batch)
            except Exception as exc:  # a bug: it must cost only the poll it is in
                if len(batch) == 1:
                    log.exception("writing the poll of feed %d failed", batch[0][0].feed_id)
                    results = [_internal(batch[0][0], exc)]
                else:
                    log.exception("writing %d polls failed; writing them one by one",
                                  len(batch))
                    results = [await self._alone(w) for w, _ in batch]
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # its poll was cancelled
                    continue
                if isinstance(result, StoreError):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _alone(self, write: PollWrite) -> PollCounts | StoreError:
        """One poll in its own transaction, after its batch failed on a bug (and was
        rolled back): the polls beside the one it is in are stored, that one fails."""
        try:
            (result,) = await asyncio.to_thread(self.store.record_polls, [write],
                                                story_window=self.story_window)
            return result
        except StoreError as exc:
            return exc
        except Exception as exc:
            log.exception("writing the poll of feed %d failed", write.feed_id)
            return _internal(write, exc)


class Ticket:
    """A poll ``PollWriter`` expects: closed when the poll is queued, or gives up."""

    def __init__(self, writer: PollWriter) -> None:
        self.writer: PollWriter | None = writer

    def close(self) -> None:
        """Once; later calls do nothing."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer._expected -= 1
            writer._poke()


def _internal(write: PollWrite, exc: Exception) -> StoreError:
    return StoreError(f"cannot save the poll of feed {write.feed_id}: internal error "
                      f"({type(exc).__name__}); see the log")

class Poller:
    def __init__(self, store: Store, fetcher: Fetcher, watchlists: Sequence[Watchlist],
                 routes: Mapping[str, tuple[str, ...]],
                 options: Mapping[str, FeedOptions] | None = None,
                 jitter: Callable[[], float] = random.random, *,
                 min_rules: Mapping[str, int] | None = None,
                 story_window: timedelta = timedelta(hours=48),
                 analyse: AnalyseFn = analyse_in_thread,
                 owner: str | None = None,
                 websub: Subscriber | None = None,
                 default_options: FeedOptions | None = None,
                 prepare: Callable[[], None] | None = None) -> None:
        self.store = store
        self.owner = owner
        """The worker whose claims this poller's writes must hold (None: no claims)."""
        self.fetcher = fetcher
        self.routes = routes
        self.min_rules = dict(min_rules or {})
        self.analyser = Analyser.of(watchlists, routes, self.min_rules)
        self.options = options or {}
        self.default_options = default_options or FeedOptions()
        """For a feed not in ``options``: one added in the console or by OPML import."""
        self.jitter = jitter
        self.story_window = story_window
        self.analyse = analyse
        self.prepare = prepare
        """Called before a feed without validators (and not failing) is fetched: its
        body comes back whole, to be analysed (``ParseWorkers.prepare`` starts the
        workers then)."""
        self.websub = websub
        """Subscribes feeds that advertise a WebSub hub (None: WebSub off)."""
        self.writer = PollWriter(store, story_window)

    @property
    def matcher(self) -> Matcher:
        return self.analyser.matcher

    def use_watchlists(self, watchlists: Sequence[Watchlist]) -> None:
        """Match with these watchlists from the next poll on."""
        self.analyser = Analyser.of(watchlists, self.routes, self.min_rules)

    async def poll(self, feed: FeedRow, now: datetime) -> PollReport:
        """Poll one feed. Never raises: whatever goes wrong is the report's error, and is
        recorded on the feed when the database allows."""
        ticket = self.writer.expect()
        try:
            return await self._poll(feed, now, ticket)
        except StoreError as exc:
            log.error("could not store the poll of %s: %s", feed.url, exc)
            return PollReport(feed.url, False, None, f"database: {exc}", PollCounts())
        finally:
            ticket.close()

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

    async def _poll(self, feed: FeedRow, now: datetime, ticket: Ticket) -> PollReport:
        options = self.options.get(feed.url, self.default_options)
        if (self.prepare is not None and not feed.etag and not feed.last_modified
                and not feed.consecutive_failures):  # a failing feed may well fail again
            try:
                self.prepare()
            except Exception:  # only a head start: the analysis starts the workers anyway
                log.exception("starting the parse workers ahead of %s failed", feed.url)
        result = await self.fetcher.fetch(feed.location, feed.etag, feed.last_modified,
                                          options.auth)
        if result.error is None and result.not_modified:
            return await self._record(ticket, feed, self._state(feed, now, result, ok=True),
                                      [], result)
        if result.error is not None:
            return await self._record(ticket, feed, self._state(feed, now, result, ok=False,
                                                  error=result.error), [], result)
        try:
            analysed = await self._analyse(feed, result.body, result.headers)
            result = replace(result, body=b"")  # not kept while the poll waits for its write
        except FeedError as exc:
            return await self._record(ticket, feed, self._state(feed, now, result, ok=False,
                                                  error=str(exc)), [], result)
        except Exception as exc:  # a bug costs this feed this poll, never the daemon
            log.exception("processing %s failed", feed.url)
            error = f"internal error while processing the feed ({type(exc).__name__}); see the log"
            return await self._record(
                ticket, feed, self._state(feed, now, result, ok=False, error=error), [], result)
        parsed = analysed.feed
        interval = None
        if options.adaptive is not None:
            interval = adaptive_interval(analysed.published, *options.adaptive)
        state = self._state(feed, now, result, ok=True, title=parsed.title, interval=interval,
                            ttl=parsed.ttl)
        report = await self._record(ticket, feed, state, analysed.items, result, analysed.seen)
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
            analysed = await self._analyse(feed, push.body, push.headers)
            counts = await asyncio.to_thread(self.store.record_push, feed.id, analysed.items,
                                             analysed.seen, push.at,
                                             story_window=self.story_window)
        except (FeedError, StoreError) as exc:
            log.warning("content pushed for %s not stored: %s", push.feed_url, exc)
            return PollReport(push.feed_url, False, None, str(exc), PollCounts())
        except Exception as exc:  # a bug costs this push, never the daemon; polls go on
            log.exception("processing content pushed for %s failed", push.feed_url)
            return PollReport(push.feed_url, False, None, type(exc).__name__, PollCounts())
        log.info("pushed to %s by its hub: %d new items, %d matches", push.feed_url,
                 counts.new_items, counts.matches)
        return PollReport(push.feed_url, True, None, None, counts)

    async def _analyse(self, feed: FeedRow, body: bytes,
                       headers: Mapping[str, str]) -> Analysed:
        """Every distinct entry, matched (the store skips those the feed has); the
        keys of every entry served (for retention)."""
        analysed = await self.analyse(body, headers, feed.location, self.analyser, feed.title)
        if analysed.feed.warning:
            log.info("feed %s is malformed but readable: %s", feed.url, analysed.feed.warning)
        return analysed

    async def _record(self, ticket: Ticket, feed: FeedRow, state: FetchState, items: list[NewItem],
                      result: FetchResult, seen: list[str] | None = None) -> PollReport:
        counts = await self.writer.write(PollWrite(feed.id, state, items, seen or [],
                                                   self.owner), ticket)
        if state.ok:  # a 304 at DEBUG: 10,000 feeds are 10,000 unchanged lines a round
            log.log(logging.DEBUG if state.status == 304 else logging.INFO,
                    "polled %s: %s, %d new items, %d matches", feed.url, state.status,
                    counts.new_items, counts.matches)
        else:
            log.warning("feed %s failed: %s", feed.url, state.error)
        return PollReport(feed.url, state.ok, state.status, state.error, counts,
                          result.elapsed)

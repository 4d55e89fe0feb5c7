"""The states of polls that store no items (304s, failures) are written together: a
round of 304s costs a batch or two, not one transaction per feed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, event, select

from monitor.errors import StoreError
from monitor.fetch import Fetcher
from monitor.poll import Poller
from monitor.store import FetchState, NewItem, StateWrite, Store, create, migrate
from monitor.store.models import Item

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FEEDS = 20


class CountingStore(Store):
    """Counts the writes of polls; the first batch waits until every feed was fetched,
    so what the batches hold does not depend on how fast this machine is."""

    def __init__(self, engine: Engine, all_fetched: threading.Event) -> None:
        super().__init__(engine)
        self.all_fetched = all_fetched
        self.batches: list[int] = []
        self.polls = 0

    def record_states(self, writes: Sequence[StateWrite]) -> list[StoreError | None]:
        assert self.all_fetched.wait(30)
        self.batches.append(len(writes))
        return super().record_states(writes)

    def record_poll(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        self.polls += 1
        return super().record_poll(*args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    e = create(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(e)
    return e


def ok(at: datetime, status: int = 304) -> FetchState:
    return FetchState(at, at + timedelta(minutes=15), True, status, etag='"e"')


def test_a_round_of_304s_is_written_in_a_batch_or_two(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    all_fetched = threading.Event()
    store = CountingStore(engine, all_fetched)
    store.sync_feeds([(f"http://feeds.example/{i}", None, timedelta(minutes=15))
                      for i in range(FEEDS)], NOW)
    store.record_poll(store.feeds()[0].id, ok(NOW - timedelta(hours=1), 200),
                      [NewItem("k", None, None, "t", "", "", "", None)], ["k"])
    store.polls = 0
    fetched = []

    def handler(request: httpx.Request) -> httpx.Response:
        fetched.append(request.url)
        if len(fetched) == FEEDS:
            all_fetched.set()
        return httpx.Response(304, headers={"ETag": '"e"'})

    commits = []
    event.listen(engine, "commit", lambda conn: commits.append(1))

    async def round_() -> list[bool]:
        async with Fetcher(timeout=5, max_body_bytes=1000, concurrency=FEEDS, user_agent="t",
                           per_host=FEEDS, transport=httpx.MockTransport(handler)) as f:
            poller = Poller(store, f, [], {})
            reports = await asyncio.gather(*(poller.poll(feed, NOW)
                                             for feed in store.feeds(counts=False)))
            return [r.ok for r in reports]

    assert asyncio.run(round_()) == [True] * FEEDS
    assert store.polls == 0
    assert sum(store.batches) == FEEDS and len(store.batches) <= 2
    assert len(commits) == len(store.batches)
    feeds = store.feeds()
    assert {(f.last_status, f.last_checked_at, f.etag) for f in feeds} == {(304, NOW, '"e"')}
    with store._session() as s:  # the last response's items are still served
        assert list(s.scalars(select(Item.last_seen_at))) == [NOW]


def test_a_feed_taken_over_is_refused_alone(engine: Engine) -> None:
    """On SQLite and on PostgreSQL (the ``engine`` fixture of conftest)."""
    store = Store(engine)
    store.sync_feeds([(f"http://feeds.example/{i}", None, timedelta(minutes=15))
                      for i in range(3)], NOW)
    ids = [f.id for f in store.feeds()]
    for feed_id, key, hours in ((ids[0], "a0", 3), (ids[0], "a1", 2), (ids[2], "c0", 3)):
        store.record_poll(feed_id, ok(NOW - timedelta(hours=hours), 200),
                          [NewItem(key, None, None, "t", "", "", "", None)], [key])
    a, b, c = sorted(store.claim_due_feeds("me", NOW, timedelta(minutes=5), 10),
                     key=lambda f: f.url)
    store.release_feeds("me", [b.id])
    assert [f.id for f in store.claim_due_feeds("other", NOW, timedelta(minutes=5), 10)] == [
        b.id]
    failed = FetchState(NOW, NOW + timedelta(hours=1), False, 503, error="HTTP 503")
    errors = store.record_states([StateWrite(a.id, ok(NOW), "me"),
                                  StateWrite(b.id, ok(NOW), "me"),
                                  StateWrite(c.id, failed, "me")])
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], StoreError) and "taken over" in str(errors[1])
    rows = {f.id: f for f in store.feeds()}
    assert rows[a.id].last_status == 304 and rows[a.id].consecutive_failures == 0
    assert rows[b.id].last_status is None
    assert rows[c.id].last_error == "HTTP 503" and rows[c.id].consecutive_failures == 1
    assert store.record_states([]) == []
    with store._session() as s:
        seen = {k: t for k, t in s.execute(select(Item.key, Item.last_seen_at))}
    assert seen == {"a0": NOW - timedelta(hours=3),  # no longer served by a
                    "a1": NOW,                       # a's last response, still served
                    "c0": NOW - timedelta(hours=3)}  # c failed: nothing refreshed


class BrokenStore(Store):
    """A batch of states that fails with something other than a database error (a bug,
    a driver's own exception)."""

    def record_states(self, writes: Sequence[StateWrite]) -> list[StoreError | None]:
        raise RuntimeError("a bug")


def test_a_batch_failing_unexpectedly_fails_its_polls_instead_of_hanging_them(
        sqlite_engine: Engine) -> None:
    """The polls waiting on a batch get their error, whatever failed: none waits forever
    (a daemon's polls in flight would never end, nor would ``run --once``)."""
    store = BrokenStore(sqlite_engine)
    store.sync_feeds([(f"http://feeds.example/{i}", None, timedelta(minutes=15))
                      for i in range(3)], NOW)

    async def round_() -> list[tuple[bool, str | None]]:
        transport = httpx.MockTransport(lambda request: httpx.Response(304))
        async with Fetcher(timeout=5, max_body_bytes=1000, concurrency=3, user_agent="t",
                           per_host=3, transport=transport) as f:
            poller = Poller(store, f, [], {})
            reports = await asyncio.wait_for(asyncio.gather(
                *(poller.poll(feed, NOW) for feed in store.feeds(counts=False))), 30)
            again = await asyncio.wait_for(poller.poll(store.feeds()[0], NOW), 30)
            return [(r.ok, r.error) for r in (*reports, again)]

    results = asyncio.run(round_())
    assert len(results) == 4
    assert all(not ok and error and error.startswith("database: ") and "RuntimeError" in error
               for ok, error in results), results

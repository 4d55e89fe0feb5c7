"""The states of polls that store no items (304s, failures) are written together: a
round of 304s costs a batch or two, not one transaction per feed."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from monitor.errors import StoreError
from monitor.fetch import Fetcher
from monitor.poll import Poller
from monitor.store import (
    FetchState,
    NewItem,
    PollCounts,
    PollWrite,
    StateWrite,
    Store,
    create,
    migrate,
)
from monitor.store.models import Feed, Item
from monitor.store.states import SEEN_SLACK

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
        self.counting = False

    def record_polls(self, writes: Sequence[PollWrite], *,
                     story_window: timedelta = timedelta(hours=48)
                     ) -> list[PollCounts | StoreError]:
        if self.counting:
            assert self.all_fetched.wait(30)
            self.batches.append(len(writes))
        return super().record_polls(writes, story_window=story_window)

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
    store.polls, store.counting = 0, True
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

    def record_polls(self, writes: Sequence[PollWrite], *,
                     story_window: timedelta = timedelta(hours=48)
                     ) -> list[PollCounts | StoreError]:
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


STARTS = [  # (title, fetch_url, gone, consecutive_failures, etag)
    (None, None, False, 0, None),
    ("", "http://moved.example/feed", True, 2, '"old"'),
    ("Kept", None, False, 3, '"old"'),
]
STATES = [  # (ok, status, etag, last_modified, title, error, moved_to: url|other|fetch_url)
    (True, 304, '"e"', None, None, None, None),
    (True, 304, None, None, None, None, None),  # no validators: the old ones stay
    (True, 200, None, None, "Title", None, None),
    (True, 200, None, "Tue, 24 Nov 2026 10:00:00 GMT", "Title", None, "other"),
    (True, 200, '"e"', None, None, None, "url"),
    (False, 503, None, None, None, "HTTP 503", None),
    (False, 410, None, None, None, "HTTP 410", "fetch_url"),
    (False, None, None, None, None, "timed out", "other"),
]


def test_batched_states_follow_the_rules_of_a_poll_with_items(engine: Engine) -> None:
    """``record_states`` computes each feed's new state in SQL; ``apply_state`` below
    says the rules in Python: from every start, every outcome ends the same."""
    store = Store(engine)
    cases = [(start, st) for start in STARTS for st in STATES]
    store.sync_feeds([(f"http://feeds.example/{side}{n}", None, timedelta(minutes=15))
                      for n in range(len(cases)) for side in "ab"], NOW)
    ids = {f.url: f.id for f in store.feeds()}
    feeds = Feed.__table__
    with engine.begin() as conn:
        for n, ((title, fetch_url, gone, failures, etag), _) in enumerate(cases):
            for side in "ab":
                conn.execute(feeds.update().where(feeds.c.id == ids[f"http://feeds.example/{side}{n}"])
                             .values(title=title, fetch_url=fetch_url, etag=etag,
                                     gone_at=NOW - timedelta(days=1) if gone else None,
                                     consecutive_failures=failures, last_success_at=NOW
                                     - timedelta(days=2), last_modified="old"))
    writes = []
    for n, ((_, fetch_url, *_rest), (ok_, status, etag, modified, title, error, moved)) in \
            enumerate(cases):
        for side in "ab":
            url = f"http://feeds.example/{side}{n}"
            moved_to = {None: None, "url": url, "other": "http://elsewhere.example/x",
                        "fetch_url": fetch_url}[moved]
            state = FetchState(NOW, NOW + timedelta(hours=1), ok_, status, error=error,
                               etag=etag, last_modified=modified, title=title,
                               moved_to=moved_to)
            if side == "a":
                with Session(engine) as session, session.begin():
                    row = session.get(Feed, ids[url])
                    assert row is not None
                    apply_state(row, state)
            else:
                writes.append(StateWrite(ids[url], state))
    assert store.record_states(writes) == [None] * len(writes)
    rows = {f.url: f for f in store.feeds()}
    for n in range(len(cases)):
        a, b = rows[f"http://feeds.example/a{n}"], rows[f"http://feeds.example/b{n}"]
        assert dataclasses.replace(b, id=a.id, url=a.url) == a, cases[n]


def test_one_feed_twice_in_a_batch_gets_both_polls_in_order(engine: Engine) -> None:
    store = Store(engine)
    store.sync_feeds([("http://feeds.example/1", None, timedelta(minutes=15))], NOW)
    (feed,) = store.feeds()
    failed = FetchState(NOW, NOW + timedelta(hours=1), False, 503, error="HTTP 503")
    later = NOW + timedelta(minutes=1)
    assert store.record_states([StateWrite(feed.id, failed),
                                StateWrite(feed.id, dataclasses.replace(failed, checked_at=later))
                                ]) == [None, None]
    (row,) = store.feeds()
    assert (row.consecutive_failures, row.last_checked_at) == (2, later)


def test_a_304_moves_the_last_seen_time_of_the_served_items_once_an_hour(
        engine: Engine) -> None:
    """Retention counts from ``last_seen_at``; rewriting a feed's items at every 304
    cost more than the rest of the poll, so a 304 moves it only once it is an hour old
    (``SEEN_SLACK``): both ways of writing a poll, on both backends."""
    store = Store(engine)
    store.sync_feeds([(f"http://feeds.example/{i}", None, timedelta(minutes=15))
                      for i in range(2)], NOW)
    a, b = (f.id for f in store.feeds())
    for feed_id, key in ((a, "a"), (b, "b")):
        store.record_poll(feed_id, ok(NOW, 200), [NewItem(key, None, None, "t", "", "", "",
                                                          None)], [key])

    def seen() -> dict[str, datetime]:
        with store._session() as s:
            return {k: t for k, t in s.execute(select(Item.key, Item.last_seen_at))}

    soon, later = NOW + SEEN_SLACK - timedelta(minutes=1), NOW + SEEN_SLACK
    store.record_states([StateWrite(a, ok(soon))])
    store.record_poll(b, ok(soon), [])
    assert seen() == {"a": NOW, "b": NOW}
    store.record_states([StateWrite(a, ok(later))])
    store.record_poll(b, ok(later), [])
    assert seen() == {"a": later, "b": later}


def apply_state(feed: Feed, st: FetchState) -> None:
    """A poll's state on the feed row, as the rules say it in Python: what the SQL of
    ``states._state_update`` must compute."""
    feed.last_checked_at = st.checked_at
    feed.next_check_at = st.next_check_at
    feed.last_status = st.status
    if st.moved_to and st.moved_to != (feed.fetch_url or feed.url):
        feed.fetch_url = None if st.moved_to == feed.url else st.moved_to
    if st.status == 410:
        feed.gone_at = feed.gone_at or st.checked_at
    elif st.ok:
        feed.gone_at = None
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

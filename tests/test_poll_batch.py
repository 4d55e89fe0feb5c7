"""Polls with items are written in batches (``Store.record_polls``): a batch stores what
its polls stored written one by one, in its order, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, event, select

from monitor.errors import StoreError
from monitor.poll import PollWriter
from monitor.store import (
    FetchState,
    NewItem,
    NewMatch,
    PollCounts,
    PollWrite,
    Store,
    create,
    migrate,
)
from monitor.store import items as items_module
from monitor.store.models import Feed, Item, Match, Outbox

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FEEDS = ["https://a.example/rss", "https://b.example/rss", "https://c.example/rss"]


@pytest.fixture
def twin(engine: Engine, tmp_path: Path, request: pytest.FixtureRequest
         ) -> Iterator[Engine]:
    """A second empty database on ``engine``'s backend."""
    if engine.dialect.name == "sqlite":
        url = f"sqlite:///{tmp_path / 'twin.db'}"
        e = create(url)
        migrate(e)
        yield e
        e.dispose()
        return
    server = request.getfixturevalue("postgres")
    pg = server.create()
    e = create(pg.render_as_string(hide_password=False))
    migrate(e)
    yield e
    e.dispose()
    server.drop(pg)


def store_on(engine: Engine) -> Store:
    s = Store(engine)
    s.sync_feeds([(url, None, timedelta(minutes=15)) for url in FEEDS], NOW)
    s.sync_watchlists({"libya": {"rules": ["Libya"]}, "oil": {"rules": ["oil"]}}, NOW)
    return s


def item(key: str, *channels: str, story: str | None = None,
         watchlists: tuple[str, ...] = ("libya",)) -> NewItem:
    matches = tuple(NewMatch(w, [{"index": 0, "rule": w, "terms": []}], f"snip {key}",
                             [[0, 1]], channels) for w in watchlists) if channels else ()
    return NewItem(key, f"guid-{key}", f"https://x.example/{key}", f"title {key}",
                   "summary", "content", "author", NOW - timedelta(hours=1), matches,
                   title_key=story if channels else None, simhash=None)


def ok(at: datetime, etag: str = '"e"') -> FetchState:
    return FetchState(at, at + timedelta(minutes=15), True, 200, etag=etag, title="T")


def ids(store: Store) -> dict[str, int]:
    return {f.url: f.id for f in store.feeds(counts=False)}


def polls(store: Store) -> list[PollWrite]:
    """A batch that exercises every rule: known keys skipped and refreshed, a key twice
    in one poll, stories joined across polls and feeds, merges, a feed twice."""
    a, b, c = (ids(store)[url] for url in FEEDS)
    t1, t2 = NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)
    return [
        PollWrite(a, ok(t1, '"a1"'), [item("a0", "email"), item("a1", "email", "slack",
                                                                  story="S0"),
                                      item("a1", "email"), item("a2")],
                  ["a0", "a1", "a2", "gone"]),
        PollWrite(b, ok(t1), [item("b1", "email", story="S1", watchlists=("libya", "oil")),
                              item("b2")], ["b1", "b2"]),
        PollWrite(c, ok(t2), [item("c1", "email", "slack", story="S1"), item("a1")],
                  ["c1", "a1"]),
        PollWrite(a, ok(t2, '"a2"'), [item("a3", "slack", story="S1"), item("a2")],
                  ["a1", "a2", "a3"]),
        PollWrite(b, None, [item("b3", "email", story="S0")], ["b3"], pushed_at=t2),
    ]


def before(store: Store) -> None:
    """What the feeds had: a0 alerted on email, story S0."""
    a = ids(store)[FEEDS[0]]
    store.record_poll(a, ok(NOW), [item("a0", "email", story="S0")], ["a0"])


def contents(engine: Engine) -> dict[str, Any]:
    """Everything the polls stored, with ids replaced by what they name."""
    with engine.connect() as conn:
        urls = dict(conn.execute(select(Feed.id, Feed.url)).all())
        items = {i: (urls[f], k) for i, f, k in conn.execute(select(Item.id, Item.feed_id,
                                                                    Item.key))}
        stored = sorted((urls[r.feed_id], r.key, r.guid, r.link, r.title, r.summary,
                         r.content, r.author, r.published_at, r.fetched_at, r.last_seen_at,
                         None if r.story_id is None else items[r.story_id], r.title_key,
                         r.simhash) for r in conn.execute(select(Item)))
        matches = {m.id: (items[m.item_id], m.watchlist_id, m.rules, m.snippet, m.marks,
                          m.created_at) for m in conn.execute(select(Match))}
        outbox = [(matches[o.match_id][:2], o.channel, o.status, o.next_attempt_at,
                   o.created_at) for o in conn.execute(select(Outbox).order_by(Outbox.id))]
        stamps = conn.exec_driver_sql(  # as stored: SQLite compares its text
            "SELECT feed_id, key, CAST(published_at AS TEXT), CAST(fetched_at AS TEXT), "
            "CAST(last_seen_at AS TEXT) FROM items ORDER BY feed_id, key").all()
    return {"items": stored, "matches": sorted(map(repr, matches.values())),
            "outbox": outbox, "stamps": stamps}


def feed_states(store: Store) -> dict[str, Any]:
    return {f.url: dataclasses.replace(f, id=0) for f in store.feeds()}


def test_a_batch_stores_what_its_polls_stored_one_by_one(engine: Engine, twin: Engine
                                                         ) -> None:
    one, batch = store_on(engine), store_on(twin)
    before(one)
    before(batch)
    counts = []
    for w in polls(one):
        if w.state is None:
            assert w.pushed_at is not None
            counts.append(one.record_push(w.feed_id, w.items, w.seen, w.pushed_at))
        else:
            counts.append(one.record_poll(w.feed_id, w.state, w.items, w.seen))
    assert batch.record_polls(polls(batch)) == counts
    assert contents(twin) == contents(engine)
    assert feed_states(batch) == feed_states(one)
    # and what that is: a1 joined a0's story (merged on email, alerted on slack), c1
    # joined b1's across polls and feeds, a3 too; b3 (a push) joined S0
    assert [(c.new_items, c.matches, c.alerts) for c in counts] == [
        (2, 1, 1), (2, 2, 2), (2, 1, 1), (1, 1, 0), (1, 1, 0)]
    outbox = [(key, channel, status) for ((_, key), _), channel, status, *_ in
              contents(twin)["outbox"]]
    assert outbox == [
        ("a0", "email", "pending"), ("a1", "email", "merged"), ("a1", "slack", "pending"),
        ("b1", "email", "pending"), ("b1", "email", "pending"),
        ("c1", "email", "merged"), ("c1", "slack", "pending"),
        ("a3", "slack", "merged"), ("b3", "email", "merged")]


def test_a_poll_whose_claim_was_taken_over_is_refused_alone(engine: Engine) -> None:
    store = store_on(engine)
    a, b, c = sorted(store.claim_due_feeds("me", NOW, timedelta(minutes=5), 10),
                     key=lambda f: f.url)
    store.release_feeds("me", [b.id])
    assert [f.id for f in store.claim_due_feeds("other", NOW, timedelta(minutes=5), 10)] == [
        b.id]
    results = store.record_polls([
        PollWrite(a.id, ok(NOW), [item("a1", "email", story="S")], ["a1"], "me"),
        PollWrite(b.id, ok(NOW), [item("b1", "email")], ["b1"], "me"),
        PollWrite(c.id, ok(NOW), [item("c1", "email", story="S")], ["c1"], "me"),
    ])
    assert isinstance(results[1], StoreError) and "taken over" in str(results[1])
    assert [(r.new_items, r.alerts) for r in results if isinstance(r, PollCounts)] == [
        (1, 1), (1, 0)]  # c1 joined a1's story: merged
    rows = {f.url: f for f in store.feeds()}
    assert (rows[FEEDS[0]].items, rows[FEEDS[1]].items, rows[FEEDS[2]].items) == (1, 0, 1)
    assert rows[FEEDS[1]].last_checked_at is None
    assert store.claim_due_feeds("other", NOW + timedelta(minutes=15), timedelta(minutes=5),
                                 10) != []  # a's and c's claims ended with their writes


def test_a_key_the_feed_has_is_not_stored_again(engine: Engine) -> None:
    store = store_on(engine)
    a, b, _ = (ids(store)[url] for url in FEEDS)
    store.record_poll(a, ok(NOW), [item("k", "email")], ["k"])
    later = NOW + timedelta(hours=2)
    results = store.record_polls([
        PollWrite(a, ok(later), [item("k", "email"), item("new")], ["k", "new"]),
        PollWrite(b, ok(later), [item("k", "email"), item("k", "email")], ["k"]),
    ])
    assert [(r.new_items, r.alerts) for r in results if isinstance(r, PollCounts)] == [
        (1, 0), (1, 1)]  # b's k is b's own: stored once, though served twice
    with engine.connect() as conn:
        rows = sorted(conn.execute(select(Item.feed_id, Item.key, Item.fetched_at,
                                          Item.last_seen_at)))
    assert rows == sorted([(a, "k", NOW, later), (a, "new", later, later),
                           (b, "k", later, later)])
    with engine.connect() as conn:  # stored as SQLAlchemy stores a time: SQLite compares text
        stamps = set(conn.exec_driver_sql(
            "SELECT CAST(items.fetched_at AS TEXT), CAST(feeds.last_checked_at AS TEXT) "
            "FROM items JOIN feeds ON feeds.id = items.feed_id WHERE items.key = 'new'").all())
    assert len(stamps) == 1 and len(set(*stamps)) == 1


def test_two_polls_of_a_batch_sharing_a_story_alert_once(engine: Engine) -> None:
    store = store_on(engine)
    a, b, _ = (ids(store)[url] for url in FEEDS)
    results = store.record_polls([
        PollWrite(a, ok(NOW), [item("a", "email", story="same")], ["a"]),
        PollWrite(b, ok(NOW), [item("b", "email", story="same")], ["b"]),
    ])
    assert [(r.matches, r.alerts) for r in results if isinstance(r, PollCounts)] == [
        (1, 1), (1, 0)]
    with engine.connect() as conn:
        rows = conn.execute(select(Item.key, Outbox.channel, Outbox.status)
                            .join(Match, Outbox.match_id == Match.id)
                            .join(Item, Match.item_id == Item.id)
                            .order_by(Outbox.id)).all()
    assert rows == [("a", "email", "pending"), ("b", "email", "merged")]
    assert len(store.pending_alerts(NOW)) == 1


def test_a_feed_gone_is_refused_alone_and_an_empty_batch_writes_nothing(engine: Engine
                                                                        ) -> None:
    store = store_on(engine)
    a = ids(store)[FEEDS[0]]
    results = store.record_polls([PollWrite(10_000, ok(NOW), [item("x")], ["x"]),
                                  PollWrite(a, ok(NOW), [item("y")], ["y"])])
    assert isinstance(results[0], StoreError) and "no longer exists" in str(results[0])
    assert results[1] == PollCounts(new_items=1)
    assert store.record_polls([]) == []


class BatchCountingStore(Store):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.batches: list[list[int]] = []

    def record_polls(self, writes: Sequence[PollWrite], *,
                     story_window: timedelta = timedelta(hours=48)
                     ) -> list[PollCounts | StoreError]:
        self.batches.append([len(w.items) for w in writes])
        return super().record_polls(writes, story_window=story_window)


def test_the_writer_batches_polls_with_items_and_bounds_a_batch_by_its_items(
        engine: Engine) -> None:
    """Polls queued while a batch is written go together in the next; a batch ends once
    its polls bring ``max_items`` items; a refused poll fails alone."""
    store = BatchCountingStore(engine)
    store_on(engine)
    a, b, c = (ids(store)[url] for url in FEEDS)
    writer = PollWriter(store, max_items=3)
    polls = [PollWrite(a, ok(NOW), [item("a1"), item("a2")], ["a1", "a2"]),
             PollWrite(b, ok(NOW), [item("b1"), item("b2")], ["b1", "b2"]),
             PollWrite(c, ok(NOW), [item("c1", "email")], ["c1"]),
             PollWrite(10_000, ok(NOW), [item("x")], ["x"])]

    async def write_all() -> list[PollCounts | BaseException]:
        return await asyncio.gather(*(writer.write(w) for w in polls), return_exceptions=True)

    results = asyncio.run(write_all())
    assert store.batches == [[2, 2], [1, 1]]
    assert [r.new_items for r in results if isinstance(r, PollCounts)] == [2, 2, 1]
    assert isinstance(results[3], StoreError)
    assert {f.url: f.items for f in store.feeds()} == dict(zip(FEEDS, [2, 2, 1], strict=True))


def test_polls_that_started_together_are_written_together(engine: Engine) -> None:
    """Polls arriving one by one while others are on their way (``expect``) wait for
    them, not ``linger`` (a minute here): a cold round written as it came went out one
    to four polls a transaction."""
    store = BatchCountingStore(engine)
    store_on(engine)
    writer = PollWriter(store, linger=60)
    writes = [PollWrite(feed_id, ok(NOW), [item(f"{feed_id}")], [f"{feed_id}"])
              for feed_id in ids(store).values()]

    async def arrive_one_by_one() -> list[PollCounts]:
        tickets = [writer.expect() for _ in writes]

        async def one(i: int) -> PollCounts:
            await asyncio.sleep(0.02 * i)
            return await writer.write(writes[i], tickets[i])

        async with asyncio.timeout(30):
            return await asyncio.gather(*(one(i) for i in range(len(writes))))

    assert [r.new_items for r in asyncio.run(arrive_one_by_one())] == [1, 1, 1]
    assert store.batches == [[1, 1, 1]]


def test_a_batch_waits_no_more_for_a_poll_that_gave_up_nor_past_min_batch(
        engine: Engine) -> None:
    """A poll that ends without writing (``Ticket.close``) lets the batch go; so does a
    batch of ``min_batch`` polls, whatever is still on its way."""
    store = BatchCountingStore(engine)
    store_on(engine)
    a, b, c = (ids(store)[url] for url in FEEDS)
    writer = PollWriter(store, linger=60, min_batch=2)

    async def go() -> None:
        async with asyncio.timeout(30):
            gave_up, first = writer.expect(), writer.expect()
            waiting = asyncio.create_task(
                writer.write(PollWrite(a, ok(NOW), [item("a1")], ["a1"]), first))
            await asyncio.sleep(0.1)
            assert not waiting.done() and store.batches == []
            gave_up.close()
            gave_up.close()  # once is enough
            await waiting
            assert store.batches == [[1]]
            tickets = [writer.expect() for _ in range(3)]
            two = [asyncio.create_task(writer.write(
                PollWrite(f, ok(NOW), [item(f"{f}-2")], [f"{f}-2"]), t))
                for f, t in zip((b, c), tickets, strict=False)]
            await asyncio.gather(*two)  # the third is still expected
            assert store.batches == [[1], [1, 1]]
            tickets[2].close()

    asyncio.run(go())


def test_a_poll_that_breaks_its_batch_costs_only_itself(engine: Engine) -> None:
    """A bug set off by one poll's data (here a date that is text) fails its batch; the
    polls are then written one by one, so the others are stored and it alone fails."""
    store = BatchCountingStore(engine)
    store_on(engine)
    a, b, c = (ids(store)[url] for url in FEEDS)
    broken = item("b1")._replace(published_at=cast(Any, "yesterday"))
    polls = [PollWrite(a, ok(NOW), [item("a1", "email")], ["a1"]),
             PollWrite(b, ok(NOW), [broken], ["b1"]),
             PollWrite(c, FetchState(NOW, NOW + timedelta(hours=1), True, 304), [], [])]
    writer = PollWriter(store)

    async def write_all() -> list[PollCounts | BaseException]:
        return await asyncio.gather(*(writer.write(w) for w in polls), return_exceptions=True)

    first, second, third = asyncio.run(write_all())
    assert store.batches == [[1, 1, 0], [1], [1], [0]]  # the batch, then each alone
    assert isinstance(first, PollCounts) and (first.new_items, first.alerts) == (1, 1)
    assert isinstance(second, StoreError) and "internal error" in str(second)
    assert isinstance(third, PollCounts)
    rows = {f.url: f for f in store.feeds()}
    assert [rows[u].items for u in FEEDS] == [1, 0, 0]
    assert rows[FEEDS[2]].last_status == 304 and rows[FEEDS[1]].last_status is None


def test_two_workers_writing_the_same_feeds_at_once_store_each_item_once(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: each batch locks its feeds (in id order, whatever the order of its
    polls) before reading their known keys, so a second batch (here of pushes, which
    update no feed row) waits for the first and then skips what it stored, instead of
    failing on the unique index. The first batch
    holds its transaction open after its insert until the second has read the known
    keys (which the lock prevents: then it goes on after 2 seconds)."""
    engines = [create(pg_url) for _ in range(2)]
    migrate(engines[0])
    stores = [store_on(engines[0]), Store(engines[1])]
    a, b, _ = (ids(stores[0])[url] for url in FEEDS)
    locked, second_read = threading.Event(), threading.Event()

    def first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("SELECT feeds.id, feeds.lease_owner"):  # the claims' read
            locked.set()
        elif statement.startswith("INSERT INTO items"):
            second_read.wait(2)

    def second(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "wanted.column1" in statement:
            second_read.set()

    event.listen(engines[0], "after_cursor_execute", first)
    event.listen(engines[1], "after_cursor_execute", second)
    driver_rows = items_module._driver_rows

    def seen(conn: Any, sql: str, params: tuple[Any, ...]) -> Any:
        """The bulk statements run on the driver's cursor, where no event sees them."""
        rows = driver_rows(conn, sql, params)
        (first if conn.engine is engines[0] else second)(conn, None, sql)
        return rows

    monkeypatch.setattr(items_module, "_driver_rows", seen)
    results: list[list[PollCounts | StoreError]] = [[], []]

    def write(n: int) -> None:
        polls = [PollWrite(a, ok(NOW), [item("k1"), item("k2")], ["k1", "k2"]),
                 PollWrite(b, ok(NOW), [item("k1", "email")], ["k1"])]
        if n == 1:  # pushes, which leave the feed rows alone, in the other order
            polls = [dataclasses.replace(w, state=None, pushed_at=NOW) for w in polls[::-1]]
            assert locked.wait(30)
        results[n] = stores[n].record_polls(polls)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert locked.is_set() and second_read.is_set()  # the two batches did interleave
        assert all(isinstance(r, PollCounts) for rs in results for r in rs), results
        assert [[r.new_items for r in rs if isinstance(r, PollCounts)] for rs in results] == [
            [2, 1], [0, 0]]
        assert sum(r.alerts for rs in results for r in rs if isinstance(r, PollCounts)) == 1
        assert {f.url: f.items for f in stores[0].feeds()} == {
            FEEDS[0]: 2, FEEDS[1]: 1, FEEDS[2]: 0}
    finally:
        for e in engines:
            e.dispose()

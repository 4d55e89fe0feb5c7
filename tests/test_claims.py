"""The store's contract for several workers, on SQLite and on PostgreSQL: feed claims
under leases, outbox claims, once-only jobs, the shared watchlists, the SQLite lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from monitor.errors import StoreError
from monitor.service import create_service
from monitor.store import (
    FeedRow,
    FetchState,
    NewItem,
    NewMatch,
    Store,
    cluster,
    create,
    exclusive,
    migrate,
)

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


@pytest.fixture
def store(engine: Engine) -> Store:
    s = Store(engine)
    s.sync_feeds([(f"https://example.org/{i}", None, timedelta(minutes=5)) for i in range(10)],
                 NOW)
    s.sync_watchlists({"libya": {"rules": ["Libya"]}}, NOW)
    return s


def ok(at: datetime = NOW) -> FetchState:
    return FetchState(at, at + timedelta(minutes=5), True, 200)


def alerting(key: str) -> NewItem:
    match = NewMatch("libya", [{"index": 0, "rule": "Libya", "terms": []}], "", [], ("desk",))
    return NewItem(key, None, None, key, "", "", "", None, (match,))


def test_claims_split_due_feeds_between_workers(store: Store) -> None:
    a = store.claim_due_feeds("a", NOW, LEASE, 4)
    b = store.claim_due_feeds("b", NOW, LEASE, 100)
    assert len(a) == 4 and len(b) == 6
    assert {f.id for f in a}.isdisjoint({f.id for f in b})
    assert store.claim_due_feeds("c", NOW, LEASE, 100) == []


def test_a_dead_workers_feeds_are_taken_over_when_its_lease_expires(store: Store) -> None:
    dead = store.claim_due_feeds("dead", NOW, LEASE, 100)
    assert store.claim_due_feeds("live", NOW + LEASE - timedelta(seconds=1), LEASE, 100) == []
    later = NOW + LEASE
    taken = store.claim_due_feeds("live", later, LEASE, 100)
    assert {f.id for f in taken} == {f.id for f in dead}
    for feed in taken:
        store.record_poll(feed.id, ok(later), [], owner="live")
    assert store.claim_due_feeds("live", later, LEASE, 100) == []  # polled: not due


def test_a_worker_that_lost_its_claim_stores_nothing(store: Store) -> None:
    (feed,) = store.claim_due_feeds("slow", NOW, LEASE, 1)
    (again,) = store.claim_due_feeds("fast", NOW + LEASE, LEASE, 1)
    assert again.id == feed.id
    assert store.record_poll(feed.id, ok(), [alerting("x")], owner="fast").alerts == 1
    with pytest.raises(StoreError, match="taken over by another worker"):
        store.record_poll(feed.id, ok(), [alerting("x"), alerting("y")], owner="slow")
    assert [a.title for a in store.pending_alerts(None)] == ["x"]


def test_released_feeds_are_due_at_once(store: Store) -> None:
    claimed = store.claim_due_feeds("a", NOW, LEASE, 100)
    store.release_feeds("b", [f.id for f in claimed])  # not b's: nothing happens
    assert store.claim_due_feeds("c", NOW, LEASE, 100) == []
    store.release_feeds("a", [f.id for f in claimed])
    assert len(store.claim_due_feeds("c", NOW, LEASE, 100)) == 10


def test_outbox_rows_claimed_at_once_by_many_workers_go_to_one_each(store: Store) -> None:
    feed = store.feeds()[0]
    store.record_poll(feed.id, ok(), [alerting(str(i)) for i in range(40)])
    ids = [a.id for a in store.pending_alerts(NOW)]
    got: list[list[int]] = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        got.append(store.claim(ids, NOW, NOW + LEASE))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    claimed = [i for g in got for i in g]
    assert sorted(claimed) == sorted(ids)  # every row once, none twice
    assert {a.attempts for a in store.alerts(["sending"])} == {1}


def test_a_once_only_job_runs_in_one_worker_at_a_time(engine: Engine, store: Store) -> None:
    other = Store(engine)
    with store.once("retention") as first:
        with other.once("retention") as second:
            assert first
            if engine.dialect.name == "postgresql":
                assert not second
            else:  # one daemon per SQLite file: no lock needed
                assert second
        with other.once("digest:desk") as unrelated:
            assert unrelated
    with other.once("retention") as after:
        assert after


def test_the_shared_version_moves_only_when_the_value_changes(store: Store) -> None:
    assert store.shared_version("watchlists") is None
    v1 = store.publish("watchlists", [{"name": "libya", "rules": ["Libya"]}], NOW, "a")
    assert store.publish("watchlists", [{"rules": ["Libya"], "name": "libya"}], NOW, "b") == v1
    v2 = store.publish("watchlists", [{"name": "libya", "rules": ["Tripoli"]}], NOW, "b")
    assert v2 == v1 + 1 == store.shared_version("watchlists")
    assert store.shared("watchlists") == (v2, [{"name": "libya", "rules": ["Tripoli"]}])


def test_a_second_daemon_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    first = exclusive(url)
    assert first is not None
    with pytest.raises(StoreError, match=r"another monitor daemon .* is running on the SQLite"):
        exclusive(url)
    first.release()
    second = exclusive(url)
    assert second is not None
    second.release()
    assert exclusive("postgresql+psycopg://u@127.0.0.1/db") is None


def test_watchlists_published_by_one_worker_reach_the_others(db_url: str,
                                                              tmp_path: Path) -> None:
    from conftest import Workspace

    from monitor.config import load_config
    from monitor.daemon import Jobs, build
    from monitor.match import Document

    ws = Workspace(tmp_path)
    ws.write(feeds=[], extra="", watchlists="watchlists:\n  - name: libya\n"
                                            "    rules: [Libya]\n")
    text_ = ws.config.read_text().replace(f'url = "sqlite:///{ws.db}"', f'url = "{db_url}"')
    ws.config.write_text(text_)
    first = build(load_config(ws.config))
    jobs = Jobs(first, first.fetcher())
    jobs.follow_watchlists()  # nothing new: the same version
    tripoli = Document.of(title="Clashes in Tripoli", summary="", content="")
    assert first.watchlists[0].match(tripoli) is None

    (tmp_path / "watchlists.yaml").write_text("watchlists:\n  - name: libya\n"
                                              "    rules: [Libya, Tripoli]\n")
    second = build(load_config(ws.config), migrate_schema=False)  # another worker's reload
    assert second.watchlists_version == (first.watchlists_version or 0) + 1
    jobs.follow_watchlists()
    assert first.watchlists_version == second.watchlists_version
    assert [m.watchlist for m in jobs.poller.matcher.match(tripoli)] == ["libya"]
    first.store.engine.dispose()
    second.store.engine.dispose()


def test_monitor_run_refuses_a_second_daemon_on_a_sqlite_file(tmp_path: Path) -> None:
    from conftest import Workspace

    ws = Workspace(tmp_path)
    ws.write(feeds=[])
    held = exclusive(f"sqlite:///{ws.db}")  # the first daemon
    try:
        result = ws.monitor("run", "--once")
    finally:
        assert held is not None
        held.release()
    assert result.code == 1
    assert "another monitor daemon (pid " in result.err
    assert "SQLite serves one daemon" in result.err
    assert ws.monitor("run", "--once").code == 0


def test_the_one_daemon_of_a_sqlite_file_drops_claims_left_by_a_killed_one(
        tmp_path: Path) -> None:
    from conftest import Workspace

    from monitor.config import load_config
    from monitor.daemon import build

    ws = Workspace(tmp_path)
    ws.write(feeds=["https://example.org/a", "https://example.org/b"])
    config = load_config(ws.config)
    first = build(config)
    far = datetime(2100, 1, 1, tzinfo=UTC)
    assert len(cluster.claim_feeds(first.store.engine, "killed", far, timedelta(hours=1),
                                   10)) == 2
    first.store.engine.dispose()
    service = create_service(config, {})
    try:
        with sqlite3.connect(ws.db) as db:
            assert db.execute("SELECT count(*) FROM feeds WHERE lease_owner IS NOT NULL"
                              ).fetchone() == (0,)
    finally:
        service.app.store.engine.dispose()
        if service.lock is not None:
            service.lock.release()


def test_run_once_goes_on_when_a_poll_crashes(store: Store) -> None:
    """``run --once`` polls every feed even when one poll raises (a bug): that feed is
    reported failed and given back, the others are polled, and the alerts still go out."""
    from monitor.once import poll_every_feed
    from monitor.poll import PollReport
    from monitor.store import PollCounts

    store.sync_feeds([(f"https://f{i}.example/rss", None, timedelta(minutes=5))
                      for i in range(3)], NOW)

    class Crashing:
        async def poll(self, feed: FeedRow, now: datetime) -> PollReport:
            if feed.url == "https://f1.example/rss":
                raise RuntimeError("a bug")
            return PollReport(feed.url, True, 304, None, PollCounts())

    reports = asyncio.run(poll_every_feed(store, Crashing(), "me",  # type: ignore[arg-type]
                                          lambda: NOW, lease=timedelta(minutes=5), limit=2))
    assert [(r.feed, r.ok) for r in reports] == [
        ("https://f0.example/rss", True), ("https://f1.example/rss", False),
        ("https://f2.example/rss", True)]
    assert "RuntimeError" in (reports[1].error or "")
    crashed = next(f for f in store.feeds() if f.url == "https://f1.example/rss")
    assert [f.id for f in store.claim_due_feeds("other", NOW, timedelta(minutes=5), 10)
            if f.id == crashed.id] == [crashed.id]  # given back, not left under a lease


def test_a_claim_cancelled_while_it_waits_for_the_lock_gives_its_feeds_back(
        tmp_path: Path) -> None:
    """A claim runs in a thread (off the event loop) and may wait for SQLite's lock
    while polls are written; a stop or reload cancels the wait, but the thread still
    claims: it gives the feeds back, so none waits out a lease nobody polls."""
    from monitor.once import claim_feeds

    db = tmp_path / "m.db"
    engine = create(f"sqlite:///{db}")
    migrate(engine)
    store = Store(engine)
    store.sync_feeds([(f"https://f{i}.example/rss", None, timedelta(minutes=5))
                      for i in range(3)], NOW)

    async def cancelled_while_waiting() -> None:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # a batch of polls being written
        task = asyncio.create_task(claim_feeds(store, "me", NOW, timedelta(minutes=5), 10))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        blocker.execute("COMMIT")
        blocker.close()

    asyncio.run(cancelled_while_waiting())  # returns once the claim's thread is done
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT count(*) FROM feeds WHERE lease_owner IS NOT NULL"
                             ).fetchone() == (0,)
    assert len(store.claim_due_feeds("other", NOW, timedelta(minutes=5), 10)) == 3
    engine.dispose()

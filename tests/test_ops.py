"""The operations parts on their own: sd_notify, logs, metrics, health, retention."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Workspace

from monitor import logs
from monitor.alerts import DispatchCounts
from monitor.config import load_config
from monitor.daemon import Jobs, build
from monitor.errors import StoreError
from monitor.health import Heartbeat, check_health
from monitor.metrics import Metrics
from monitor.poll import PollReport
from monitor.sdnotify import Notifier
from monitor.service import Service
from monitor.store import FetchState, NewItem, NewMatch, PollCounts, Store, StoreStats, create
from monitor.store import migrate as migrate_db

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)

# ------------------------------------------------------------------ sd_notify


@pytest.fixture
def manager() -> Iterator[tuple[socket.socket, str]]:
    """A notify socket at a short path (unix socket paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        path = str(Path(d) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(10)
        yield sock, path
        sock.close()


def test_notifier_speaks_the_protocol(manager: tuple[socket.socket, str]) -> None:
    sock, path = manager
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}, pid=42)
    assert n.enabled and n.watchdog_interval == 0.1
    assert n.ready("3 feeds\nand more")
    assert sock.recv(4096) == b"READY=1\nSTATUS=3 feeds and more"
    n.watchdog("ok")
    assert sock.recv(4096) == b"WATCHDOG=1\nSTATUS=ok"
    n.reloading()
    assert sock.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
    n.stopping("bye")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=bye"
    n.close()


def test_notifier_outside_systemd_does_nothing() -> None:
    n = Notifier({}, pid=42)
    assert not n.enabled and not n.ready("x") and n.watchdog_interval is None
    # a watchdog meant for another process (WATCHDOG_PID) is not ours
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "7"}, pid=42
                    ).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "42"}, pid=42
                    ).watchdog_interval == 0.5


def test_a_full_or_missing_manager_never_blocks_nor_raises(
        manager: tuple[socket.socket, str], caplog: pytest.LogCaptureFixture) -> None:
    _, path = manager
    n = Notifier({"NOTIFY_SOCKET": path}, pid=1)
    results = [n.watchdog() for _ in range(2000)]  # nobody reads: the queue fills
    assert results[0] and not results[-1]
    gone = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify"}, pid=1)
    assert not gone.ready("x") and not gone.ready("y")
    warnings = [r for r in caplog.records if "cannot notify" in r.getMessage()]
    assert len(warnings) == 2  # once per notifier


# ------------------------------------------------------------------ logs


@pytest.fixture
def root_logger() -> Iterator[None]:
    """Put the root logger back as it was after a test that configures it."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logger")
def test_logs_are_json_off_a_terminal_and_never_show_a_password() -> None:
    stream = io.StringIO()
    logs.configure("INFO", "auto", stream)
    logging.getLogger("monitor.test").info("sent via %s", "mailtos://desk:hunter2@smtp.org")
    logging.getLogger("monitor.test").debug("not at INFO")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["level"] == "INFO" and event["logger"] == "monitor.test"
    assert event["msg"] == "sent via mailtos://desk:****@smtp.org"
    assert "hunter2" not in stream.getvalue()


@pytest.mark.usefixtures("root_logger")
def test_text_logs_for_people() -> None:
    stream = io.StringIO()
    logs.configure("INFO", "text", stream)
    logging.getLogger("monitor.test").warning("feed %s failed", "https://x.org/rss")
    assert stream.getvalue().rstrip().endswith(
        "WARNING monitor.test: feed https://x.org/rss failed")


# ------------------------------------------------------------------ metrics and health


class FakeSource:
    def __init__(self, stats: StoreStats | None) -> None:
        self._stats = stats

    def stats(self) -> StoreStats:
        if self._stats is None:
            raise StoreError("cannot reach the database: OperationalError")
        return self._stats

    def channel_names(self) -> Iterable[str]:
        return ["email", "slack"]

    def now(self) -> datetime:
        return NOW


def test_metrics_count_polls_matches_and_alerts_on_their_own_registry() -> None:
    m, other = Metrics(), Metrics()
    m.declare(["libya"], ["email"])
    counts = PollCounts(new_items=3, matches=2, by_watchlist={"libya": 2})
    m.observe_poll(PollReport("https://x.org", True, 200, None, counts, 0.3))
    m.observe_poll(PollReport("https://x.org", True, 304, None, PollCounts(), 0.01))
    m.observe_poll(PollReport("https://y.org", False, 503, "HTTP 503", PollCounts(), 1.5))
    m.observe_dispatch(DispatchCounts(sent=2, failed=1, sent_by_channel={"email": 2},
                                      failed_by_channel={"slack": 1}))
    m.watch(FakeSource(StoreStats({"email": 4}, {"email": NOW - timedelta(minutes=5)}, 10, 1)))
    text = m.exposition()[0].decode()
    for line in ('monitor_polls_total{outcome="ok"} 1.0',
                 'monitor_polls_total{outcome="not_modified"} 1.0',
                 'monitor_polls_total{outcome="error"} 1.0',
                 "monitor_fetch_duration_seconds_count 3.0",
                 'monitor_fetch_duration_seconds_bucket{le="0.5"} 2.0',
                 "monitor_items_stored_total 3.0",
                 'monitor_matches_total{watchlist="libya"} 2.0',
                 'monitor_alerts_sent_total{channel="email"} 2.0',
                 'monitor_alerts_failed_total{channel="slack"} 1.0',
                 'monitor_alerts_pending{channel="email"} 4.0',
                 'monitor_alerts_pending{channel="slack"} 0.0',
                 'monitor_outbox_oldest_pending_age_seconds{channel="email"} 300.0',
                 "monitor_feeds_active 10.0",
                 "monitor_feeds_in_error 1.0",
                 "monitor_database_up 1.0"):
        assert line in text, line
    assert "monitor_items_stored_total 0.0" in other.exposition()[0].decode()


def test_metrics_say_when_the_database_is_down() -> None:
    m = Metrics()
    m.watch(FakeSource(None))
    text = m.exposition()[0].decode()
    assert "monitor_database_up 0.0" in text and "monitor_alerts_pending" not in text


def test_health_names_what_fails() -> None:
    t = [100.0]
    beat = Heartbeat(tick=5, clock=lambda: t[0])
    healthy = check_health(beat, FakeSource(StoreStats({"email": 3})).stats, max_pending=10)
    assert healthy.ok and json.loads(healthy.json())["status"] == "ok"
    t[0] += 31  # more than max(3 ticks, 30 s) without a tick
    report = check_health(beat, FakeSource(None).stats, max_pending=10)
    assert not report.ok
    assert report.checks == {
        "scheduler": "no tick for 31s",
        "database": "cannot reach the database: OperationalError",
        "outbox": "unknown: the database did not answer"}
    beat.beat()
    backlog = check_health(beat, FakeSource(StoreStats({"email": 11})).stats, max_pending=10)
    assert backlog.reason == "outbox: 11 alerts pending, more than 10"


# ------------------------------------------------------------------ retention


@pytest.fixture
def store(tmp_path: Path) -> Store:
    engine = create(f"sqlite:///{tmp_path / 'monitor.db'}")
    migrate_db(engine)
    s = Store(engine)
    s.sync_feeds([("https://example.org/rss", None, timedelta(minutes=5))], NOW)
    s.sync_watchlists({"libya": {"rules": ["Libya"]}}, NOW)
    return s


def new(key: str, *channels: str, matched: bool = False) -> NewItem:
    matches = (NewMatch("libya", [], "", [], channels),) if matched else ()
    return NewItem(key, None, None, key, "", "", "", None, matches)


def poll(store: Store, at: datetime, items: list[NewItem], seen: list[str],
         status: int = 200) -> None:
    feed = store.feeds()[0]
    store.record_poll(feed.id, FetchState(at, at, True, status), items, seen)


def titles(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return {t for (t,) in conn.exec_driver_sql("select title from items")}


def test_retention_deletes_only_what_no_feed_serves_and_no_alert_waits_on(
        store: Store) -> None:
    old = NOW - timedelta(days=100)
    poll(store, old, [new("gone"), new("served"), new("matched-sent", "email", matched=True),
                      new("matched-pending", "email", matched=True)],
         ["gone", "served", "matched-sent", "matched-pending"])
    sent = [a for a in store.pending_alerts(None) if a.title == "matched-sent"]
    store.mark_sent([sent[0].id], old)
    poll(store, NOW, [], ["served"])  # still in the feed today
    pruned = store.prune(NOW - timedelta(days=30), NOW - timedelta(days=365))
    assert (pruned.unmatched, pruned.matched) == (1, 0)
    assert titles(store) == {"served", "matched-sent", "matched-pending"}
    pruned = store.prune(NOW - timedelta(days=30), NOW - timedelta(days=30))
    assert (pruned.unmatched, pruned.matched) == (0, 1)
    assert titles(store) == {"served", "matched-pending"}  # its alert still waits
    assert store.outbox_counts() == {("email", "pending"): 1}


def test_a_304_keeps_the_items_of_the_last_response_alive(store: Store) -> None:
    old = NOW - timedelta(days=100)
    poll(store, old - timedelta(days=1), [new("older")], ["older"])
    poll(store, old, [new("a"), new("b")], ["a", "b"])
    poll(store, NOW, [], [], status=304)
    store.prune(NOW - timedelta(days=30), NOW - timedelta(days=365))
    assert titles(store) == {"a", "b"}


# ------------------------------------------------------------------ reload never migrates


def test_a_reload_never_migrates(workspace: Workspace) -> None:
    config = load_config(workspace.write(feeds=["https://example.org/rss"]))
    with pytest.raises(StoreError, match="restart monitor to migrate it"):
        build(config, migrate_schema=False)
    build(config).store.engine.dispose()  # a start migrates
    app = build(config, migrate_schema=False)
    assert [f.url for f in app.store.feeds()] == ["https://example.org/rss"]
    app.store.engine.dispose()


# ------------------------------------------------------------------ stop and watchdog


def test_stop_cancels_what_outlives_its_bound(workspace: Workspace) -> None:
    app = build(load_config(workspace.write(feeds=[])))

    class HungDispatcher:
        """A channel's send that never returns."""

        def __init__(self) -> None:
            self.busy: dict[str, asyncio.Task[None]] = {}

        def start(self, now: datetime) -> None:
            self.busy["desk"] = asyncio.create_task(self._hang(), name="alerts desk")

        async def _hang(self) -> None:
            await asyncio.Event().wait()

    async def scenario() -> asyncio.Task[None] | None:
        async with app.fetcher() as fetcher:
            jobs = Jobs(app, fetcher)
            hung = HungDispatcher()
            jobs.dispatcher = hung  # type: ignore[assignment]
            await jobs.send_due_alerts()
            await jobs.stop(timeout=0.01)
            return hung.busy["desk"]

    sending = asyncio.run(scenario())
    assert sending is not None and sending.cancelled()


def test_the_watchdog_pings_only_while_the_scheduler_ticks(
        workspace: Workspace, manager: tuple[socket.socket, str],
        caplog: pytest.LogCaptureFixture) -> None:
    sock, path = manager
    app = build(load_config(workspace.write(feeds=[])))
    service = Service(app, lambda: app, notifier=Notifier({"NOTIFY_SOCKET": path}),
                      metrics=Metrics())
    t = [0.0]
    service.heartbeat = Heartbeat(tick=5, clock=lambda: t[0])

    async def first_round() -> None:
        task = asyncio.create_task(service._watchdog(3600))
        await asyncio.sleep(0)  # let it run up to its first wait
        task.cancel()

    asyncio.run(first_round())
    assert sock.recv(4096).startswith(b"WATCHDOG=1\nSTATUS=")
    t[0] = 31.0  # no tick for more than 30 s
    asyncio.run(first_round())
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)
    assert any("has not ticked for 31s" in r.getMessage() for r in caplog.records)

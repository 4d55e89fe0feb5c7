"""Several workers on one PostgreSQL, beyond the store's contract (test_claims.py): a
channel's hourly limit holds across dispatchers, `run --once` processes share the
feeds, and a reload on one worker reaches the others."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Workspace
from servers import FeedServer, NotifySocket, Receiver, rss
from sqlalchemy import Engine, create_engine, text

from monitor.alerts import Dispatcher, Policy, load_channel
from monitor.store import FetchState, NewItem, NewMatch, Store, create, migrate

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
RULES = [{"index": 0, "rule": "Tripoli", "terms": []}]


def pg_store(pg_url: str) -> Store:
    engine = create(pg_url)
    migrate(engine)
    return Store(engine)


def seed_alerts(store: Store, channel: str, titles: list[str]) -> None:
    store.sync_feeds([("https://example.org/rss", "Wire", timedelta(minutes=5))], NOW)
    store.sync_watchlists({"libya": {}}, NOW)
    (feed,) = store.feeds()
    items = [NewItem(t, None, None, t, "", "", "", None,
                     (NewMatch("libya", RULES, t, [], (channel,)),))
             for t in titles]
    store.record_poll(feed.id, FetchState(NOW, NOW, True, 200), items)


def dispatcher(engine: Engine, url: str) -> Dispatcher:
    desk = load_channel("desk", url, policy=Policy(max_per_hour=2))
    return Dispatcher(Store(engine), [desk], retry_after=timedelta(minutes=1),
                      max_retry_after=timedelta(hours=1), jitter=lambda: 1.0)


def test_max_per_hour_holds_across_two_dispatchers(pg_url: str) -> None:
    """Worker A is sending the first of five alerts when worker B starts on the same
    channel: B must not spend the hour's budget of 2 again (it would send 2 more)."""
    store = pg_store(pg_url)
    seed_alerts(store, "desk", [f"Story {i} in Tripoli" for i in range(5)])
    other = create(pg_url)
    try:
        with Receiver() as rx:
            rx.hang = True
            url = f"json://127.0.0.1:{rx.port}/hook"
            a, b = dispatcher(store.engine, url), dispatcher(other, url)

            async def scenario() -> tuple[int, int]:
                first = asyncio.create_task(a.dispatch(NOW))
                assert await asyncio.to_thread(rx.arrived.wait, 30)  # A is mid-send
                rx.hang = False
                second = await asyncio.wait_for(b.dispatch(NOW), 60)
                rx.release.set()
                return (await asyncio.wait_for(first, 60)).sent, second.sent

            sent_a, sent_b = asyncio.run(scenario())
            titles = [json.loads(body)["title"] for body in rx.delivered()]
        assert len(titles) == 2, titles  # the limit, whichever worker sent them
        assert (sent_a, sent_b) == (2, 0)
        assert titles[0] == "[libya] Story 0 in Tripoli"
        assert "4 more matches" in titles[1]
        assert store.pending_alerts(None) == []  # nothing dropped: all in the summary
        # the hour is spent for every worker: B sends nothing later in the hour
        seed_alerts(store, "desk", ["Story 5 in Tripoli"])
        later = NOW + timedelta(minutes=30)
        assert asyncio.run(dispatcher(other, url).dispatch(later)).sent == 0
    finally:
        other.dispose()
        store.engine.dispose()


def on_postgres(ws: Workspace, pg_url: str) -> None:
    text = ws.config.read_text().replace(f'url = "sqlite:///{ws.db}"', f'url = "{pg_url}"')
    ws.config.write_text(text)


def test_two_run_once_at_the_same_time_poll_each_feed_once(
        pg_url: str, tmp_path: Path, feed_server: FeedServer) -> None:
    paths = [f"/f{i}.xml" for i in range(60)]
    urls = [feed_server.serve(p, rss({"title": f"Clashes in Tripoli ({p})", "guid": p}))
            for p in paths]
    ws = Workspace(tmp_path)
    ws.write(feeds=urls, channels=[("desk", "alertfile://alerts.log")])
    on_postgres(ws, pg_url)
    procs = [subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(ws.config),
                               "run", "--once"], cwd=ws.root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert {p: len(feed_server.hits(p)) for p in paths} == {p: 1 for p in paths}
    polled = [int(out.split("polled ", 1)[1].split()[0]) for out, _ in outs]
    assert sum(polled) == 60, outs
    alerts = [line for line in (ws.root / "alerts.log").read_text().splitlines()
              if line.startswith("=== ")]
    assert sorted(alerts) == sorted(f"=== [libya] Clashes in Tripoli ({p})" for p in paths)


def test_a_run_once_skips_only_the_feeds_checked_in_its_round(
        db_url: str, tmp_path: Path, feed_server: FeedServer) -> None:
    from monitor.config import load_config
    from monitor.daemon import build, run_once
    from monitor.once import ONCE_FRESH

    urls = [feed_server.serve(f"/f{i}.xml", rss({"title": "x", "guid": "1"}))
            for i in range(3)]
    ws = Workspace(tmp_path)
    ws.write(feeds=urls)
    on_postgres(ws, db_url)
    config = load_config(ws.config)

    def polls(at: datetime) -> int:
        app = build(config, clock=lambda: at)
        try:
            return len(asyncio.run(run_once(app)).polls)
        finally:
            app.store.engine.dispose()

    assert polls(NOW) == 3
    soon = NOW + ONCE_FRESH / 2  # another run of the same round, e.g. on another host
    assert polls(soon) == (0 if db_url.startswith("postgresql") else 3)
    assert polls(NOW + ONCE_FRESH * 2) == 3  # the next round polls every feed again
    assert len(feed_server.requests) == (6 if db_url.startswith("postgresql") else 9)

    # a long run: it starts at T and reaches the feeds 3 minutes later; a run started
    # then is of the same round, and finds them checked
    start = NOW + ONCE_FRESH * 10
    late = start + ONCE_FRESH * 3
    app = build(config, clock=lambda: start)
    times = iter([start])
    app.clock = lambda: next(times, late)
    try:
        assert len(asyncio.run(run_once(app)).polls) == 3
    finally:
        app.store.engine.dispose()
    assert polls(late + ONCE_FRESH / 2) == (0 if db_url.startswith("postgresql") else 3)


TOKEN = "s3cret-desk-token"
DESK = ("desk", "json://monitor:${DESK_TOKEN}@127.0.0.1:9/hook")


class Worker:
    """`monitor run` in a subprocess, telling its own sd_notify socket how it is."""

    def __init__(self, ws: Workspace, name: str) -> None:
        self.notify = NotifySocket().__enter__()
        self.log = ws.root / f"{name}.log"
        env = {**os.environ, "NOTIFY_SOCKET": self.notify.name, "DESK_TOKEN": TOKEN}
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "--config", str(ws.config), "run"],
                cwd=ws.root, stdout=subprocess.DEVNULL, stderr=err, env=env)

    def ready(self) -> str:
        return self.notify.wait_for("READY", timeout=60)["STATUS"]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.notify.__exit__()


def shared_rows(pg_url: str) -> dict[str, tuple[int, str]]:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            return {name: (version, f"{fingerprint} {json.dumps(value)}")
                    for name, version, fingerprint, value in conn.execute(text(
                        "SELECT name, version, fingerprint, value FROM shared_config"))}
    finally:
        engine.dispose()


LIBYA = "watchlists:\n  - name: libya\n    rules: [Libya]\n"
TRIPOLI = "watchlists:\n  - name: libya\n    rules: [Libya, Tripoli]\n"


def test_a_channel_change_reloaded_on_one_worker_reaches_the_other(
        pg_url: str, tmp_path: Path) -> None:
    """Two hosts with the same settings file; the follower's watchlists file is older
    (watchlists travel through the database): following a reload must not republish it."""
    leader_ws, follower_ws = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    for ws in (leader_ws, follower_ws):
        ws.root.mkdir()
        ws.write(feeds=[], channels=[DESK], extra='check_every = "0.2s"', watchlists=LIBYA)
        on_postgres(ws, pg_url)
    follower = Worker(follower_ws, "follower")
    leader: Worker | None = None
    try:
        assert follower.ready().endswith("1 channels; 0 polls, 0 alerts sent; "
                                         "0 polls in flight")
        leader = Worker(leader_ws, "leader")
        assert ", 1 channels;" in leader.ready()
        assert shared_rows(pg_url)["watchlists"][0] == 1

        for ws in (leader_ws, follower_ws):  # the new settings file, deployed to both
            ws.write(feeds=[], channels=[DESK, ("ops", "alertfile://ops.log")],
                     extra='check_every = "0.2s"\n[alerts]\nmax_attempts = 3',
                     watchlists=TRIPOLI if ws is leader_ws else LIBYA)
            on_postgres(ws, pg_url)
        leader.proc.send_signal(signal.SIGHUP)
        assert leader.ready().startswith("reloaded; 0 feeds, 1 watchlists, 2 channels")
        # the follower was sent no signal: it follows on its next tick
        assert follower.ready().startswith("reloaded; 0 feeds, 1 watchlists, 2 channels")
        rows = shared_rows(pg_url)
        assert rows["settings"][0] == 1  # the follower told no one in turn
        assert rows["watchlists"][0] == 2 and "Tripoli" in rows["watchlists"][1]

        leader.proc.send_signal(signal.SIGHUP)  # the same files: nothing to tell
        assert leader.ready().startswith("reloaded;")
        assert shared_rows(pg_url)["settings"][0] == 1
        assert all(TOKEN not in row for _, row in shared_rows(pg_url).values())
        assert leader.stop() == 0 and follower.stop() == 0
    finally:
        for worker in (follower, leader):
            if worker is not None:
                worker.close()
    followed = [json.loads(line)["msg"] for line in follower.log.read_text().splitlines()]
    assert "settings changed by another worker (version 1): reloading the files" in followed
    assert TOKEN not in follower.log.read_text() + leader_ws.root.joinpath(
        "leader.log").read_text()


def test_a_channel_lock_takes_no_connection_from_the_pool_its_sends_need(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A channel with an hourly limit is served under an advisory lock held for the whole
    send: its connection must not be one of the pool's, or with as many such channels
    busy as the pool has connections, each would wait (on the event loop) for one its
    own reads and writes need. A pool of one shows it with a single channel."""
    seed_alerts(pg_store(pg_url), "desk", ["Story 0 in Tripoli"])
    narrow = create_engine(pg_url, pool_size=1, max_overflow=0, pool_timeout=1)
    monkeypatch.chdir(tmp_path)
    desk = load_channel("desk", "alertfile://alerts.log", policy=Policy(max_per_hour=5))
    try:
        counts = asyncio.run(Dispatcher(
            Store(narrow), [desk], retry_after=timedelta(minutes=1),
            max_retry_after=timedelta(hours=1)).dispatch(NOW))
        assert counts.sent == 1, counts.errors
        assert "Story 0 in Tripoli" in (tmp_path / "alerts.log").read_text()
    finally:
        narrow.dispose()

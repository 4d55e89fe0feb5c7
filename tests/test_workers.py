"""Several `monitor run` workers on one PostgreSQL share the work, lose nothing and
repeat nothing: every feed is fetched once per cycle, every alert delivered once, and
the feeds of a worker killed mid-cycle are taken over when its leases expire.

Real processes, a real PostgreSQL (a database per test), a feed server and an alert
receiver on 127.0.0.1. Waits are bounded loops on observable state, never sleeps
whose length is asserted."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from servers import FeedServer, Receiver, Route, rss
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ProgrammingError

FEEDS = 300
WORKERS = 3
LEASE = 60  # seconds: a slow CI machine never lets a claim lapse in the two-cycle test
KILL_LEASE = 10  # seconds: short, so the kill test does not wait long for the takeover
WATCHLISTS = "watchlists:\n  - name: libya\n    rules: [Libya]\n"
WORDS = [f"w{n:03d}x" for n in range(2000)]


def body(feed: int, cycle: int, word: str = "Libya", every: int = 0) -> str:
    """A feed of one item per cycle so far; every tenth feed's items name Libya (or,
    from cycle 1, ``word`` in the feeds whose number ends in ``every``). Bodies are
    random words, so no two alerts are one story (stories alert once)."""
    items = []
    for c in range(cycle + 1):
        rnd = random.Random(feed * 10 + c)
        text_ = " ".join(rnd.choice(WORDS) for _ in range(40))
        if feed % 10 == (every if c else 0):
            text_ = f"{word if c else 'Libya'} {text_}"
        items.append({"title": f"feed {feed} item {c}", "guid": f"{feed}-{c}",
                      "description": text_})
    return rss(*items)


def alerting(cycle: int) -> set[str]:
    return {f"feed {f} item {cycle}" for f in range(0, FEEDS, 10)}


class Cluster:
    """The feed server's routes, the workers' settings, their processes and the DB."""

    def __init__(self, root: Path, url: str, server: FeedServer, rx: Receiver) -> None:
        self.root, self.url, self.server, self.rx = root, url, server, rx
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed: set[subprocess.Popen[bytes]] = set()
        self.engine: Engine = create_engine(url)
        self.configure(LEASE)

    def configure(self, lease: int) -> None:
        """Settings for the workers: fetches time out 2 s before the lease ends."""
        lines = [
            'watchlists = "watchlists.yaml"',
            "[database]", f'url = "{self.url}"', f'lease = "{lease}s"', "claim_batch = 20",
            "[fetch]", f'timeout = "{lease - 2}s"', "check_every = 0.3", "concurrency = 10",
            'allow_private_networks = ["127.0.0.1/32"]',
            "[[channel]]", 'name = "desk"',
            f"url = 'json://127.0.0.1:{self.rx.port}/alerts'", 'watchlists = ["libya"]',
        ]
        for i in range(FEEDS):
            lines += ["[[feed]]", f'url = "{self.server.url(f"/f/{i}")}"']
        (self.root / "monitor.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (self.root / "watchlists.yaml").write_text(WATCHLISTS, encoding="utf-8")

    def serve(self, cycle: int, handler: Callable[[BaseHTTPRequestHandler], None] | None
              = None, **kw: Any) -> None:
        for i in range(FEEDS):
            self.server.serve(f"/f/{i}", body(i, cycle, **kw))
            if handler is not None:
                self.server.routes[f"/f/{i}"].handler = handler

    def start(self, n: int) -> None:
        for _ in range(n):
            log = (self.root / f"worker{len(self.procs)}.log").open("wb")
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "monitor", "--config", "monitor.toml", "run"],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "NOTIFY_SOCKET": ""}))
            log.close()

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self.engine.dispose()

    def scalar(self, sql: str) -> object:
        with self.engine.connect() as conn:
            return conn.execute(text(sql)).scalar()

    def wait(self, what: str, done: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready(done):
            for p in self.procs:
                assert p in self.killed or p.poll() is None, f"a worker exited\n{self.logs()}"
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {what}\n{self.logs()[-3000:]}")
            time.sleep(0.1)

    @staticmethod
    def _ready(done: Callable[[], bool]) -> bool:
        try:
            return done()
        except ProgrammingError:  # the workers have not created the schema yet
            return False

    def cycle_done(self, alerts: int) -> Callable[[], bool]:
        def done() -> bool:
            idle = self.scalar("SELECT count(*) FROM feeds WHERE next_check_at > now() "
                               "AT TIME ZONE 'UTC' AND lease_owner IS NULL") == FEEDS
            return idle and len(self.delivered()) >= alerts
        return done

    def delivered(self) -> list[str]:
        return [json.loads(b)["title"] for b in self.rx.delivered()]

    def logs(self) -> str:
        return "\n".join((self.root / f"worker{i}.log").read_text(errors="replace")
                         for i in range(len(self.procs)))


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[Cluster]:
    with FeedServer() as server, Receiver() as rx:
        c = Cluster(tmp_path, pg_url, server, rx)
        try:
            yield c
        finally:
            c.stop()


def fetches(server: FeedServer) -> Counter[str]:
    return Counter(r.path for r in server.requests)


def titles(delivered: list[str]) -> Counter[str]:
    """The item title in each alert's subject (``[libya] feed 3 item 0``)."""
    return Counter(m.group(0) if (m := re.search(r"feed \d+ item \d+", subject)) else subject
                   for subject in delivered)


def test_three_workers_fetch_each_feed_once_per_cycle_and_alert_once(cluster: Cluster) -> None:
    cluster.serve(0)
    cluster.start(WORKERS)
    cluster.wait("cycle 1", cluster.cycle_done(len(alerting(0))))
    assert set(fetches(cluster.server).values()) == {1}
    assert len(fetches(cluster.server)) == FEEDS

    cluster.serve(1)  # each feed gains an item; every tenth alerts
    with cluster.engine.begin() as conn:
        conn.execute(text("UPDATE feeds SET next_check_at = now() AT TIME ZONE 'UTC'"))
    cluster.wait("cycle 2", cluster.cycle_done(2 * len(alerting(0))))
    assert set(fetches(cluster.server).values()) == {2}

    assert titles(cluster.delivered()) == Counter(alerting(0) | alerting(1))
    assert cluster.scalar("SELECT count(*) FROM items") == 2 * FEEDS
    assert cluster.scalar("SELECT count(*) FROM outbox WHERE status <> 'sent'") == 0
    # the work was shared: more than one worker stored polls
    workers = [p for i, p in enumerate(cluster.procs)
               if "polled http" in (cluster.root / f"worker{i}.log").read_text()]
    assert len(workers) >= 2


def test_a_worker_killed_mid_cycle_leaves_its_feeds_to_the_others(cluster: Cluster) -> None:
    gate = threading.Event()

    def held(h: BaseHTTPRequestHandler) -> None:
        gate.wait(30)
        route = cluster.server.routes[h.path]
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", str(len(route.body)))
        h.end_headers()
        h.wfile.write(route.body)

    cluster.configure(KILL_LEASE)
    cluster.serve(0, handler=held)
    cluster.start(WORKERS)
    # every worker has claimed a batch and is fetching it: the server holds the requests
    cluster.wait("each worker to claim feeds", lambda: cluster.scalar(
        "SELECT count(DISTINCT lease_owner) FROM feeds") == WORKERS)
    owner = str(cluster.scalar("SELECT lease_owner FROM feeds WHERE lease_owner IS NOT NULL "
                               "ORDER BY id LIMIT 1"))
    pid = int(owner.split(":")[1])
    victim = next(p for p in cluster.procs if p.pid == pid)
    with cluster.engine.connect() as conn:
        orphans = {f"/f/{int(u.rsplit('/', 1)[1])}" for (u,) in conn.execute(text(
            "SELECT url FROM feeds WHERE lease_owner = :o"), {"o": owner})}
    assert orphans
    cluster.killed.add(victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    before = fetches(cluster.server)
    gate.set()
    for i in range(FEEDS):  # the survivors' later fetches are answered at once
        cluster.server.routes[f"/f/{i}"] = Route(
            cluster.server.routes[f"/f/{i}"].body, 200,
            {"Content-Type": "application/rss+xml"})

    cluster.wait("the survivors to finish every feed", cluster.cycle_done(len(alerting(0))))
    after = fetches(cluster.server)
    assert len(after) == FEEDS
    assert all(after[path] > before[path] for path in orphans if before[path])
    assert titles(cluster.delivered()) == Counter(alerting(0))
    assert cluster.scalar("SELECT count(*) FROM items") == FEEDS
    # the receiver has every alert; the sender marks each sent just after it is received
    cluster.wait("every alert marked sent", lambda: cluster.scalar(
        "SELECT count(*) FROM outbox WHERE status <> 'sent'") == 0, timeout=10)


def test_watchlists_reloaded_on_one_worker_reach_the_others(cluster: Cluster) -> None:
    cluster.serve(0)
    cluster.start(2)
    cluster.wait("cycle 1", cluster.cycle_done(len(alerting(0))))

    (cluster.root / "watchlists.yaml").write_text(
        "watchlists:\n  - name: libya\n    rules: [Libya, Benghazi]\n", encoding="utf-8")
    editor, other = cluster.procs
    editor.send_signal(signal.SIGHUP)  # the admin reloads one worker only
    log = cluster.root / "worker1.log"
    cluster.wait("the other worker to load the new watchlists",
                 lambda: "watchlists changed by another worker" in log.read_text())
    editor.send_signal(signal.SIGTERM)  # from now on, only the other worker polls
    editor.wait(30)
    cluster.killed.add(editor)

    cluster.serve(1, word="Benghazi", every=5)
    with cluster.engine.begin() as conn:
        conn.execute(text("UPDATE feeds SET next_check_at = now() AT TIME ZONE 'UTC'"))
    benghazi = {f"feed {f} item 1" for f in range(5, FEEDS, 10)}
    cluster.wait("cycle 2", cluster.cycle_done(len(alerting(0)) + len(benghazi)))
    assert titles(cluster.delivered()) == Counter(alerting(0) | benghazi)
    assert other.poll() is None

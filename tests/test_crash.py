"""kill -9 during polls and during sends, round after round: no alert lost, none
delivered twice but the one in flight at a kill, and SQLite's integrity_check ok."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler

from conftest import Workspace
from servers import FeedServer, Receiver, Route, rss

FEEDS = 3
ROUNDS = 6
PER_ROUND = 3


def body(marker: str) -> str:
    """A distinct text per item, so no two items are one story."""
    words = [hashlib.sha256(f"{marker}/{i}".encode()).hexdigest()[:8] for i in range(40)]
    return f"Fighting near Tripoli. {' '.join(words)}"


def publish(server: FeedServer, upto: int) -> None:
    for f in range(FEEDS):
        items = [{"title": f"Report m{f}x{j} from Tripoli", "guid": f"m{f}x{j}",
                  "description": body(f"m{f}x{j}")} for j in range(upto)]
        server.serve(f"/f{f}", rss(*items))


def integrity(workspace: Workspace) -> str:
    with sqlite3.connect(workspace.db) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def test_kill_9_during_polls_and_sends_loses_nothing_and_duplicates_only_in_flight(
        workspace: Workspace, feed_server: FeedServer) -> None:
    with Receiver() as rx:
        publish(feed_server, 0)
        workspace.write(feeds=[], channels=[("hook", f"json://127.0.0.1:{rx.port}/hook")],
                        extra='check_every = "0.2s"\n' + "".join(
                            f'[[feed]]\nurl = "{feed_server.url(f"/f{f}")}"\ninterval = "1s"\n'
                            for f in range(FEEDS)))
        kills = 0
        for r in range(ROUNDS):
            publish(feed_server, (r + 1) * PER_ROUND)
            hit = threading.Event()
            if r % 2 == 0:  # kill -9 while a poll is in flight
                route = feed_server.routes["/f0"]

                def hang(h: BaseHTTPRequestHandler, hit: threading.Event = hit) -> None:
                    hit.set()
                    feed_server.release.wait(30)
                feed_server.routes["/f0"] = Route(route.body, handler=hang)
            else:  # kill -9 while a send is in flight
                rx.hang, rx.arrived = True, hit
            log = workspace.root / f"round{r}.log"
            with log.open("w") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "monitor", "--config", str(workspace.config), "run"],
                    cwd=workspace.root, stdout=subprocess.DEVNULL, stderr=err)
            try:
                reached = hit.wait(60)
            finally:
                proc.kill()
                proc.wait(30)
            assert reached, f"round {r}: the daemon never got there:\n{log.read_text()[-3000:]}"
            kills += 1
            feed_server.release.set()
            rx.release.set()
            rx.hang = False
            feed_server.release.clear()
            rx.release.clear()
            publish(feed_server, (r + 1) * PER_ROUND)  # /f0 served normally again
            assert integrity(workspace) == "ok", f"round {r}"

        # The leases of sends cut by a kill expire (as time would make them), then one
        # run --once polls and sends whatever is left.
        with sqlite3.connect(workspace.db) as db:
            db.execute("UPDATE outbox SET lease_until = '2000-01-01 00:00:00.000000' "
                       "WHERE status = 'sending'")
        done = workspace.monitor("run", "--once")
        assert done.code == 0, done.err

        with sqlite3.connect(workspace.db) as db:
            items = db.execute("SELECT count(*), count(DISTINCT guid) FROM items").fetchone()
            statuses = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY status"))
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        total = FEEDS * ROUNDS * PER_ROUND
        assert items == (total, total)
        assert statuses == {"sent": total}, statuses

        markers = [m for _, post in rx.posts
                   for m in re.findall(r"Report (m\d+x\d+)", json.loads(post)["title"])]
        assert set(markers) == {f"m{f}x{j}" for f in range(FEEDS)
                                for j in range(ROUNDS * PER_ROUND)}, "an alert was lost"
        duplicates = len(markers) - len(set(markers))
        print(f"\n{kills} kills, {len(set(markers))} alerts, {duplicates} delivered twice")
        assert duplicates <= kills, f"{duplicates} duplicates for {kills} kills"

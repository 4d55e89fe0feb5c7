"""`monitor run` as systemd runs it: a real process with $NOTIFY_SOCKET pointing at a
socket the test reads, $WATCHDOG_USEC set, /metrics and /healthz on 127.0.0.1, SIGHUP
and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from conftest import Workspace
from servers import FeedServer, NotifySocket, Route, SmtpServer, free_port, rss, send

ARTICLE = {"title": "Haftar's forces push toward Tripoli", "guid": "1",
           "description": "Fighting near Tripoli, Libya."}
BAD_WATCHLISTS = "watchlists:\n  - name: libya\n    rules: ['(Tripoli']\n"
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: no proxy


class Daemon:
    """`monitor run` in a subprocess, its stderr in a file (a pipe could fill and block)."""

    def __init__(self, workspace: Workspace, notify: NotifySocket, port: int) -> None:
        self.log = workspace.root / "daemon.log"
        self.port = port
        env = {**os.environ, "NOTIFY_SOCKET": notify.name, "WATCHDOG_USEC": "200000"}
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "--config", str(workspace.config), "run"],
                cwd=workspace.root, stdout=subprocess.DEVNULL, stderr=err, env=env)

    def get(self, path: str) -> tuple[int, str, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with HTTP.open(url, timeout=30) as r:
                return r.status, r.headers["Content-Type"], r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def events(self) -> list[dict[str, str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def polled(message: dict[str, str]) -> bool:
    """A STATUS showing at least one poll done."""
    return "polls," in message.get("STATUS", "") and " 0 polls," not in message["STATUS"]


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    with NotifySocket() as sock:
        yield sock


def write(workspace: Workspace, feed_server: FeedServer, port: int, paths: list[str],
          channels: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
    feeds = "".join(f'[[feed]]\nurl = "{feed_server.url(p)}"\ninterval = "1s"\n' for p in paths)
    workspace.write(feeds=[], channels=channels,
                    extra=f'check_every = "0.2s"\n[web]\nlisten = "127.0.0.1:{port}"\n{feeds}')


def test_ready_watchdog_metrics_health_and_a_clean_stop(
        workspace: Workspace, feed_server: FeedServer, notify: NotifySocket) -> None:
    feed_server.serve("/a.xml", rss(ARTICLE))
    port = free_port()
    write(workspace, feed_server, port, ["/a.xml"])
    daemon = Daemon(workspace, notify, port)
    try:
        ready = notify.wait_for("READY")
        assert "1 feeds, 1 watchlists, 0 channels" in ready["STATUS"]
        assert "STATUS" in notify.wait_for("WATCHDOG")
        notify.wait_for("WATCHDOG", where=polled)

        code, ctype, body = daemon.get("/healthz")
        assert code == 200, body
        assert ctype == "application/json"
        assert json.loads(body) == {"status": "ok", "checks": {
            "scheduler": "ok", "database": "ok", "outbox": "ok"}}

        code, ctype, body = daemon.get("/metrics")
        assert code == 200
        assert ctype.startswith("text/plain")
        for series in ('monitor_polls_total{outcome="ok"}',
                       'monitor_polls_total{outcome="error"} 0.0',
                       "monitor_fetch_duration_seconds_bucket",
                       "monitor_items_stored_total 1.0",
                       'monitor_matches_total{watchlist="libya"} 1.0',
                       "monitor_scheduler_lag_seconds",
                       "monitor_feeds_in_error 0.0",
                       "monitor_database_up 1.0",
                       'monitor_config_reloads_total{result="refused"} 0.0'):
            assert series in body, series
        assert daemon.get("/nowhere")[0] == 404

        daemon.signal(signal.SIGTERM)
        notify.wait_for("STOPPING")
        assert daemon.proc.wait(timeout=60) == 0
    finally:
        daemon.kill()
    messages = [e["msg"] for e in daemon.events()]  # JSON lines: stderr is not a terminal
    assert "monitor running: 1 feeds, 1 watchlists, 0 channels" in messages
    assert messages[-1] == "stopped"


def test_sighup_applies_a_valid_config_and_refuses_an_invalid_one(
        workspace: Workspace, feed_server: FeedServer, notify: NotifySocket) -> None:
    feed_server.serve("/a.xml", rss(ARTICLE))
    feed_server.serve("/b.xml", rss(title="B"))
    b_polled = threading.Event()
    port = free_port()
    write(workspace, feed_server, port, ["/a.xml"])
    daemon = Daemon(workspace, notify, port)
    try:
        notify.wait_for("READY")
        write(workspace, feed_server, port, ["/a.xml", "/b.xml"])
        daemon.signal(signal.SIGHUP)
        notify.wait_for("RELOADING")
        reloaded = notify.wait_for("READY")
        assert reloaded["STATUS"].startswith("reloaded; 2 feeds"), reloaded
        _on_next_request(feed_server, "/b.xml", b_polled)
        assert b_polled.wait(30), "the feed added by the reload was never polled"

        (workspace.root / "watchlists.yaml").write_text(BAD_WATCHLISTS, encoding="utf-8")
        daemon.signal(signal.SIGHUP)
        refused = notify.wait_for("READY")
        assert refused["STATUS"].startswith("reload refused (1 errors)"), refused
        b_polled.clear()
        _on_next_request(feed_server, "/b.xml", b_polled)
        assert b_polled.wait(30), "the old configuration stopped running"
        notify.wait_for("WATCHDOG")
        body = daemon.get("/metrics")[2]
        assert 'monitor_config_reloads_total{result="applied"} 1.0' in body
        assert 'monitor_config_reloads_total{result="refused"} 1.0' in body
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    events = daemon.events()
    errors = [e["msg"] for e in events if e["level"] == "ERROR"]
    assert any(m.startswith("reload refused: watchlists.yaml: watchlists[0].rules[0]:")
               for m in errors), errors


def _on_next_request(server: FeedServer, path: str, seen: threading.Event) -> None:
    route = server.routes[path]

    def handler(h: BaseHTTPRequestHandler) -> None:
        seen.set()
        h.send_response(200)
        h.send_header("Content-Length", str(len(route.body)))
        h.end_headers()
        h.wfile.write(route.body)

    server.routes[path] = Route(route.body, handler=handler)


def test_sigterm_finishes_the_poll_in_flight_and_loses_nothing(
        workspace: Workspace, feed_server: FeedServer, smtp_server: SmtpServer,
        notify: NotifySocket) -> None:
    body = rss(ARTICLE).encode()
    arrived, release = threading.Event(), threading.Event()

    def slow(h: BaseHTTPRequestHandler) -> None:
        arrived.set()
        release.wait(30)
        send(h, 200, {"Content-Type": "application/rss+xml"}, body)

    feed_server.routes["/slow.xml"] = Route(handler=slow)
    port = free_port()
    write(workspace, feed_server, port, ["/slow.xml"], channels=[("desk", smtp_server.url())])
    daemon = Daemon(workspace, notify, port)
    try:
        notify.wait_for("READY")
        assert arrived.wait(30), "the feed was never polled"
        daemon.signal(signal.SIGTERM)
        notify.wait_for("STOPPING")
        release.set()  # the poll in flight completes during the drain
        assert daemon.proc.wait(timeout=60) == 0
    finally:
        release.set()
        daemon.kill()
    with sqlite3.connect(workspace.db) as db:
        assert db.execute("select title from items").fetchall() == [(ARTICLE["title"],)]
        outbox = db.execute("select status from outbox").fetchall()
    assert outbox in ([("pending",)], [("sent",)])
    if outbox == [("pending",)]:  # stored before the stop, sent by the next run
        result = workspace.monitor("run", "--once")
        assert result.code == 0, result.err
    assert smtp_server.received.wait(30)
    assert [m["Subject"] for m in smtp_server.messages] == [f"[libya] {ARTICLE['title']}"]


def test_healthz_is_503_with_the_reason_when_the_outbox_backs_up(
        workspace: Workspace, feed_server: FeedServer, notify: NotifySocket) -> None:
    feed_server.serve("/a.xml", rss(ARTICLE, {"title": "Libya again", "guid": "2"}))
    port = free_port()
    feeds = f'[[feed]]\nurl = "{feed_server.url("/a.xml")}"\n'
    dead = "mailto://127.0.0.1:9?from=m@example.org&to=a@example.org&mode=insecure"
    workspace.write(feeds=[], channels=[("dead", dead)],
                    extra=f'check_every = "0.2s"\n[web]\nlisten = "127.0.0.1:{port}"\n'
                    f"max_pending_alerts = 1\n{feeds}")
    daemon = Daemon(workspace, notify, port)
    try:
        notify.wait_for("READY")
        notify.wait_for("WATCHDOG", where=polled)
        # The alerts stay "sending" while the first send fails (apprise loads its plugins
        # on first use, slowly on a fresh venv): look again at each watchdog ping.
        for _ in range(300):
            code, _, body = daemon.get("/healthz")
            if code == 503:
                break
            notify.wait_for("WATCHDOG")
        assert code == 503, body
        report = json.loads(body)
        assert report["status"] == "failing"
        assert report["checks"]["outbox"] == "2 alerts pending, more than 1"
        metrics = daemon.get("/metrics")[2]
        assert 'monitor_alerts_pending{channel="dead"} 2.0' in metrics
        assert 'monitor_outbox_oldest_pending_age_seconds{channel="dead"}' in metrics
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_a_port_in_use_is_a_clear_error(workspace: Workspace) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        workspace.write(feeds=[], extra=f'[web]\nlisten = "127.0.0.1:{port}"\n')
        result = workspace.monitor("run", timeout=60)
    assert result.code == 1
    assert f"[web] listen: cannot listen on 127.0.0.1:{port}" in result.err

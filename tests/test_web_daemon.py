"""The console served by `monitor run` (a real process) beside /metrics and /healthz:
a rule added through the console's API reaches the running daemon, which alerts on it
without a restart."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest
from conftest import Workspace
from servers import FeedServer, NotifySocket, Receiver, free_port, rss
from test_service import Daemon

WATCHLISTS = "watchlists:\n  - name: libya\n    rules: [Tripoli]\n"
TALKS = {"title": "Talks in Tripoli", "guid": "1", "description": "Envoys met in Tripoli."}
FLOODS = {"title": "Floods in Derna", "guid": "2", "description": "The dams broke."}


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    with NotifySocket() as sock:
        yield sock


def test_a_rule_saved_in_the_console_alerts_in_the_running_daemon(
        workspace: Workspace, feed_server: FeedServer, notify: NotifySocket) -> None:
    feed = feed_server.serve("/a.xml", rss(TALKS))
    web, console = free_port(), free_port()
    with Receiver() as rx:
        workspace.write(feeds=[], channels=[("hook", f"json://127.0.0.1:{rx.port}/hook")],
                        watchlists=WATCHLISTS,
                        extra=f'check_every = "0.2s"\n[web]\nlisten = "127.0.0.1:{web}"\n'
                        f'console = "127.0.0.1:{console}"\n'
                        f'[[feed]]\nurl = "{feed}"\ninterval = "1s"\n')
        added = workspace.monitor("users", "add", "ann", "--role", "admin",
                                  "--password-stdin", stdin="ann's long password\n")
        assert added.code == 0, added.err
        daemon = Daemon(workspace, notify, web)
        try:
            notify.wait_for("READY")
            assert rx.arrived.wait(30), "no alert on the first item"
            assert b"Talks in Tripoli" in rx.delivered()[0]
            code, _, body = daemon.get("/healthz")  # the wsgiref side, unchanged
            assert code == 200, body

            base = f"http://127.0.0.1:{console}"
            with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
                assert client.get("/api/watchlists").status_code == 401
                r = client.post("/api/session", json={"name": "ann",
                                                      "password": "ann's long password"})
                assert r.status_code == 200, r.text
                csrf = r.json()["csrf"]
                r = client.put("/api/watchlists/libya", headers={"X-CSRF-Token": csrf},
                               json={"rules": ["Tripoli", "Derna"]})
                assert r.status_code == 200, r.text
            # the daemon loads the published watchlists at a tick; then the new item comes
            notify.wait_for("WATCHDOG", where=lambda _: "watchlists changed by another "
                            "worker" in daemon.log.read_text())
            rx.arrived = threading.Event()
            feed_server.serve("/a.xml", rss(TALKS, FLOODS))
            assert rx.arrived.wait(30), "no alert on the rule added through the console"
            bodies = [json.loads(b) for b in rx.delivered()]
            assert any("Floods in Derna" in b["title"] + b["message"] for b in bodies)
            assert daemon.stop() == 0
            assert "ann's long password" not in daemon.log.read_text()
        finally:
            daemon.kill()

"""`monitor run` as a real long-running process: it polls on the interval, alerts, and
stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import Workspace
from servers import FeedServer, SmtpServer, rss


def test_daemon_polls_on_its_interval_and_stops_on_sigterm(
    workspace: Workspace, feed_server: FeedServer, smtp_server: SmtpServer, seed_article: str
) -> None:
    first = {"title": "Haftar's forces push toward Tripoli", "guid": "1",
             "description": seed_article}
    feed = feed_server.serve("/libya.xml", rss(first))
    workspace.write(feeds=[], channels=[("desk-email", smtp_server.url())],
                    extra='check_every = "0.2s"\n'
                          f'[[feed]]\nurl = "{feed_server.url("/libya.xml")}"\ninterval = "1s"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(workspace.config), "run"],
        cwd=workspace.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ),
    )
    try:
        assert smtp_server.received.wait(60), "no alert from the first poll"
        smtp_server.received.clear()
        second = {"title": "Sarraj appeals to the UN", "guid": "2", "description": "Libya"}
        feed_server.serve("/libya.xml", rss(second, first))
        assert smtp_server.received.wait(60), "no alert from a later poll"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert [m["Subject"] for m in smtp_server.messages] == [
        "[libya] Haftar's forces push toward Tripoli", "[libya] Sarraj appeals to the UN"]
    assert len(feed_server.hits("/libya.xml")) >= 2
    assert "monitor running: 1 feeds, 1 watchlists, 1 channels" in err
    assert "stopping" in err
    assert feed == feed_server.url("/libya.xml")

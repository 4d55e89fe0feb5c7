"""Feed-health alerts: one when a feed has failed too long, one when it recovers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Workspace
from servers import FeedServer, rss

from monitor.config import load_config
from monitor.daemon import build, run_once

T0 = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)


def test_one_alert_when_failing_too_long_and_one_on_recovery(
    workspace: Workspace, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace.root)
    url = feed_server.serve("/flaky", "down", status=503)
    workspace.write(feeds=[url], extra=(
        '[alerts]\nadmin_channel = "ops"\nfeed_failing_after = "6h"\n'
        '[[channel]]\nname = "ops"\nurl = "alertfile://ops.log"\n'))
    config = load_config(workspace.config)
    log = workspace.root / "ops.log"

    def once(at: datetime) -> None:
        asyncio.run(run_once(build(config, clock=lambda: at)))

    def notices() -> list[str]:
        text = log.read_text() if log.exists() else ""
        return [line for line in text.splitlines() if line.startswith("=== ")]

    once(T0)
    once(T0 + timedelta(hours=5))
    assert notices() == []  # failing, but not for long enough
    once(T0 + timedelta(hours=7))
    once(T0 + timedelta(hours=8))
    assert notices() == [f"=== [monitor] feed failing: {url}"]
    assert "Last error: HTTP 503 Service Unavailable" in log.read_text()
    feed_server.serve("/flaky", rss({"title": "back", "guid": "1"}))
    once(T0 + timedelta(hours=9))
    once(T0 + timedelta(hours=10))
    assert notices() == [f"=== [monitor] feed failing: {url}",
                         "=== [monitor] feed recovered: Test feed"]


def test_the_admin_channel_must_exist(workspace: Workspace) -> None:
    workspace.write(feeds=[], extra='[alerts]\nadmin_channel = "ops"\n')
    result = workspace.monitor("check")
    assert result.code == 1
    assert ("monitor.toml: alerts.admin_channel: no channel named 'ops' (define it with "
            "[[channel]])") in result.err

"""Feed-health alerts: one when a feed has failed too long, one when it recovers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Workspace
from servers import FeedServer, rss
from sqlalchemy import Engine

from monitor.config import load_config
from monitor.daemon import build, run_once
from monitor.feed_health import health_notices
from monitor.store import FetchState, StateWrite, Store

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


def test_the_health_check_reads_only_the_feeds_that_may_need_a_notice(engine: Engine) -> None:
    """Every minute the daemon reads ``Store.health_feeds``, not every feed: the same
    notices as from all of them, on both backends."""
    store = Store(engine)
    store.sync_feeds([(f"http://feeds.example/{n}", None, timedelta(minutes=15))
                      for n in range(6)], T0 - timedelta(days=1))
    ids = [f.id for f in store.feeds()]
    ok = FetchState(T0, T0 + timedelta(minutes=15), True, 304)
    failed = FetchState(T0, T0 + timedelta(minutes=15), False, 503, error="HTTP 503")
    # 0: new; 1: fine; 2: failing; 3: failing, alerted; 4: alerted, recovered; 5: paused
    store.record_states([StateWrite(ids[1], ok), StateWrite(ids[2], failed),
                         StateWrite(ids[3], failed), StateWrite(ids[4], ok),
                         StateWrite(ids[5], failed)])
    store.set_health_alerted(ids[3], T0)
    store.set_health_alerted(ids[4], T0)
    store.sync_feeds([(f"http://feeds.example/{n}", None, timedelta(minutes=15))
                      for n in range(5)], T0)
    assert [f.id for f in store.health_feeds()] == [ids[2], ids[4]]
    later = T0 + timedelta(days=2)
    expected = health_notices(store.feeds(counts=False), later, timedelta(hours=6))
    assert [(n.feed_id, n.failing) for n in expected] == [(ids[2], True), (ids[4], False)]
    assert health_notices(store.health_feeds(), later, timedelta(hours=6)) == expected

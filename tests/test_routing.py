"""Routing, digests and no floods, with an injected clock: nothing here sleeps."""

from __future__ import annotations

import asyncio
import zoneinfo
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from conftest import Workspace
from servers import FeedServer, rss
from test_alerts import alert
from test_delivery import make_store

from monitor.alerts import (
    Dispatcher,
    Policy,
    QuietHours,
    channel_from_settings,
    load_channel,
    plan,
    renderer,
)
from monitor.analyse import match_entry
from monitor.config import load_config
from monitor.daemon import OnceReport, build, digest_trigger, run_once
from monitor.errors import ConfigError
from monitor.match import Matcher, compile_watchlist
from monitor.match.watchlist import WatchlistSpec
from monitor.parse import Entry

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
TRIPOLI = zoneinfo.ZoneInfo("Africa/Tripoli")  # UTC+2, no DST


def test_quiet_hours_cross_midnight_in_the_channel_time_zone() -> None:
    quiet = QuietHours.parse("22:00-07:00", TRIPOLI)
    assert quiet.start == time(22) and quiet.end == time(7)
    assert datetime(2026, 1, 19, 20, 0, tzinfo=UTC) in quiet  # 22:00 in Tripoli
    assert datetime(2026, 1, 19, 4, 59, tzinfo=UTC) in quiet
    assert datetime(2026, 1, 19, 5, 0, tzinfo=UTC) not in quiet  # 07:00 in Tripoli
    assert NOW not in quiet


def test_past_the_hourly_limit_alerts_roll_into_one_summary() -> None:
    due = [alert(id=i) for i in range(1, 6)]
    p = plan(Policy(max_per_hour=3), due, [NOW - timedelta(minutes=30)], NOW)
    assert [a.id for a in p.singles] == [1]
    assert [a.id for a in p.bundle] == [2, 3, 4, 5] and p.bundle_kind == "summary"
    assert p.messages == 2  # 1 sent in the hour + 2 = the limit of 3
    # the hour is used up: nothing is sent, nothing is dropped
    full = [NOW - timedelta(minutes=m) for m in (50, 10, 5)]
    assert plan(Policy(max_per_hour=3), due, full, NOW).messages == 0
    assert plan(Policy(max_per_hour=3), due, full, NOW + timedelta(minutes=11)).messages == 1
    # under the limit: each alone
    assert len(plan(Policy(max_per_hour=10), due, [], NOW).singles) == 5


def test_quiet_hours_hold_alerts_and_send_them_as_one_digest_after() -> None:
    policy = Policy(quiet=QuietHours.parse("22:00-07:00", UTC))
    night = datetime(2026, 1, 19, 23, 0, tzinfo=UTC)
    due = [alert(id=1, created_at=night), alert(id=2, created_at=night + timedelta(hours=1))]
    assert plan(policy, due, [], night + timedelta(hours=2)).messages == 0
    morning = datetime(2026, 1, 20, 7, 0, tzinfo=UTC)
    late = alert(id=3, created_at=morning)
    p = plan(policy, [*due, late], [], morning)
    assert [a.id for a in p.singles] == [3]
    assert [a.id for a in p.bundle] == [1, 2] and p.bundle_kind == "digest"


def test_a_channel_may_ask_for_a_minimum_number_of_rules() -> None:
    wl = compile_watchlist(WatchlistSpec("libya", ("Libya", "Tripoli", "Haftar")))
    entry = Entry(None, None, "Clashes in Tripoli, Libya", "", "", "", None)
    routes = {"libya": ("all", "strict", "strictest")}
    (m,) = match_entry(entry, "Wire", Matcher.of([wl]), routes, {"strict": 2, "strictest": 3})
    assert m.channels == ("all", "strict")


def test_a_channel_on_every_watchlist_receives_one_made_later_once() -> None:
    wl = compile_watchlist(WatchlistSpec("made-in-console", ("Tripoli",)))
    entry = Entry(None, None, "Clashes in Tripoli", "", "", "", None)
    routes = {"*": ("desk", "all"), "made-in-console": ("desk",), "libya": ("other",)}
    (m,) = match_entry(entry, "Wire", Matcher.of([wl]), routes)
    assert m.channels == ("desk", "all")


def test_rules_scoped_to_the_feed_link_and_author_see_those_fields() -> None:
    """A new item's document holds only the fields the rules look at: the scoped ones
    when a rule asks for them."""
    wl = compile_watchlist(WatchlistSpec("scoped", (
        "feed:Tripoli", "url:benghazi", "author:Sarraj", "Misrata")))
    entry = Entry(None, "https://benghazi.example/a", "Port news", "", "", "Fayez Sarraj",
                  None)
    (m,) = match_entry(entry, "Tripoli Wire", Matcher.of([wl]), {"scoped": ("desk",)})
    assert [r["index"] for r in m.rules] == [0, 1, 2]
    assert {t["field"] for r in m.rules for t in r["terms"]} == {"feed", "url", "author"}
    unscoped = compile_watchlist(WatchlistSpec("plain", ("Tripoli OR benghazi OR Sarraj",)))
    assert match_entry(entry, "Tripoli Wire", Matcher.of([unscoped]), {}) == ()


def test_digest_schedule_fires_in_the_channel_time_zone() -> None:
    trigger = digest_trigger("0 7 * * *", "Africa/Tripoli")
    fire = trigger.get_next_fire_time(None, NOW)
    assert fire == datetime(2026, 1, 20, 5, 0, tzinfo=UTC)  # 07:00 in Tripoli


def test_a_digest_groups_by_watchlist_and_story() -> None:
    a = alert(id=1, story_id=1, feed_title="Wire A", feed_url="https://a.example/rss")
    b = alert(id=2, story_id=1, feed_title="Wire B", feed_url="https://b.example/rss")
    c = alert(id=3, story_id=3, title="Airport closed in Tripoli")
    d = alert(id=4, story_id=4, watchlist="sahel", title="Niger border")
    msg = renderer("text").render([a, b, c, d], "digest")
    assert msg.title == "monitor digest: 4 matches in 2 watchlists"
    assert "## libya (2 stories)" in msg.body and "## sahel (1 story)" in msg.body
    assert msg.body.count("Fighting in Tripoli\n") == 1
    assert "Also reported by: Wire B <https://example.org/1>" in msg.body


@pytest.fixture
def logdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def entries(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line[4:] for line in path.read_text().splitlines() if line.startswith("=== ")]


def test_rate_limited_channel_end_to_end(logdir: Path) -> None:
    store = make_store(logdir / "m.db", ("desk",), [f"Story {i} in Tripoli" for i in range(5)])
    desk = load_channel("desk", "alertfile://out.log", policy=Policy(max_per_hour=2))
    d = Dispatcher(store, [desk], retry_after=timedelta(minutes=1),
                   max_retry_after=timedelta(hours=1), jitter=lambda: 1.0)
    assert asyncio.run(d.dispatch(NOW)).sent == 2
    assert entries(logdir / "out.log") == [
        "[libya] Story 0 in Tripoli",
        "monitor: 4 more matches (over desk's hourly limit)",
    ]
    assert "4 more matches: desk has sent its 2 alerts this hour." in (
        logdir / "out.log").read_text()
    assert store.pending_alerts(None) == []


def test_digest_channel_sends_only_on_its_schedule(logdir: Path) -> None:
    store = make_store(logdir / "m.db", ("daily",), ["Fighting in Tripoli",
                                                    "Airport closed in Tripoli"])
    daily = load_channel("daily", "alertfile://digest.log", mode="digest",
                         policy=Policy(quiet=QuietHours.parse("22:00-07:00", UTC)))
    d = Dispatcher(store, [daily], retry_after=timedelta(minutes=1),
                   max_retry_after=timedelta(hours=1))
    assert asyncio.run(d.dispatch(NOW)).sent == 0  # instant sending skips it
    night = datetime(2026, 1, 19, 23, 0, tzinfo=UTC)
    assert asyncio.run(d.send_digest("daily", night)).sent == 0  # quiet: the next one
    morning = datetime(2026, 1, 20, 7, 0, tzinfo=UTC)
    assert asyncio.run(d.send_digest("daily", morning)).sent == 1
    assert entries(logdir / "digest.log") == ["monitor digest: 2 matches in 1 watchlist"]
    assert asyncio.run(d.send_digest("daily", morning + timedelta(days=1))).sent == 0




def test_an_instant_channel_holds_quiet_hours_then_sends_one_digest(logdir: Path) -> None:
    night = datetime(2026, 1, 19, 23, 0, tzinfo=UTC)
    store = make_store(logdir / "m.db", ("desk",), ["Fighting in Tripoli",
                                                   "Airport closed in Tripoli"], at=night)
    desk = load_channel("desk", "alertfile://out.log",
                        policy=Policy(quiet=QuietHours.parse("22:00-07:00", UTC)))
    d = Dispatcher(store, [desk], retry_after=timedelta(minutes=1),
                   max_retry_after=timedelta(hours=1))
    assert asyncio.run(d.dispatch(night + timedelta(hours=2))).sent == 0
    morning = datetime(2026, 1, 20, 7, 0, tzinfo=UTC)
    assert asyncio.run(d.dispatch(morning)).sent == 1
    assert entries(logdir / "out.log") == ["monitor digest: 2 matches in 1 watchlist"]
    assert store.pending_alerts(None) == []


def test_run_once_sends_the_digests_whose_schedule_fired(
    workspace: Workspace, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run --once`` "dispatches every alert due": a digest is due once its schedule
    fired after its oldest pending alert was queued (the daemon would have sent it)."""
    monkeypatch.chdir(workspace.root)
    url = feed_server.serve("/wire", rss({"title": "Fighting in Libya", "guid": "1"},
                                         {"title": "Tripoli airport shut", "guid": "2"}))
    workspace.write(feeds=[url], extra=(
        '[[channel]]\nname = "daily"\nurl = "alertfile://digest.log"\n'
        'watchlists = ["libya"]\nmode = "digest"\ndigest_schedule = "0 7 * * *"\n'
        'timezone = "Africa/Tripoli"\n'))
    config = load_config(workspace.config)
    log = workspace.root / "digest.log"

    def once(at: datetime) -> OnceReport:
        return asyncio.run(run_once(build(config, clock=lambda: at)))

    assert once(NOW).dispatch.sent == 0  # queued at 14:00 Tripoli time
    assert once(datetime(2026, 1, 20, 4, 59, tzinfo=UTC)).dispatch.sent == 0  # 06:59 there
    assert not log.exists()
    report = once(datetime(2026, 1, 20, 5, 0, tzinfo=UTC))  # 07:00 in Tripoli: it fired
    assert report.dispatch.sent == 1 and "alerts: 1 sent" in report.summary()
    assert entries(log) == ["monitor digest: 2 matches in 1 watchlist"]
    assert once(datetime(2026, 1, 20, 9, 0, tzinfo=UTC)).dispatch.sent == 0  # sent once
    assert entries(log) == ["monitor digest: 2 matches in 1 watchlist"]


def test_channel_concurrency_is_configured_and_bounded(workspace: Workspace) -> None:
    workspace.write(feeds=[], channels=[("desk", "alertfile://a.log")])
    base = workspace.config.read_text()
    workspace.config.write_text(base + "concurrency = 4\n")
    (ch,) = load_config(workspace.config).channels
    channel = channel_from_settings(ch)
    assert channel.concurrency == 4 and channel.pool is not None
    assert channel.pool._max_workers == 4
    for bad in (0, 33):
        workspace.config.write_text(base + f"concurrency = {bad}\n")
        with pytest.raises(ConfigError) as exc:
            load_config(workspace.config)
        assert "channel[0].concurrency" in str(exc.value)

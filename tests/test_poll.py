"""One poll of one feed, in process: whatever goes wrong is recorded, nothing raises."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from servers import FeedServer, rss
from sqlalchemy import text

from monitor.fetch import Fetcher
from monitor.match import Document, Matcher, WatchlistMatch, WatchlistSpec, compile_watchlist
from monitor.poll import FeedOptions, Poller, PollReport
from monitor.store import FeedRow, Store, create, migrate

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    engine = create(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    return Store(engine)


def prepare(store: Store, url: str) -> FeedRow:
    store.sync_feeds([(url, None, timedelta(minutes=5))], NOW)
    store.sync_watchlists({"libya": {}}, NOW)
    (feed,) = store.feeds()
    return feed


def poll(store: Store, feed: FeedRow, watchlists: list[object]) -> PollReport:
    async def go() -> PollReport:
        async with Fetcher(timeout=5, max_body_bytes=100_000, concurrency=2, user_agent="t",
                           allow_private_networks=[ipaddress.ip_network("127.0.0.1/32")]) as f:
            return await Poller(store, f, watchlists, {}).poll(feed, NOW)  # type: ignore[arg-type]
    return asyncio.run(go())


def test_a_bug_in_processing_is_recorded_on_the_feed(
    store: Store, feed_server: FeedServer, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def bug(self: Matcher, doc: Document) -> list[WatchlistMatch]:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(Matcher, "match", bug)  # a bug in matching, however it comes
    url = feed_server.serve("/f", rss({"title": "Libya", "guid": "1"}))
    libya = compile_watchlist(WatchlistSpec("libya", ("Libya",)))
    report = poll(store, prepare(store, url), [libya])
    assert not report.ok
    assert report.error == ("internal error while processing the feed (ZeroDivisionError); "
                            "see the log")
    (feed,) = store.feeds()
    assert feed.last_error == report.error and feed.items == 0
    assert "ZeroDivisionError: a bug" in caplog.text


def test_a_broken_database_is_reported_not_raised(store: Store, feed_server: FeedServer) -> None:
    url = feed_server.serve("/f", rss({"title": "Libya", "guid": "1"}))
    feed = prepare(store, url)
    with store.engine.begin() as conn:
        conn.execute(text("drop table outbox"))
        conn.execute(text("drop table matches"))
        conn.execute(text("drop table items"))
    report = poll(store, feed, [])
    assert not report.ok and report.error is not None
    assert report.error.startswith("database: cannot save the poll of feed")


def run(store: Store, feed: FeedRow, now: datetime) -> PollReport:
    async def go() -> PollReport:
        async with Fetcher(timeout=5, max_body_bytes=100_000, concurrency=2, user_agent="t",
                           allow_private_networks=[ipaddress.ip_network("127.0.0.1/32")]) as f:
            return await Poller(store, f, [], {}, jitter=lambda: 0.0).poll(feed, now)
    return asyncio.run(go())


def only(store: Store) -> FeedRow:
    (feed,) = store.feeds()
    return feed


def test_retry_after_is_honoured(store: Store, feed_server: FeedServer) -> None:
    url = feed_server.serve("/busy", "slow down", status=429, **{"Retry-After": "3600"})
    run(store, prepare(store, url), NOW)
    assert store.due_feeds(NOW + timedelta(minutes=59), 10) == []
    assert only(store).next_check_at == NOW + timedelta(hours=1)
    assert only(store).last_error == "HTTP 429 Too Many Requests"


def test_backoff_grows_then_resets_on_success(store: Store, feed_server: FeedServer) -> None:
    url = feed_server.serve("/down", "oops", status=503)
    feed, now, waits = prepare(store, url), NOW, []
    for _ in range(4):
        run(store, feed, now)
        feed = only(store)
        assert feed.next_check_at is not None
        waits.append(feed.next_check_at - now)
        now = feed.next_check_at
    assert waits == [timedelta(minutes=5 * 2**i) for i in range(4)]
    assert feed.consecutive_failures == 4
    feed_server.serve("/down", rss({"title": "back", "guid": "1"}))
    run(store, feed, now)
    assert only(store).next_check_at == now + timedelta(minutes=5)
    assert only(store).consecutive_failures == 0


def test_a_permanent_redirect_moves_the_feed(store: Store, feed_server: FeedServer) -> None:
    new = feed_server.serve("/new", rss({"title": "Libya", "guid": "1"}))
    old = feed_server.serve("/old", b"", status=301, Location=new)
    run(store, prepare(store, old), NOW)
    moved = only(store)
    assert (moved.url, moved.fetch_url, moved.location) == (old, new, new)
    run(store, moved, NOW + timedelta(minutes=5))
    assert [r.path for r in feed_server.requests] == ["/old", "/new", "/new"]
    store.sync_feeds([(old, None, timedelta(minutes=5))], NOW)  # the config still says /old
    assert only(store).location == new


def test_a_gone_feed_is_polled_daily(store: Store, feed_server: FeedServer) -> None:
    url = feed_server.serve("/gone", "bye", status=410)
    run(store, prepare(store, url), NOW)
    gone = only(store)
    assert gone.gone_at == NOW and gone.next_check_at == NOW + timedelta(days=1)
    assert gone.last_error == "HTTP 410 Gone"


def test_cache_hints_and_ttl_push_the_next_check(store: Store, feed_server: FeedServer) -> None:
    body = rss({"title": "x", "guid": "1"}, extra="<ttl>60</ttl>")
    url = feed_server.serve("/ttl", body)
    run(store, prepare(store, url), NOW)
    assert only(store).next_check_at == NOW + timedelta(minutes=60)
    feed_server.serve("/ttl", body, **{"Cache-Control": "max-age=7200"})
    run(store, only(store), NOW)
    assert only(store).next_check_at == NOW + timedelta(hours=2)


def test_an_unchanged_feed_is_logged_at_debug_only(
        store: Store, feed_server: FeedServer, caplog: pytest.LogCaptureFixture) -> None:
    """A round of 10,000 feeds is 10,000 304s: not 10,000 lines at INFO."""
    url = feed_server.serve("/f", rss({"title": "one", "guid": "1"}))
    feed = prepare(store, url)
    with caplog.at_level(logging.INFO, logger="monitor.poll"):
        run(store, feed, NOW)
        feed_server.serve("/f", "", status=304)
        run(store, only(store), NOW + timedelta(minutes=5))
    assert [r.getMessage() for r in caplog.records if r.name == "monitor.poll"] == [
        f"polled {url}: 200, 1 new items, 0 matches"]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="monitor.poll"):
        run(store, only(store), NOW + timedelta(minutes=10))
    assert [r.getMessage() for r in caplog.records if r.name == "monitor.poll"] == [
        f"polled {url}: 304, 0 new items, 0 matches"]


def test_an_adaptive_feed_is_next_checked_at_its_publishing_rate(
        store: Store, feed_server: FeedServer) -> None:
    """The entries' dates reach the schedule from wherever the feed was analysed."""
    dates = [format_datetime(NOW - timedelta(hours=2 * i), usegmt=True) for i in range(4)]
    url = feed_server.serve("/f", rss(*({"title": f"t{i}", "guid": str(i), "pubDate": d}
                                        for i, d in enumerate(dates))))
    feed = prepare(store, url)

    async def go() -> PollReport:
        async with Fetcher(timeout=5, max_body_bytes=100_000, concurrency=2, user_agent="t",
                           allow_private_networks=[ipaddress.ip_network("127.0.0.1/32")]) as f:
            options = {url: FeedOptions(adaptive=(timedelta(minutes=10), timedelta(hours=6)))}
            return await Poller(store, f, [], {}, options, jitter=lambda: 0.0).poll(feed, NOW)

    assert asyncio.run(go()).ok
    (polled,) = store.feeds()
    assert polled.next_check_at == NOW + timedelta(hours=2)  # not the 5 minutes configured

"""One poll of one feed, in process: whatever goes wrong is recorded, nothing raises."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from servers import FeedServer, rss
from sqlalchemy import text

from monitor.fetch import Fetcher
from monitor.match import Document, WatchlistMatch
from monitor.poll import Poller, PollReport
from monitor.store import FeedRow, Store, create, migrate

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)


class Exploding:
    """A watchlist whose matcher has a bug."""

    name = "libya"

    def match(self, doc: Document) -> WatchlistMatch | None:
        raise ZeroDivisionError("a bug")


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


def test_a_bug_in_processing_is_recorded_on_the_feed(store: Store, feed_server: FeedServer,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    url = feed_server.serve("/f", rss({"title": "Libya", "guid": "1"}))
    report = poll(store, prepare(store, url), [Exploding()])
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
    assert report.error.startswith("database: cannot read the items of feed")

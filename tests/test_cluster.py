"""Several workers on one PostgreSQL, beyond the store's contract (test_claims.py): a
channel's hourly limit holds across dispatchers, `run --once` processes share the
feeds, and a reload on one worker reaches the others."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from servers import Receiver
from sqlalchemy import Engine

from monitor.alerts import Dispatcher, Policy, load_channel
from monitor.store import FetchState, NewItem, NewMatch, Store, create, migrate

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
RULES = [{"index": 0, "rule": "Tripoli", "terms": []}]


def pg_store(pg_url: str) -> Store:
    engine = create(pg_url)
    migrate(engine)
    return Store(engine)


def seed_alerts(store: Store, channel: str, titles: list[str]) -> None:
    store.sync_feeds([("https://example.org/rss", "Wire", timedelta(minutes=5))], NOW)
    store.sync_watchlists({"libya": {}}, NOW)
    (feed,) = store.feeds()
    items = [NewItem(t, None, None, t, "", "", "", None,
                     (NewMatch("libya", RULES, t, [], (channel,)),))
             for t in titles]
    store.record_poll(feed.id, FetchState(NOW, NOW, True, 200), items)


def dispatcher(engine: Engine, url: str) -> Dispatcher:
    desk = load_channel("desk", url, policy=Policy(max_per_hour=2))
    return Dispatcher(Store(engine), [desk], retry_after=timedelta(minutes=1),
                      max_retry_after=timedelta(hours=1), jitter=lambda: 1.0)


def test_max_per_hour_holds_across_two_dispatchers(pg_url: str) -> None:
    """Worker A is sending the first of five alerts when worker B starts on the same
    channel: B must not spend the hour's budget of 2 again (it would send 2 more)."""
    store = pg_store(pg_url)
    seed_alerts(store, "desk", [f"Story {i} in Tripoli" for i in range(5)])
    other = create(pg_url)
    try:
        with Receiver() as rx:
            rx.hang = True
            url = f"json://127.0.0.1:{rx.port}/hook"
            a, b = dispatcher(store.engine, url), dispatcher(other, url)

            async def scenario() -> tuple[int, int]:
                first = asyncio.create_task(a.dispatch(NOW))
                assert await asyncio.to_thread(rx.arrived.wait, 30)  # A is mid-send
                rx.hang = False
                second = await asyncio.wait_for(b.dispatch(NOW), 60)
                rx.release.set()
                return (await asyncio.wait_for(first, 60)).sent, second.sent

            sent_a, sent_b = asyncio.run(scenario())
            titles = [json.loads(body)["title"] for body in rx.delivered()]
        assert len(titles) == 2, titles  # the limit, whichever worker sent them
        assert (sent_a, sent_b) == (2, 0)
        assert titles[0] == "[libya] Story 0 in Tripoli"
        assert "4 more matches" in titles[1]
        assert store.pending_alerts(None) == []  # nothing dropped: all in the summary
        # the hour is spent for every worker: B sends nothing later in the hour
        seed_alerts(store, "desk", ["Story 5 in Tripoli"])
        later = NOW + timedelta(minutes=30)
        assert asyncio.run(dispatcher(other, url).dispatch(later)).sent == 0
    finally:
        other.dispose()
        store.engine.dispose()

"""Where the catalog (feeds and watchlists edited at run time) meets the daemon: what the
database holds, not what the files said, is what the daemon reports and how it polls."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from conftest import Workspace

from monitor.catalog import Catalog
from monitor.config import load_config
from monitor.daemon import Jobs, build


def test_the_systemd_status_counts_the_databases_active_feeds(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write(feeds=["http://127.0.0.1:9/a.xml", "http://127.0.0.1:9/b.xml"])
    app = build(load_config(ws.config))
    try:
        catalog = Catalog(app.store, app.clock)
        catalog.remove_feed("http://127.0.0.1:9/a.xml", "alice")
        catalog.set_feed_active("http://127.0.0.1:9/b.xml", False, "alice")
        for name in ("c", "d", "e"):
            catalog.add_feed(f"http://127.0.0.1:9/{name}.xml", "alice")
        jobs = Jobs(app, app.fetcher())
        jobs.count_feeds()
        assert jobs.status().startswith("3 feeds, ")  # not the file's 2
    finally:
        app.store.engine.dispose()


def test_a_feed_added_in_the_console_follows_the_adaptive_setting(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.write(feeds=[], extra='adaptive = true\nadaptive_floor = "7m"\n'
                           'adaptive_ceiling = "3h"')
    app = build(load_config(ws.config))
    try:
        Catalog(app.store, app.clock).add_feed("http://127.0.0.1:9/new.xml", "alice")
        poller = app.poller(app.fetcher())
        options = poller.options.get("http://127.0.0.1:9/new.xml", poller.default_options)
        assert options.adaptive == (timedelta(minutes=7), timedelta(hours=3))
    finally:
        app.store.engine.dispose()


def test_the_channels_page_says_a_star_channel_takes_every_watchlist(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from fastapi.testclient import TestClient

    from monitor.store import Accounts
    from monitor.web.passwords import hash_password
    from monitor.web.wiring import console_for

    ws = Workspace(tmp_path)
    ws.write(feeds=[])
    with ws.config.open("a") as f:
        f.write('[[channel]]\nname = "desk"\nurl = "alertfile://all.log"\n'
                'watchlists = ["*"]\n')
    app = build(load_config(ws.config))
    try:
        Accounts(app.store.engine).add_user("ann", hash_password("ann's password"), "analyst",
                                            datetime.now(UTC))
        with TestClient(console_for(lambda: app)) as client:
            assert client.post("/api/session", json={"name": "ann", "password":
                                                     "ann's password"}).status_code == 200
            page = client.get("/channels").text
            assert "every watchlist" in page
            assert client.get("/api/channels").json()[0]["watchlists"] == ["*"]
    finally:
        app.store.engine.dispose()


def test_a_listing_piped_into_a_reader_that_leaves_early_ends_quietly(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    ws = Workspace(tmp_path)
    ws.write(feeds=[f"http://127.0.0.1:9/{i}.xml" for i in range(400)])  # > a pipe's 64 KiB
    assert ws.monitor("migrate").code == 0
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(ws.config),
                             "feeds", "list", "--json"], cwd=ws.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ))
    assert proc.stdout is not None
    proc.stdout.read(10)
    proc.stdout.close()  # as `| head -c 10` does
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err.decode() and "BrokenPipe" not in err.decode()


def test_a_feed_back_from_a_pause_or_a_removal_asks_its_websub_hub_again(
        tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from monitor.store import Store, create, migrate

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    engine = create(f"sqlite:///{tmp_path / 'monitor.db'}")
    migrate(engine)
    store = Store(engine)
    try:
        url = "http://127.0.0.1:9/feed.xml"
        catalog = Catalog(store, lambda: now)
        catalog.add_feed(url, "alice")
        (feed,) = store.feeds()
        sub = store.request_subscription(feed.id, "http://127.0.0.1:9/hub", url, now,
                                         now + timedelta(minutes=5))
        assert store.verify_subscription(sub.token, url, timedelta(days=7), now,
                                         now + timedelta(days=6))
        assert store.due_subscriptions(now + timedelta(hours=1)) == []
        for leave, back in ((lambda: catalog.set_feed_active(url, False, "alice"),
                             lambda: catalog.set_feed_active(url, True, "alice")),
                            (lambda: catalog.remove_feed(url, "alice"),
                             lambda: catalog.add_feed(url, "alice"))):
            leave()  # meanwhile, pushes are answered 410: the hub drops the subscription
            assert store.subscription(token=sub.token).feed_active is False  # type: ignore[union-attr]
            back()
            assert [s.feed_id for s in store.due_subscriptions(now)] == [feed.id]
            assert store.verify_subscription(sub.token, url, timedelta(days=7), now,
                                             now + timedelta(days=6)) is False  # active
            store.request_subscription(feed.id, "http://127.0.0.1:9/hub", url, now,
                                       now + timedelta(minutes=5))
            assert store.verify_subscription(sub.token, url, timedelta(days=7), now,
                                             now + timedelta(days=6))
    finally:
        engine.dispose()

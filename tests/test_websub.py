"""WebSub: a local hub on 127.0.0.1 receives the subscription, verifies it against the
daemon's callback and pushes content; signed content is stored and alerted at once,
without a poll; unsigned or badly signed content, and a verification for the wrong
topic, are refused. Time is injected where leases matter."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from conftest import Workspace
from servers import FeedServer, _Handler, _LocalServer, free_port, rss
from sqlalchemy import select

from monitor.config import load_config
from monitor.daemon import Jobs, build
from monitor.errors import ConfigError
from monitor.fetch import Fetcher
from monitor.metrics import Metrics
from monitor.poll import Poller
from monitor.sdnotify import Notifier
from monitor.service import Service
from monitor.store import Store, create, migrate
from monitor.store.models import Item, Match, Outbox
from monitor.web import WebServer
from monitor.websub import (
    Endpoint,
    Push,
    Subscriber,
    discover,
    link_header,
    renew_time,
    sign,
    signature_ok,
)

HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: no proxy
PUSHED = {"title": "Haftar's forces reach Tripoli airport", "guid": "pushed-1",
          "description": "Fighting at the airport of Tripoli, Libya."}
POLLED = {"title": "Weather in Oslo", "guid": "polled-1", "description": "Snow."}
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def request(method: str, url: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with HTTP.open(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Hub:
    """What the hub does once asked: verify (with ``topic`` if set, else the one asked
    for), then push ``content`` signed as ``signing`` says: "good", "bad" or "none"."""

    content: bytes = b""
    signing: str = "good"
    topic: str | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    verified: list[tuple[int, bytes]] = field(default_factory=list)
    pushed: list[int] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def act(self, form: dict[str, str]) -> None:
        challenge = "challenge-" + form["hub.callback"][-6:]
        query = urllib.parse.urlencode({
            "hub.mode": "subscribe", "hub.topic": self.topic or form["hub.topic"],
            "hub.challenge": challenge, "hub.lease_seconds": "3600"})
        status, body = request("GET", f"{form['hub.callback']}?{query}")
        self.verified.append((status, body))
        if self.content:
            headers = {"Content-Type": "application/rss+xml"}
            if self.signing == "good":
                headers["X-Hub-Signature"] = sign(form["hub.secret"], self.content, "sha384")
            elif self.signing == "bad":
                headers["X-Hub-Signature"] = sign("not the secret", self.content)
            self.pushed.append(request("POST", form["hub.callback"], self.content, headers)[0])
        self.done.set()


class HubServer(_LocalServer):
    """A WebSub hub on 127.0.0.1: answers a subscription request 202, then does what
    its ``Hub`` script says, from a thread of its own (as hubs verify later)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

        class Handler(_Handler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                form = dict(urllib.parse.parse_qsl(body.decode()))
                hub.requests.append(form)
                self.reply(202, {}, b"")
                threading.Thread(target=hub.act, args=(form,), daemon=True).start()

        super().__init__(Handler)

    def __enter__(self) -> HubServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def feed_with_hub(feed_server: FeedServer, hub_url: str, *items: dict[str, str]) -> str:
    topic = feed_server.url("/topic.xml")
    extra = (f'<atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="hub" href="{hub_url}"/>'
             f'<atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="self" href="{topic}"/>')
    return feed_server.serve("/feed.xml", rss(*items, extra=extra))


def run_daemon(workspace: Workspace, feed_url: str, hub: Hub, *, wait_push: bool,
               monkeypatch: pytest.MonkeyPatch) -> Store:
    """The daemon in this process (Service: web server, jobs, scheduler) until the hub
    has done its part and, with ``wait_push``, the pushed content is processed."""
    port = free_port()
    workspace.write(feeds=[feed_url], channels=[("desk", "alertfile://alerts.log")], extra=(
        f'[web]\nlisten = "127.0.0.1:{port}"\n'
        f'[websub]\nenabled = true\ncallback_base = "http://127.0.0.1:{port}"\n'))
    app = build(load_config(workspace.config))
    processed = threading.Event()
    original = Poller.push

    async def push(self: Poller, p: Push) -> object:
        try:
            return await original(self, p)
        finally:
            processed.set()

    monkeypatch.setattr(Poller, "push", push)
    service = Service(app, lambda: app, notifier=Notifier({}), metrics=Metrics())

    async def scenario() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(service.run(stop))
        assert await asyncio.to_thread(hub.done.wait, 30), "the hub never finished"
        if wait_push:
            assert await asyncio.to_thread(processed.wait, 30), "the push was not processed"
        stop.set()
        await running

    asyncio.run(scenario())
    return app.store


def test_a_signed_push_is_stored_and_alerted_at_once_without_a_poll(
        workspace: Workspace, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    hub = Hub(content=rss(PUSHED).encode())
    with HubServer(hub) as hub_server:
        feed_url = feed_with_hub(feed_server, hub_server.url("/hub"), POLLED)
        store = run_daemon(workspace, feed_url, hub, wait_push=True, monkeypatch=monkeypatch)
    (form,) = hub.requests
    assert form["hub.mode"] == "subscribe"
    assert form["hub.topic"] == feed_server.url("/topic.xml")  # rel="self", not the URL
    assert form["hub.lease_seconds"] == str(7 * 86400)
    assert form["hub.callback"].startswith("http://127.0.0.1:") and "/websub/" in form[
        "hub.callback"]
    assert hub.verified == [(200, ("challenge-" + form["hub.callback"][-6:]).encode())]
    assert hub.pushed == [202]
    assert len(feed_server.hits("/feed.xml")) == 1  # the first poll only
    with store._session() as s:
        titles = set(s.scalars(select(Item.title)))
        alerts = list(s.execute(select(Outbox.channel, Item.title)
                                .join(Match, Outbox.match_id == Match.id)
                                .join(Item, Match.item_id == Item.id)))
    assert titles == {POLLED["title"], PUSHED["title"]}
    assert alerts == [("desk", PUSHED["title"])]
    (sub,) = store.subscriptions()
    assert sub.state == "active" and sub.lease_seconds == 3600 and sub.last_push_at
    assert sub.secret == form["hub.secret"] and len(sub.secret) >= 32
    assert sub.secret not in caplog.text and sub.secret not in repr(sub)
    store.engine.dispose()


@pytest.mark.parametrize("signing", ["none", "bad"])
def test_unsigned_or_badly_signed_pushes_are_rejected_and_ignored(
        signing: str, workspace: Workspace, feed_server: FeedServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Hub(content=rss(PUSHED).encode(), signing=signing)
    with HubServer(hub) as hub_server:
        feed_url = feed_with_hub(feed_server, hub_server.url("/hub"), POLLED)
        store = run_daemon(workspace, feed_url, hub, wait_push=False, monkeypatch=monkeypatch)
    assert hub.verified[0][0] == 200
    assert hub.pushed == [403]
    with store._session() as s:
        assert set(s.scalars(select(Item.title))) == {POLLED["title"]}
        assert list(s.scalars(select(Outbox.id))) == []
    store.engine.dispose()


def test_a_verification_for_another_topic_is_refused(
        workspace: Workspace, feed_server: FeedServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Hub(content=rss(PUSHED).encode(), topic="http://127.0.0.1:9/other.xml")
    with HubServer(hub) as hub_server:
        feed_url = feed_with_hub(feed_server, hub_server.url("/hub"), POLLED)
        store = run_daemon(workspace, feed_url, hub, wait_push=False, monkeypatch=monkeypatch)
    (status, body), = hub.verified
    assert status == 404 and b"challenge" not in body
    assert hub.pushed == [403]  # signed with the right secret, but never verified
    (sub,) = store.subscriptions()
    assert sub.state == "pending" and sub.verified_at is None
    with store._session() as s:
        assert set(s.scalars(select(Item.title))) == {POLLED["title"]}
    store.engine.dispose()


# ------------------------------------------------------------------ leases, injected time


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    engine = create(f"sqlite:///{tmp_path / 'monitor.db'}")
    migrate(engine)
    s = Store(engine)
    s.sync_feeds([("http://127.0.0.1:9/feed.xml", None, timedelta(minutes=15))], NOW)
    yield s
    engine.dispose()


def test_subscriptions_are_renewed_before_the_lease_ends(store: Store) -> None:
    t = [NOW]
    pushes: list[Push] = []
    hub = Hub()
    port = free_port()
    endpoint = Endpoint(lambda: store, lambda p: pushes.append(p) is None, lambda: t[0],
                        lease=timedelta(hours=1), max_body_bytes=1000)
    web = WebServer("127.0.0.1", port, metrics=lambda _: (b"", "text/plain"),
                    health=lambda: None, websub=endpoint.handle)  # type: ignore[arg-type,return-value]
    (feed,) = store.feeds()

    async def scenario() -> None:
        async with Fetcher(timeout=5, max_body_bytes=1000, concurrency=2, user_agent="t",
                           allow_private_networks=[ip_network("127.0.0.1/32")]) as fetcher:
            sub = Subscriber(store, fetcher, callback_base=f"http://127.0.0.1:{port}",
                             lease=timedelta(hours=1))
            with HubServer(hub) as hub_server:
                advert = discover(hub_server.url("/hub"), None, {}, feed.url)
                await sub.consider(feed.id, advert, t[0])
                assert await asyncio.to_thread(hub.done.wait, 30)
                hub.done.clear()
                assert await sub.renew_due(t[0] + timedelta(minutes=50)) == 0
                await sub.consider(feed.id, advert, t[0])  # known: not asked again
                assert len(hub.requests) == 1
                t[0] = NOW + timedelta(minutes=55)  # the lease (3600 s) ends at 13:00
                assert await sub.renew_due(t[0]) == 1
                assert await asyncio.to_thread(hub.done.wait, 30)

    try:
        asyncio.run(scenario())
    finally:
        web.close()
    first, second = hub.requests
    assert first["hub.callback"] == second["hub.callback"]
    assert first["hub.secret"] == second["hub.secret"]
    assert [s for s, _ in hub.verified] == [200, 200]
    (row,) = store.subscriptions()
    assert row.state == "active" and row.expires_at == NOW + timedelta(minutes=115)
    assert row.renew_at == renew_time(NOW + timedelta(minutes=55), timedelta(hours=1))


def test_a_hub_that_refuses_is_asked_again_later(store: Store) -> None:
    class Refusing:
        async def post_form(self, url: str, form: object) -> tuple[int | None, str | None]:
            return 400, "HTTP 400 Bad Request: no"

    (feed,) = store.feeds()
    sub = Subscriber(store, Refusing(), callback_base="http://127.0.0.1:9", lease=timedelta(days=1))
    advert = discover("http://127.0.0.1:9/hub", None, {}, feed.url)
    assert advert is not None
    assert asyncio.run(sub.subscribe(feed.id, advert, NOW)) is False
    (row,) = store.subscriptions()
    assert row.state == "failed" and "400" in (row.last_error or "")
    assert store.due_subscriptions(NOW + timedelta(minutes=59)) == []
    assert [r.feed_id for r in store.due_subscriptions(NOW + timedelta(hours=1))] == [feed.id]


def test_a_push_arriving_as_the_jobs_stop_is_refused_or_processed_never_dropped(
        workspace: Workspace, feed_server: FeedServer) -> None:
    """A push the web thread hands over while the jobs stop (a reload, a shutdown) is
    either refused (503: the hub sends it again) or processed before ``stop`` returns:
    never accepted (202) and then left to jobs that have stopped."""
    port = free_port()
    feed_url = feed_server.serve("/feed.xml", rss(POLLED))
    workspace.write(feeds=[feed_url], channels=[("desk", "alertfile://alerts.log")], extra=(
        f'[web]\nlisten = "127.0.0.1:{port}"\n'
        f'[websub]\nenabled = true\ncallback_base = "http://127.0.0.1:{port}"\n'))
    app = build(load_config(workspace.config))
    (feed,) = app.store.feeds()
    push = Push(feed.id, feed.url, rss(PUSHED).encode(),
                {"content-type": "application/rss+xml"}, NOW)

    async def scenario() -> tuple[list[bool], int]:
        loop = asyncio.get_running_loop()
        queued = threading.Event()
        real = loop.call_soon_threadsafe

        def spy(*args: Any, **kwargs: Any) -> Any:
            handle = real(*args, **kwargs)
            queued.set()
            return handle

        async with app.fetcher() as fetcher:
            jobs = Jobs(app, fetcher)
            jobs.start()
            loop.call_soon_threadsafe = spy  # type: ignore[method-assign]
            taken: list[bool] = []
            hub = threading.Thread(target=lambda: taken.append(jobs.deliver_push(push)))
            hub.start()
            assert queued.wait(30), "the push was never handed to the loop"
            loop.call_soon_threadsafe = real  # type: ignore[method-assign]
            await jobs.stop(30)  # the stop begins before the loop takes the push
            with app.store._session() as s:
                stored = len(list(s.scalars(select(Item).where(
                    Item.title == PUSHED["title"]))))
            await asyncio.to_thread(hub.join, 30)
            return taken, stored

    taken, stored = asyncio.run(scenario())
    assert taken == [False] or (taken == [True] and stored == 1), (taken, stored)
    app.store.engine.dispose()


@pytest.mark.parametrize("hub", ["http://[::1", "http://[zz]/hub", "http://127.0.0.1:99999999/hub"])
def test_a_feed_advertising_a_malformed_hub_is_polled_all_the_same(
        hub: str, tmp_path: Path, feed_server: FeedServer) -> None:
    """The hub a feed advertises is untrusted input: a malformed one is not subscribed
    to, and the poll (stored) reports as usual instead of raising, which would abort a
    whole ``run --once`` before its alerts are sent."""
    engine = create(f"sqlite:///{tmp_path / 'monitor.db'}")
    migrate(engine)
    store = Store(engine)
    extra = f'<atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="hub" href="{hub}"/>'
    url = feed_server.serve("/feed.xml", rss(POLLED, extra=extra))
    store.sync_feeds([(url, None, timedelta(minutes=15))], NOW)
    (feed,) = store.feeds()

    async def scenario() -> object:
        async with Fetcher(timeout=5, max_body_bytes=100_000, concurrency=2, user_agent="t",
                           allow_private_networks=[ip_network("127.0.0.1/32")]) as fetcher:
            sub = Subscriber(store, fetcher, callback_base="http://127.0.0.1:9",
                             lease=timedelta(hours=1))
            return await Poller(store, fetcher, [], {}, websub=sub).poll(feed, NOW)

    report = asyncio.run(scenario())
    assert report.ok and report.counts.new_items == 1, report  # type: ignore[attr-defined]
    assert all(s.state != "active" for s in store.subscriptions())
    engine.dispose()


def test_websub_needs_a_callback_base_and_the_web_endpoint(workspace: Workspace) -> None:
    workspace.write(feeds=[], extra="[websub]\nenabled = true\n")
    with pytest.raises(ConfigError) as err:
        load_config(workspace.config)
    assert "websub.enabled needs websub.callback_base" in str(err.value)


# ------------------------------------------------------------------ the pure parts


def test_signatures_of_every_method_the_recommendation_names() -> None:
    body = b"<rss/>"
    for method in ("sha1", "sha256", "sha384", "sha512"):
        assert signature_ok("s3cret", body, sign("s3cret", body, method))
        assert not signature_ok("other", body, sign("s3cret", body, method))
        assert not signature_ok("s3cret", body + b" ", sign("s3cret", body, method))
    assert not signature_ok("s3cret", body, None)
    assert not signature_ok("s3cret", body, "md5=" + "0" * 32)
    assert not signature_ok("s3cret", body, "sha256=")


def test_the_link_header_comes_first_and_relative_links_resolve() -> None:
    assert link_header('<https://hub.example/>; rel="hub", </feed>; rel="self alternate"') == {
        "hub": "https://hub.example/", "self": "/feed", "alternate": "/feed"}
    headers = {"Link": '<https://hub.example/>; rel="hub", <https://ex.org/self>; rel=self'}
    advert = discover("https://other.example/", "/mine", headers, "https://ex.org/rss")
    assert advert is not None and (advert.hub, advert.topic) == ("https://hub.example/",
                                                                 "https://ex.org/self")
    advert = discover("/hub", None, {}, "https://ex.org/rss")
    assert advert is not None and (advert.hub, advert.topic) == ("https://ex.org/hub",
                                                                 "https://ex.org/rss")
    assert discover(None, "https://ex.org/self", {}, "https://ex.org/rss") is None
    assert discover("ftp://hub/", None, {}, "https://ex.org/rss") is None


def test_the_endpoint_answers_only_what_it_asked_for(store: Store) -> None:
    (feed,) = store.feeds()
    row = store.request_subscription(feed.id, "http://hub/", "http://t/", NOW, NOW)
    endpoint = Endpoint(lambda: store, lambda p: True, lambda: NOW, lease=timedelta(days=1),
                        max_body_bytes=10)
    path = f"/websub/{row.token}"
    good = "hub.mode=subscribe&hub.topic=http%3A%2F%2Ft%2F&hub.challenge=abc"
    assert endpoint.handle("GET", "/websub/nope", good, {}, b"")[0] == 404
    assert endpoint.handle("GET", path, good.replace("subscribe", "unsubscribe"), {}, b"")[0] == 404
    assert endpoint.handle("GET", path, good, {}, b"")[::2] == (200, b"abc")
    assert endpoint.handle("GET", path, good, {}, b"")[0] == 404  # no longer pending
    signed = {"X-Hub-Signature": sign(row.secret, b"x" * 11)}
    assert endpoint.handle("POST", path, "", signed, b"x" * 11)[0] == 413
    assert endpoint.handle("PUT", path, "", {}, b"")[0] == 405
    endpoint.enabled = lambda: False  # turned off by a reload
    assert endpoint.handle("POST", path, "", signed, b"x")[0] == 404


def test_a_lease_too_long_for_a_timedelta_is_capped_not_a_crash(store: Store) -> None:
    (feed,) = store.feeds()
    row = store.request_subscription(feed.id, "http://hub/", "http://t/", NOW, NOW)
    endpoint = Endpoint(lambda: store, lambda p: True, lambda: NOW, lease=timedelta(days=1),
                        max_body_bytes=10)
    query = ("hub.mode=subscribe&hub.topic=http%3A%2F%2Ft%2F&hub.challenge=abc"
             "&hub.lease_seconds=" + "9" * 20)
    assert endpoint.handle("GET", f"/websub/{row.token}", query, {}, b"")[::2] == (200, b"abc")
    (sub,) = store.subscriptions()
    assert sub.lease_seconds == 365 * 86400


def test_a_push_taken_is_acknowledged_even_if_its_time_cannot_be_recorded(
        store: Store) -> None:
    """Once the daemon has taken a push, the hub is told 202 whatever happens to the
    bookkeeping after (``last_push_at``): an error there would make it push again."""
    from monitor.errors import StoreError

    (feed,) = store.feeds()
    row = store.request_subscription(feed.id, "http://hub/", "http://t/", NOW, NOW)
    store.verify_subscription(row.token, "http://t/", timedelta(days=1), NOW, NOW)

    class Flaky:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def subscription_pushed(self, token: str, now: datetime) -> None:
            raise StoreError("cannot record a WebSub push: OperationalError")

    taken: list[Push] = []
    endpoint = Endpoint(lambda: Flaky(), lambda p: taken.append(p) is None,  # type: ignore[arg-type,return-value]
                        lambda: NOW, lease=timedelta(days=1), max_body_bytes=100)
    signed = {"X-Hub-Signature": sign(row.secret, b"<rss/>")}
    assert endpoint.handle("POST", f"/websub/{row.token}", "", signed, b"<rss/>")[0] == 202
    assert len(taken) == 1

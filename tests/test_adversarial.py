"""The adversarial corpus (tests/data/adversarial/) through the real fetcher, the parse
workers, the poller and SQLite, against a real server on 127.0.0.1.

For every case: the poll ends (within the fetch deadline plus the parse deadline) with
the outcome the case expects, recorded on its feed; only the case's own URL (and its
declared redirect targets) is requested; no stored field and no rendered alert holds
what must never appear (an expanded entity, a local file); and every alert rendered
from it, in every format, is inert.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from corpus import load_cases, register
from servers import FeedServer
from sqlalchemy import text

from monitor.alerts import renderer
from monitor.config import load_watchlists
from monitor.fetch import Fetcher
from monitor.match import compile_watchlist
from monitor.poll import Poller, PollReport
from monitor.store import PendingAlert, Store, create, migrate
from monitor.workers import ParseWorkers

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
FETCH_TIMEOUT = 3.0
PARSE_TIMEOUT = 15.0
CHANNELS = ("email", "slack", "text")
cases = load_cases()


def params() -> list[Any]:
    return [pytest.param(c, id=c.name,
                         marks=[pytest.mark.adversarial_heavy] if c.heavy else [])
            for c in cases.CASES]


@dataclass
class Corpus:
    server: FeedServer
    runner: asyncio.Runner
    store: Store
    poller: Poller
    urls: dict[str, str]

    def poll(self, name: str) -> PollReport:
        feed = next(f for f in self.store.feeds() if f.url == self.urls[name])
        return self.runner.run(asyncio.wait_for(self.poller.poll(feed, NOW),
                                                FETCH_TIMEOUT + PARSE_TIMEOUT + 30))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    engine = create(f"sqlite:///{tmp_path_factory.mktemp('corpus') / 'm.db'}")
    migrate(engine)
    store = Store(engine)
    specs = load_watchlists(ROOT / "config" / "watchlists.yaml")
    with FeedServer() as server, asyncio.Runner() as runner:
        urls = {c.name: register(server, c) for c in cases.CASES}
        store.sync_feeds([(u, None, timedelta(minutes=5)) for u in urls.values()], NOW)
        store.sync_watchlists({s.name: {} for s in specs}, NOW)
        stack = contextlib.AsyncExitStack()

        async def enter() -> Poller:
            fetcher = await stack.enter_async_context(Fetcher(
                timeout=FETCH_TIMEOUT, max_body_bytes=10_000_000, concurrency=4,
                user_agent="monitor-corpus/1",
                allow_private_networks=[ipaddress.ip_network("127.0.0.1/32")]))
            workers = await stack.enter_async_context(ParseWorkers(
                timeout=PARSE_TIMEOUT, max_memory_bytes=1_073_741_824, workers=2))
            return Poller(store, fetcher, [compile_watchlist(s) for s in specs],
                          {"libya": CHANNELS}, jitter=lambda: 0.0, analyse=workers.analyse)

        poller = runner.run(enter())
        try:
            yield Corpus(server, runner, store, poller, urls)
        finally:
            runner.run(stack.aclose())
            engine.dispose()


def stored(store: Store, url: str) -> list[dict[str, Any]]:
    with store.engine.connect() as c:
        rows = c.execute(text(
            "SELECT i.guid, i.link, i.title, i.summary, i.content, i.author FROM items i "
            "JOIN feeds f ON f.id = i.feed_id WHERE f.url = :u"), {"u": url})
        return [dict(r._mapping) for r in rows]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


TEMPLATE_TAGS = {"html", "head", "body", "meta", "title", "p", "br", "a", "b", "strong",
                 "em", "i", "h1", "h2", "h3", "ul", "li", "div", "span", "small", "hr", "mark",
                 "table", "tr", "td", "th", "blockquote"}


def assert_inert(alert: PendingAlert) -> None:
    """The alert in every format: subject one line; HTML with the templates' own tags
    only, no handler, no link but http(s); Slack with no mention, link or code that feed
    text formed; plain text free of terminal escapes."""
    for fmt in ("text", "html", "slack"):
        msg = renderer(fmt).render([alert])  # type: ignore[arg-type]
        assert not re.search(r"[\r\n\x00-\x08\x0b-\x1f\x7f]", msg.title), msg.title[:200]
        assert "\x1b" not in msg.body and "\x00" not in msg.body
        if fmt == "html":
            parser = _Tags()
            parser.feed(msg.body)
            for tag, attrs in parser.tags:
                assert tag in TEMPLATE_TAGS, f"<{tag}> in the e-mail"
                assert not [a for a in attrs if a.lower().startswith("on")], (tag, attrs)
                if "href" in attrs:
                    assert re.match(r"https?://", attrs["href"]), attrs["href"]
        if fmt == "slack":
            unescaped = re.sub(r"\\[\\<>\[\]`]", "", msg.body)
            assert not re.search(r"<[!@#]|<https?://[^>]*\|", unescaped), msg.body[:500]


@pytest.mark.parametrize("case", params())
def test_corpus_case(corpus: Corpus, case: Any) -> None:
    before = len(corpus.server.requests)
    report = corpus.poll(case.name)
    url = corpus.urls[case.name]

    # the outcome, recorded on the feed
    (feed,) = [f for f in corpus.store.feeds() if f.url == url]
    if case.error is not None:
        assert not report.ok and report.error is not None
        assert case.error in report.error, report.error
        assert feed.last_error == report.error and feed.consecutive_failures == 1
    elif case.entries is not None:
        assert report.ok, report.error
        assert report.counts.new_items == case.entries
        assert feed.last_error is None
    else:  # either outcome is acceptable; it must be one or the other, and recorded
        assert report.ok or (report.error and feed.last_error == report.error)
    if case.matches is not None:
        assert report.counts.matches == case.matches

    # nothing requested but the feed URL and its declared redirects
    paths = {r.path for r in corpus.server.requests[before:]}
    assert paths <= {f"/{case.name}", *case.also_requested}, paths

    # nothing that must never appear, in any stored field
    rows = stored(corpus.store, url)
    blob = "\n".join(str(v) for r in rows for v in r.values())
    for bad in case.never:
        assert bad not in blob
    assert "\x00" not in blob and "\x1b" not in blob
    assert not re.search(r"[\ud800-\udfff]", blob)

    # every alert from it is inert in every format (a sample of a large feed)
    alerts = [a for a in corpus.store.pending_alerts(None) if a.feed_url == url][:50]
    for alert in alerts:
        assert_inert(alert)
        rendered = "".join(renderer(f).render([alert]).body  # type: ignore[arg-type]
                           for f in ("text", "html", "slack"))
        for bad in case.never:
            assert bad not in rendered


def test_the_corpus_is_large_enough_and_every_case_says_what_it_expects() -> None:
    assert len(cases.CASES) >= 60
    assert len({c.name for c in cases.CASES}) == len(cases.CASES)
    files = {p.name for p in Path(cases.HERE).iterdir()} - {"cases.py", "__pycache__"}
    named = {c.body for c in cases.CASES if isinstance(c.body, str)}
    assert files == named, files ^ named

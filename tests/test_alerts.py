from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from servers import SmtpServer, free_port

from monitor.alerts import Dispatcher, load_channel, render
from monitor.errors import AlertError
from monitor.store import FetchState, NewItem, NewMatch, PendingAlert, Store, create, migrate

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)


def alert(**over: object) -> PendingAlert:
    fields: dict[str, object] = dict(
        id=1, channel="email", attempts=0, watchlist="libya",
        rules=[{"index": 1, "rule": "Tripoli AND NOT Lebanon",
                "terms": [{"field": "title", "start": 0, "end": 7, "text": "Tripoli"}]}],
        snippet="Fighting in Tripoli today", marks=[[12, 19]],
        title="Fighting in Tripoli", link="https://example.org/1",
        published_at=datetime(2020, 1, 19, 9, 30, tzinfo=UTC), feed_title="Wire",
        feed_url="https://example.org/rss", created_at=NOW, next_attempt_at=NOW,
    )
    fields.update(over)
    return PendingAlert(**fields)  # type: ignore[arg-type]


def test_the_message_says_why_it_fired() -> None:
    msg = render(alert())
    assert msg.title == "[libya] Fighting in Tripoli"
    assert msg.body.splitlines() == [
        "Fighting in Tripoli", "",
        "Watchlist: libya",
        "Rule: Tripoli AND NOT Lebanon",
        "Matched: Tripoli",
        "Feed: Wire <https://example.org/rss>",
        "Published: 2020-01-19 09:30 UTC",
        "Link: https://example.org/1",
        "",
        "Fighting in **Tripoli** today",
    ]


def test_feed_text_cannot_inject_lines_into_the_subject() -> None:
    msg = render(alert(title="Tripoli\r\nBcc: everyone@example.org"))
    assert "\n" not in msg.title and "\r" not in msg.title
    assert msg.title == "[libya] Tripoli Bcc: everyone@example.org"


def test_a_url_apprise_does_not_know_is_refused_without_echoing_it() -> None:
    with pytest.raises(AlertError) as exc:
        load_channel("x", "nosuchservice://user:hunter2@host")
    assert "hunter2" not in str(exc.value) and "nosuchservice" in str(exc.value)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    engine = create(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    s = Store(engine)
    s.sync_feeds([("https://example.org/rss", "Wire", timedelta(minutes=5))], NOW)
    s.sync_watchlists({"libya": {}}, NOW)
    (feed,) = s.feeds()
    match = NewMatch("libya", alert().rules, "", [], ("dead", "file"))
    s.record_poll(feed.id, FetchState(NOW, NOW, True, 200),
                  [NewItem("k", None, None, "Fighting in Tripoli", "", "", "", None, (match,))])
    return s


def test_a_dead_channel_backs_off_and_does_not_hold_up_the_others(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    dead_url = SmtpServer(free_port()).url()

    def dispatcher() -> Dispatcher:
        # fresh channels each time: apprise paces messages to one service by seconds
        channels = [load_channel("dead", dead_url), load_channel("file", "alertfile://out/alerts.log")]
        return Dispatcher(store, channels, retry_after=timedelta(minutes=1),
                          max_retry_after=timedelta(minutes=3), jitter=lambda: 1.0)

    counts = asyncio.run(dispatcher().dispatch(NOW))
    assert (counts.sent, counts.failed) == (1, 1)
    assert "=== [libya] Fighting in Tripoli" in (tmp_path / "out/alerts.log").read_text()

    t = NOW
    for wait in (1, 2, 3, 3):  # minutes: doubling, capped at max_retry_after
        (row,) = store.pending_alerts(None)
        assert row.next_attempt_at == t + timedelta(minutes=wait)
        assert store.pending_alerts(row.next_attempt_at - timedelta(seconds=1)) == []
        t = row.next_attempt_at
        assert asyncio.run(dispatcher().dispatch(t)).failed == 1
    (row,) = store.pending_alerts(None)
    assert row.attempts == 5 and "did not accept the alert" in (row.last_error or "")
    assert (tmp_path / "out/alerts.log").read_text().count("===") == 1


def test_delivery_through_real_smtp(store: Store, smtp_server: SmtpServer) -> None:
    channel = load_channel("dead", smtp_server.url())  # the row's channel is "dead"; now alive
    d = Dispatcher(store, [channel], retry_after=timedelta(minutes=1),
                   max_retry_after=timedelta(hours=1))
    assert asyncio.run(d.dispatch(NOW)).sent == 1
    assert asyncio.run(d.dispatch(NOW)).sent == 0
    assert [m["Subject"] for m in smtp_server.messages] == ["[libya] Fighting in Tripoli"]


def test_only_web_links_are_linked() -> None:
    for link in ("javascript:alert(1)", "data:text/html,<b>x</b>", "https://ok.example/\nBcc: x"):
        html = render(alert(link=link), "html").body
        assert "href" not in html and "Link:" not in render(alert(link=link)).body
    assert 'href="https://example.org/1"' in render(alert(), "html").body


def test_an_absolute_alertfile_path_is_refused_not_silently_made_relative() -> None:
    with pytest.raises(AlertError, match="takes a path relative to the working directory"):
        load_channel("x", "alertfile:///var/log/monitor/alerts.log")

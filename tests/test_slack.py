"""apprise's real Slack plugin, aimed at a receiver on 127.0.0.1 (its webhook base URL
overridden on the service object): the payload it posts, failures and recovery, and
hostile feed text arriving inert."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers import Receiver, Reply
from test_delivery import make_store

from monitor.alerts import Channel, Dispatcher, load_channel
from monitor.store import Store

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
SLACK_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7?footer=no&image=no"
HOSTILE = "Tripoli <!channel> <script>alert(1)</script>\r\nBcc: all@example.org [x](https://evil.example)"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def slack_channel(rx: Receiver) -> Channel:
    channel = load_channel("slack", SLACK_URL)
    for service in channel.notifier:
        service.webhook_url = rx.url("/services")  # instead of https://hooks.slack.com
        service.request_rate_per_sec = 0  # apprise's pacing would sleep 1.2 s
    return channel


def dispatcher(store: Store, channel: Channel) -> Dispatcher:
    return Dispatcher(store, [channel], retry_after=timedelta(minutes=1),
                      max_retry_after=timedelta(hours=1), jitter=lambda: 1.0)


def payloads(rx: Receiver) -> list[dict[str, Any]]:
    return [json.loads(body) for body in rx.delivered()]


def test_the_slack_payload_says_why_in_mrkdwn(tmp_path: Path, receiver: Receiver) -> None:
    store = make_store(tmp_path / "m.db", ("slack",), ["Fighting in Tripoli & Misrata"])
    assert asyncio.run(dispatcher(store, slack_channel(receiver)).dispatch(NOW)).sent == 1
    (path, _), = receiver.posts
    assert path == "/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
    (payload,) = payloads(receiver)
    assert payload["mrkdwn"] is True
    (attachment,) = payload["attachments"]
    assert attachment["title"] == "[libya] Fighting in Tripoli &amp; Misrata"
    text = attachment["text"]
    assert text.startswith("*Fighting in Tripoli &amp; Misrata*\n")  # bold in mrkdwn
    assert "Fighting in *Tripoli* &amp; Misrata" in text  # the matched word, bold
    assert "Watchlist: libya" in text and "Rule: Tripoli" in text
    assert "Feed: Wire" in text and "https://example.org/0" in text


def test_hostile_feed_text_arrives_inert(tmp_path: Path, receiver: Receiver) -> None:
    store = make_store(tmp_path / "m.db", ("slack",), [HOSTILE])
    assert asyncio.run(dispatcher(store, slack_channel(receiver)).dispatch(NOW)).sent == 1
    (payload,) = payloads(receiver)
    (attachment,) = payload["attachments"]
    raw = json.dumps(payload)
    for live in ("<!channel>", "<script>", "<https://evil.example", "|x>"):
        assert live not in raw
    assert "\n" not in attachment["title"] and "\r" not in attachment["title"]
    assert attachment["title"].startswith("[libya] Tripoli &lt;!channel&gt;")
    assert "&lt;!channel&gt;" in attachment["text"]
    assert "&lt;script&gt;" in attachment["text"]


def test_a_failing_receiver_that_recovers_gets_each_alert_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    store = make_store(tmp_path / "m.db", ("slack",), ["Fighting in Tripoli",
                                                      "Clashes near Tripoli"])
    receiver.script = [Reply(500, b"oops"), Reply(429, b"rate_limited", {"Retry-After": "300"})]
    d = dispatcher(store, slack_channel(receiver))
    first = asyncio.run(d.dispatch(NOW))
    assert (first.sent, first.failed) == (0, 1)  # 500: the channel's other alert waits
    (row, _) = store.pending_alerts(None)
    assert row.next_attempt_at == NOW + timedelta(minutes=1)
    second = asyncio.run(d.dispatch(row.next_attempt_at))
    assert (second.sent, second.failed) == (0, 1)  # 429
    (row, other) = store.pending_alerts(None)
    # the 429's Retry-After (5 min from the second attempt), not our backoff (2 min)
    assert row.next_attempt_at == NOW + timedelta(minutes=1 + 5)
    assert other.next_attempt_at == row.next_attempt_at  # the whole channel waits
    assert [e["error"][:7] for e in row.errors] == ["FAILURE", "FAILURE"]
    assert "Retry-After: 300 s" in row.errors[-1]["error"]
    third = asyncio.run(d.dispatch(row.next_attempt_at))
    assert (third.sent, third.failed) == (2, 0)
    assert asyncio.run(d.dispatch(NOW + timedelta(hours=2), retry_now=True)).sent == 0
    assert receiver.answered == [500, 429, 200, 200]
    titles = [p["attachments"][0]["title"] for p in payloads(receiver)]
    assert titles == ["[libya] Fighting in Tripoli", "[libya] Clashes near Tripoli"]


def test_a_429_with_retry_after_holds_the_channel_until_then(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Nothing goes to the channel before its Retry-After: not its other alerts, not a
    retry asked for at once (``run --once``), not another process's dispatcher."""
    store = make_store(tmp_path / "m.db", ("slack",), ["Fighting in Tripoli",
                                                      "Clashes near Tripoli"])
    receiver.script = [Reply(429, b"rate_limited", {"Retry-After": "600"})]
    d = dispatcher(store, slack_channel(receiver))
    assert asyncio.run(d.dispatch(NOW)).failed == 1
    until = NOW + timedelta(minutes=10)
    assert [r.next_attempt_at for r in store.pending_alerts(None)] == [until, until]
    assert store.channel_holds(NOW) == {"slack": until}
    for t in (NOW + timedelta(minutes=2), until - timedelta(seconds=1)):
        assert asyncio.run(d.dispatch(t, retry_now=True)).sent == 0
        fresh = dispatcher(store, slack_channel(receiver))  # as a restart would
        assert asyncio.run(fresh.dispatch(t, retry_now=True)).sent == 0
    assert len(receiver.posts) == 1
    assert asyncio.run(d.dispatch(until)).sent == 2
    assert receiver.answered == [429, 200, 200]
    assert store.channel_holds(until) == {}


def test_reading_retry_after_changes_nothing_outside_our_channels(
    tmp_path: Path, receiver: Receiver
) -> None:
    import apprise
    import apprise.plugins.slack
    import requests

    store = make_store(tmp_path / "m.db", ("slack",), ["Fighting in Tripoli"])
    channel = slack_channel(receiver)
    assert asyncio.run(dispatcher(store, channel).dispatch(NOW)).sent == 1
    assert apprise.plugins.slack.requests is requests
    assert requests.request.__module__ == "requests.api"
    plain = apprise.Apprise()
    assert plain.add(SLACK_URL)
    (service,) = plain
    assert type(service) is apprise.plugins.slack.NotifySlack
    (ours,) = channel.notifier
    assert isinstance(ours, apprise.plugins.slack.NotifySlack)
    assert type(ours) is not apprise.plugins.slack.NotifySlack

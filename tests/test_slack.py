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
    receiver.script = [Reply(500, b"oops"), Reply(429, b"rate_limited", {"Retry-After": "1"})]
    d = dispatcher(store, slack_channel(receiver))
    first = asyncio.run(d.dispatch(NOW))
    assert (first.sent, first.failed) == (0, 1)  # 500: the channel's other alert waits
    (row, _) = store.pending_alerts(None)
    assert row.next_attempt_at == NOW + timedelta(minutes=1)
    second = asyncio.run(d.dispatch(row.next_attempt_at))
    assert (second.sent, second.failed) == (0, 1)  # 429
    (row, _) = store.pending_alerts(None)
    # apprise does not pass Retry-After on: our backoff (1 min, doubled) applies
    assert row.next_attempt_at == NOW + timedelta(minutes=3)
    assert [e["error"][:7] for e in row.errors] == ["FAILURE", "FAILURE"]
    third = asyncio.run(d.dispatch(row.next_attempt_at))
    assert (third.sent, third.failed) == (2, 0)
    assert asyncio.run(d.dispatch(NOW + timedelta(hours=2), retry_now=True)).sent == 0
    assert receiver.answered == [500, 429, 200, 200]
    titles = [p["attachments"][0]["title"] for p in payloads(receiver)]
    assert titles == ["[libya] Fighting in Tripoli", "[libya] Clashes near Tripoli"]

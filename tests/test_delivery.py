"""Delivery guarantees: leases, dead letters, a kill between send and mark, timeouts and
a slow channel beside a fast one. Real SQLite, real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from servers import Receiver, Reply, SmtpServer, free_port

from monitor.alerts import Dispatcher, load_channel
from monitor.store import FetchState, NewItem, NewMatch, Store, create, migrate

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
RULES = [{"index": 0, "rule": "Tripoli", "terms": [
    {"field": "title", "start": 12, "end": 19, "text": "Tripoli"}]}]


def make_store(db: Path, channels: tuple[str, ...], titles: list[str],
               at: datetime = NOW) -> Store:
    engine = create(f"sqlite:///{db}")
    migrate(engine)
    s = Store(engine)
    s.sync_feeds([("https://example.org/rss", "Wire", timedelta(minutes=5))], NOW)
    s.sync_watchlists({"libya": {}}, NOW)
    (feed,) = s.feeds()
    items = [NewItem(f"k{i}", None, f"https://example.org/{i}", t, "", "", "", None,
                     (NewMatch("libya", RULES, t, [[12, 19]], channels),))
             for i, t in enumerate(titles)]
    s.record_poll(feed.id, FetchState(at, at, True, 200), items)
    return s


def dispatcher(store: Store, *channels: object, max_attempts: int = 10) -> Dispatcher:
    return Dispatcher(store, channels, retry_after=timedelta(minutes=1),  # type: ignore[arg-type]
                      max_retry_after=timedelta(minutes=10), max_attempts=max_attempts,
                      jitter=lambda: 1.0)


def test_after_max_attempts_an_alert_is_a_dead_letter_with_every_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = make_store(tmp_path / "m.db", ("desk",), ["Fighting in Tripoli"])
    dead_url = SmtpServer(free_port()).url()
    t = NOW
    for _ in range(3):
        d = dispatcher(store, load_channel("desk", dead_url), max_attempts=3)
        counts = asyncio.run(d.dispatch(t, retry_now=True))
        assert counts.failed == 1
        t += timedelta(minutes=30)
    assert counts.dead == 1
    assert store.pending_alerts(None) == []
    (dead,) = store.alerts(["dead"])
    assert dead.attempts == 3 and len(dead.errors) == 3
    assert all("did not accept the alert" in e["error"] for e in dead.errors)
    # nothing more is tried, even when asked to retry everything pending
    d = dispatcher(store, load_channel("desk", "alertfile://out.log"))
    assert asyncio.run(d.dispatch(t, retry_now=True)).sent == 0

    assert store.retry(None, t) == 1
    assert asyncio.run(d.dispatch(t)).sent == 1
    assert (tmp_path / "out.log").read_text().count("=== [libya] Fighting in Tripoli") == 1
    assert store.alerts(["dead", "pending"]) == []
    (sent,) = store.alerts(["sent"])
    assert len(sent.errors) == 3  # the history stays


def test_a_claimed_row_is_not_taken_twice_until_its_lease_expires(tmp_path: Path) -> None:
    store = make_store(tmp_path / "m.db", ("desk",), ["Fighting in Tripoli"])
    (row,) = store.pending_alerts(NOW)
    lease = NOW + timedelta(minutes=2)
    assert store.claim([row.id], NOW, lease) == [row.id]
    assert store.claim([row.id], NOW, lease) == []
    assert store.pending_alerts(NOW + timedelta(minutes=1)) == []
    (again,) = store.pending_alerts(lease)  # the claimant died: due again
    assert again.status == "sending" and again.attempts == 1
    assert store.claim([row.id], lease, lease + timedelta(minutes=2)) == [row.id]


KILLER = textwrap.dedent('''
    import asyncio, os, signal, sys
    from datetime import datetime, timedelta
    from monitor.alerts import Dispatcher, load_channel
    from monitor.store import Store, create

    store = Store(create(sys.argv[1]))
    now = datetime.fromisoformat(sys.argv[2])

    def killed(*args, **kwargs):  # the process dies after apprise delivered
        os.kill(os.getpid(), signal.SIGKILL)

    store.mark_sent = killed
    channel = load_channel("desk", "alertfile://out.log")
    d = Dispatcher(store, [channel], retry_after=timedelta(minutes=1),
                   max_retry_after=timedelta(hours=1))
    asyncio.run(d.dispatch(now))
''')


def test_killed_between_send_and_mark_loses_nothing_and_resends_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "m.db"
    store = make_store(db, ("desk",), ["Fighting in Tripoli", "Clashes near Tripoli"])
    proc = subprocess.run([sys.executable, "-c", KILLER, f"sqlite:///{db}", NOW.isoformat()],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    log = tmp_path / "out.log"
    assert log.read_text().count("===") == 1  # the first alert went out, then the kill
    (inflight,) = store.alerts(["sending"])  # claimed, delivered, never marked
    (waiting,) = store.pending_alerts(None)
    assert (inflight.title, waiting.title) == ("Fighting in Tripoli", "Clashes near Tripoli")

    d = dispatcher(store, load_channel("desk", "alertfile://out.log"))
    assert asyncio.run(d.dispatch(NOW)).sent == 1  # the second; the first is leased
    later = NOW + timedelta(minutes=5)  # past the lease (timeout * 2 + 60 s)
    assert asyncio.run(d.dispatch(later)).sent == 1
    assert asyncio.run(d.dispatch(later + timedelta(hours=1), retry_now=True)).sent == 0
    text = log.read_text()
    assert text.count("=== [libya] Fighting in Tripoli") == 2  # at most one resend
    assert text.count("=== [libya] Clashes near Tripoli") == 1
    assert store.outbox_counts() == {("desk", "sent"): 2}


def test_a_send_that_outlasts_the_channel_timeout_fails_and_is_retried(tmp_path: Path) -> None:
    store = make_store(tmp_path / "m.db", ("slow",), ["Fighting in Tripoli"])
    with Receiver() as rx:
        rx.hang = True
        slow = load_channel("slow", f"json://127.0.0.1:{rx.port}/hook", timeout=0.2)
        counts = asyncio.run(dispatcher(store, slow).dispatch(NOW))
        rx.release.set()
    assert counts.failed == 1 and "TIMEOUT" in counts.errors["slow"]
    (row,) = store.pending_alerts(None)
    assert row.attempts == 1 and row.next_attempt_at == NOW + timedelta(minutes=1)


def test_a_slow_channel_does_not_hold_up_the_others(tmp_path: Path) -> None:
    store = make_store(tmp_path / "m.db", ("slow", "fast"), ["Fighting in Tripoli"])
    with Receiver() as slow_rx, Receiver() as fast_rx:
        slow_rx.hang = True
        d = dispatcher(store, load_channel("slow", f"json://127.0.0.1:{slow_rx.port}/a"),
                       load_channel("fast", f"json://127.0.0.1:{fast_rx.port}/b"))

        async def scenario() -> None:
            d.start(NOW)
            fast = d.busy["fast"]
            await asyncio.wait_for(asyncio.shield(fast), 30)
            assert "slow" in d.busy  # still waiting on its receiver
            d.start(NOW + timedelta(seconds=5))  # the next tick: slow is not started twice
            assert len(slow_rx.posts) <= 1
            slow_rx.release.set()
            await d.drain(30)

        asyncio.run(scenario())
        assert [json.loads(b)["title"] for b in fast_rx.delivered()] == [
            "[libya] Fighting in Tripoli"]
        assert len(slow_rx.delivered()) == 1
    assert store.outbox_counts() == {("fast", "sent"): 1, ("slow", "sent"): 1}


def test_a_channel_hung_on_all_its_sends_leaves_the_others_their_threads(
    tmp_path: Path
) -> None:
    """Channel ``stuck`` has 32 sends in flight (its concurrency), each held by its
    receiver: more than any shared pool of threads (asyncio's or apprise's: at most 32).
    Channel ``desk`` still delivers every alert meanwhile."""
    titles = [f"Fighting in Tripoli, day {i}" for i in range(32)]
    store = make_store(tmp_path / "m.db", ("stuck", "desk"), titles)
    with Receiver() as stuck_rx, Receiver() as desk_rx:
        stuck_rx.hang = True
        stuck = load_channel("stuck", f"json://127.0.0.1:{stuck_rx.port}/a", concurrency=32)
        desk = load_channel("desk", f"json://127.0.0.1:{desk_rx.port}/b")
        held, d = dispatcher(store, stuck), dispatcher(store, desk)

        async def scenario() -> int:
            held.start(NOW)
            await asyncio.to_thread(stuck_rx.wait_for_posts, 32)  # all 32 held
            counts = await asyncio.wait_for(d.dispatch(NOW), 60)
            assert "stuck" in held.busy and stuck_rx.answered == []
            stuck_rx.release.set()
            await held.drain(60)
            return counts.sent

        assert asyncio.run(scenario()) == 32
        assert len(desk_rx.delivered()) == 32 and len(stuck_rx.delivered()) == 32
    assert store.outbox_counts() == {("desk", "sent"): 32, ("stuck", "sent"): 32}


@pytest.mark.parametrize(("status", "retry_after", "wait"), [
    (503, format_datetime(NOW + timedelta(minutes=30), usegmt=True), timedelta(minutes=30)),
    (429, "86400", timedelta(hours=1)),  # capped: RETRY_AFTER_CAP
    (429, "soon", timedelta(minutes=1)),  # not a Retry-After: our backoff
])
def test_retry_after_as_an_http_date_or_seconds_sets_the_next_attempt(
    tmp_path: Path, status: int, retry_after: str, wait: timedelta
) -> None:
    store = make_store(tmp_path / "m.db", ("hook",), ["Fighting in Tripoli"])
    with Receiver() as rx:
        rx.script = [Reply(status, b"", {"Retry-After": retry_after})]
        hook = load_channel("hook", f"json://127.0.0.1:{rx.port}/hook")
        assert asyncio.run(dispatcher(store, hook).dispatch(NOW)).failed == 1
    (row,) = store.pending_alerts(None)
    assert row.next_attempt_at == NOW + wait


def test_hostile_feed_text_arrives_inert_by_email(tmp_path: Path,
                                                   smtp_server: SmtpServer) -> None:
    title = 'Tripoli <script>alert(1)</script>\r\nBcc: all@example.org <img src="x">'
    store = make_store(tmp_path / "m.db", ("desk",), [title])
    d = dispatcher(store, load_channel("desk", smtp_server.url()))
    assert asyncio.run(d.dispatch(NOW)).sent == 1
    (msg,) = smtp_server.messages
    assert msg["Subject"] == ('[libya] Tripoli <script>alert(1)</script> Bcc: all@example.org '
                              '<img src="x">')
    assert msg["Bcc"] is None
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    content = str(html.get_content())
    assert "<script>" not in content and "<img" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "Tripoli <script>alert(1)</script>" in SmtpServer.text(msg)  # as text, inert


def test_alerts_being_sent_count_as_pending_and_keep_their_items(tmp_path: Path) -> None:
    """/healthz and monitor_alerts_pending count rows in ``sending`` (claimed, maybe by a
    process that died), and retention never deletes their items."""
    store = make_store(tmp_path / "m.db", ("desk",), ["Sent", "Being sent", "Waiting"])
    sent, sending, _ = store.pending_alerts(None)
    store.mark_sent([sent.id], NOW)
    assert store.claim([sending.id], NOW, NOW + timedelta(minutes=2)) == [sending.id]
    stats = store.stats()
    assert stats.pending == {"desk": 2} and stats.oldest_pending == {"desk": NOW}
    later = NOW + timedelta(days=400)
    assert store.prune(later, later).matched == 1
    assert {a.title for a in store.alerts(["sending", "pending"])} == {"Being sent", "Waiting"}

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from monitor.schedule import adaptive_interval, next_check, retry_after

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
M15 = timedelta(minutes=15)


def delay(**kw: object) -> timedelta:
    args: dict[str, object] = {"interval": M15, "status": 200, "ok": True, "failures": 0}
    args.update(kw)
    return next_check(NOW, **args).at - NOW  # type: ignore[arg-type]


def test_the_interval_by_default() -> None:
    assert delay() == M15
    assert next_check(NOW, interval=M15, status=200, ok=True, failures=0).reason == "interval"


def test_the_latest_hint_wins_and_hints_are_capped_at_a_day() -> None:
    assert delay(headers={"Cache-Control": "public, max-age=3600"}) == timedelta(hours=1)
    assert delay(headers={"cache-control": "max-age=60"}) == M15  # shorter: interval wins
    assert delay(headers={"Cache-Control": "max-age=31536000"}) == timedelta(days=1)
    assert delay(ttl=timedelta(minutes=90)) == timedelta(minutes=90)
    expires = {"Date": "Mon, 19 Jan 2026 12:00:00 GMT", "Expires": "Mon, 19 Jan 2026 14:00:00 GMT"}
    assert delay(headers=expires) == timedelta(hours=2)
    both = {**expires, "Cache-Control": "max-age=1800"}
    assert delay(headers=both) == timedelta(minutes=30)  # max-age wins over Expires


def test_retry_after_in_seconds_or_as_a_date_capped_at_a_week() -> None:
    assert retry_after({"Retry-After": "120"}, NOW) == timedelta(seconds=120)
    assert retry_after({"Retry-After": "Mon, 19 Jan 2026 15:00:00 GMT"}, NOW) == timedelta(hours=3)
    assert retry_after({"Retry-After": "99999999"}, NOW) == timedelta(days=7)
    assert retry_after({"Retry-After": "soon"}, NOW) is None
    assert delay(status=429, ok=False, failures=1,
                 headers={"Retry-After": "7200"}) == timedelta(hours=2)
    assert delay(status=503, ok=False, failures=1,
                 headers={"Retry-After": "60"}) == M15  # the backoff is longer


def test_backoff_doubles_and_caps_at_a_day() -> None:
    delays = [delay(status=500, ok=False, failures=n) for n in range(1, 10)]
    assert delays[:4] == [M15, 2 * M15, 4 * M15, 8 * M15]
    assert delays[-1] == timedelta(hours=24)
    assert all(a <= b for a, b in itertools.pairwise(delays))
    slow = timedelta(days=2)  # an interval beyond the cap is not shortened
    assert delay(interval=slow, status=500, ok=False, failures=3) == slow


def test_gone_is_polled_at_most_daily() -> None:
    assert delay(status=410, ok=False, failures=1) == timedelta(days=1)


def test_jitter_adds_at_most_a_tenth() -> None:
    assert delay(jitter=0.5) == M15 * 1.05
    assert M15 <= delay(jitter=0.9999) < M15 * 1.1


def test_adaptive_interval_follows_the_publishing_rate() -> None:
    floor, ceiling = timedelta(minutes=5), timedelta(hours=6)
    hourly = [NOW - timedelta(hours=h) for h in range(10)]
    assert adaptive_interval(hourly, floor, ceiling) == timedelta(hours=1)
    burst = [NOW - timedelta(seconds=s) for s in range(10)]
    assert adaptive_interval(burst, floor, ceiling) == floor
    daily = [NOW - timedelta(days=d) for d in range(10)]
    assert adaptive_interval(daily, floor, ceiling) == ceiling
    assert adaptive_interval(hourly[:2], floor, ceiling) is None

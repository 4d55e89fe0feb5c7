"""When to poll a feed next. Pure: the response's facts and ``now`` in, a time out.

The next check is the latest of the feed's interval and what the server and the feed
ask for — ``Cache-Control: max-age``, ``Expires``, RSS ``<ttl>`` — each hint capped at
a day; after a 429 or 503, ``Retry-After`` (seconds or an HTTP date, capped at 7 days).
Failures back off exponentially (interval × 2^(failures-1), capped at 24 h). A feed
that is gone (410) is tried at most daily. Jitter (a fraction of the delay, given by
the caller) spreads feeds so they do not pile up.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = [
    "HINT_CAP",
    "MAX_BACKOFF",
    "RETRY_AFTER_CAP",
    "Decision",
    "adaptive_interval",
    "next_check",
    "retry_after",
]

HINT_CAP = timedelta(days=1)
RETRY_AFTER_CAP = timedelta(days=7)
MAX_BACKOFF = timedelta(hours=24)
GONE_INTERVAL = timedelta(days=1)
JITTER = 0.1  # at most this fraction of the delay is added


@dataclass(frozen=True)
class Decision:
    at: datetime
    reason: str


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def _http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def retry_after(headers: Mapping[str, str], now: datetime) -> timedelta | None:
    """``Retry-After`` as a delay from ``now`` (seconds or an HTTP date), capped at 7 days."""
    value = (_header(headers, "retry-after") or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        delay = _seconds(value)
    else:
        when = _http_date(value)
        if when is None:
            return None
        delay = when - now
    return max(timedelta(0), min(delay, RETRY_AFTER_CAP))


_MAX_AGE_RE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?([0-9]+)", re.IGNORECASE)
_MAX_SECONDS = 10**9  # 31 years: beyond every cap, within what timedelta holds


def _seconds(digits: str) -> timedelta:
    """ASCII digits as seconds; a number too long for ``int`` or ``timedelta`` (a hostile
    header) is taken as ``_MAX_SECONDS``, which every cap then shortens."""
    value = int(digits) if len(digits) <= 10 else _MAX_SECONDS
    return timedelta(seconds=min(value, _MAX_SECONDS))


def _cache_hints(headers: Mapping[str, str], now: datetime) -> list[tuple[timedelta, str]]:
    hints = []
    cc = _header(headers, "cache-control") or ""
    m = _MAX_AGE_RE.search(cc)
    if m:
        hints.append((_seconds(m.group(1)), "Cache-Control max-age"))
    expires = _header(headers, "expires")
    if expires and not m:  # max-age wins over Expires (RFC 9111)
        when = _http_date(expires)
        if when is not None:
            date = _http_date(_header(headers, "date") or "") or now
            hints.append((when - date, "Expires"))
    return hints


def next_check(
    now: datetime,
    *,
    interval: timedelta,
    status: int | None,
    ok: bool,
    failures: int,
    headers: Mapping[str, str] | None = None,
    ttl: timedelta | None = None,
    jitter: float = 0.0,
) -> Decision:
    """The time of the next poll.

    ``failures`` counts consecutive failures including this poll (0 after a success);
    ``jitter`` is a number in [0, 1) chosen by the caller (random in the daemon).
    """
    headers = headers or {}
    if status == 410:
        delay, reason = max(interval, GONE_INTERVAL), "gone (410): at most daily"
    elif not ok:
        delay = min(interval * (2 ** max(0, failures - 1)), max(MAX_BACKOFF, interval))
        reason = f"backoff after {failures} failure{'s' if failures != 1 else ''}"
        if status in (429, 503):
            wait = retry_after(headers, now)
            if wait is not None and wait > delay:
                delay, reason = wait, f"Retry-After on {status}"
    else:
        delay, reason = interval, "interval"
        hints = _cache_hints(headers, now)
        if ttl is not None:
            hints.append((ttl, "RSS ttl"))
        for hint, name in hints:
            hint = min(hint, HINT_CAP)
            if hint > delay:
                delay, reason = hint, name
    return Decision(now + delay + delay * (JITTER * min(max(jitter, 0.0), 0.999)), reason)


def adaptive_interval(published: Sequence[datetime], floor: timedelta,
                      ceiling: timedelta) -> timedelta | None:
    """The feed's observed publishing rate: the median gap between its items' dates,
    held between ``floor`` and ``ceiling``. None with fewer than three dated items."""
    times = sorted({t for t in published})
    if len(times) < 3:
        return None
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    median = timedelta(seconds=statistics.median(gaps))
    return max(floor, min(ceiling, median))

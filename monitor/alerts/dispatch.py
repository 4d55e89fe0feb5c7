"""Outbox -> apprise. The outbox row is the truth: it is marked sent only when apprise
reports success for the channel; otherwise it stays pending with its error and a time
for the next attempt, doubling each time.

Delivery is at-least-once: if the process dies after apprise delivered a message and
before the row is marked sent, that one message is sent again on restart.
Channel URLs hold secrets: only apprise's privacy form (``url(privacy=True)``) is ever
written to a log or an error.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import apprise

from ..errors import AlertError, Problem
from ..store import PendingAlert, Store
from . import targets  # noqa: F401  (registers the alertfile:// target)
from .render import Message, render

__all__ = [
    "Channel",
    "DispatchCounts",
    "Dispatcher",
    "channel_problems",
    "load_channel",
    "send",
    "send_test",
]

log = logging.getLogger(__name__)

SEND_TIMEOUT = 60.0  # seconds for one message through one channel


@dataclass(frozen=True)
class Channel:
    name: str
    notifier: apprise.Apprise
    display_url: str
    """The URL in apprise's privacy form: the only form ever logged."""


_URL_RE = re.compile(r"\b([a-z][a-z0-9+.-]*)://[^\s'\"]+", re.IGNORECASE)


class _RedactURLs(logging.Filter):
    """apprise logs some URLs whole (``Unparseable URL …``): keep only the scheme."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _URL_RE.sub(r"\1://(redacted)", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def _redact_apprise_logs() -> None:
    logger = logging.getLogger("apprise")
    if not any(isinstance(f, _RedactURLs) for f in logger.filters):
        logger.addFilter(_RedactURLs())


def load_channel(name: str, url: str) -> Channel:
    """An apprise object for one channel URL; AlertError (without the URL) if apprise
    does not accept it."""
    _redact_apprise_logs()
    notifier = apprise.Apprise()
    if not notifier.add(url):
        scheme = url.split("://", 1)[0] if "://" in url else "(none)"
        raise AlertError(
            f"apprise does not accept this URL (scheme {scheme!r}); see "
            "https://github.com/caronc/apprise/wiki for the URL of each service"
        )
    display = ", ".join(str(s.url(privacy=True)) for s in notifier)  # type: ignore[no-untyped-call]
    return Channel(name, notifier, display)


def channel_problems(file: str, channels: Iterable[tuple[str, str]]) -> list[Problem]:
    """Check every (name, url) with apprise; problems name the channel, never the URL."""
    problems = []
    for i, (_name, url) in enumerate(channels):
        try:
            load_channel(_name, url)
        except AlertError as exc:
            problems.append(Problem(file, f"channel[{i}].url", str(exc)))
    return problems


@dataclass
class DispatchCounts:
    sent: int = 0
    failed: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    sent_by_channel: dict[str, int] = field(default_factory=dict)
    failed_by_channel: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    """Sends due outbox rows; channels are served side by side, so a slow one does not
    hold up the others."""

    def __init__(self, store: Store, channels: Iterable[Channel], *,
                 retry_after: timedelta, max_retry_after: timedelta) -> None:
        self.store = store
        self.channels = {c.name: c for c in channels}
        self.retry_after = retry_after
        self.max_retry_after = max_retry_after

    async def dispatch(self, now: datetime, *, retry_now: bool = False) -> DispatchCounts:
        """Send every pending alert due at ``now``; with ``retry_now``, also those still
        waiting out the backoff after a failure (``run --once``)."""
        pending = self.store.pending_alerts(None if retry_now else now, channels=self.channels)
        by_channel: dict[str, list[PendingAlert]] = {}
        for alert in pending:
            by_channel.setdefault(alert.channel, []).append(alert)
        counts = DispatchCounts()
        await asyncio.gather(*(self._send_all(self.channels[name], alerts, now, counts)
                               for name, alerts in by_channel.items()))
        return counts

    async def _send_all(self, channel: Channel, alerts: list[PendingAlert], now: datetime,
                        counts: DispatchCounts) -> None:
        for alert in alerts:
            error = await self._send(channel, alert)
            if error is None:
                self.store.mark_sent(alert.id, now)
                counts.sent += 1
                counts.sent_by_channel[channel.name] = (
                    counts.sent_by_channel.get(channel.name, 0) + 1)
                log.info("alert %d sent to %s", alert.id, channel.name)
                continue
            wait = min(self.retry_after * (2 ** alert.attempts), self.max_retry_after)
            self.store.mark_failed(alert.id, error, now + wait)
            counts.failed += 1
            counts.failed_by_channel[channel.name] = (
                counts.failed_by_channel.get(channel.name, 0) + 1)
            counts.errors[channel.name] = error
            log.warning("alert %d to %s failed (attempt %d), retry in %s: %s",
                        alert.id, channel.name, alert.attempts + 1, wait, error)
            # the channel is failing: leave its other rows for the next attempt
            break

    async def _send(self, channel: Channel, alert: PendingAlert) -> str | None:
        return await send(channel, render(alert))


async def send(channel: Channel, message: Message) -> str | None:
    """Send one message; None on success, else the error (with the URL in privacy form).

    apprise 2 returns a result whose status tells SUCCESS from FAILURE, NOMATCH (no
    service took the message) and TIMEOUT; anything but SUCCESS is a failure.
    """
    try:
        # In a worker thread: apprise paces each service (time.sleep between messages,
        # 5.5 s for email by default), which must not stall the event loop.
        result = await asyncio.to_thread(
            channel.notifier.notify, body=message.body, title=message.title,
            body_format=apprise.NotifyFormat.TEXT, timeout=SEND_TIMEOUT,
        )
    except Exception as exc:
        return f"{type(exc).__name__} while sending to {channel.display_url}"
    status = getattr(result, "status", None)  # apprise 1.x returns a bare bool
    if result and (status is None or status.name == "SUCCESS"):
        return None
    name = status.name if status is not None else "FAILURE"
    return f"{name}: {channel.display_url} did not accept the alert"


async def send_test(channel: Channel, now: datetime) -> str | None:
    """Send a short test message through ``channel``."""
    return await send(channel, Message(
        "monitor: test alert",
        f"A test alert from monitor on channel {channel.name!r} at {now:%Y-%m-%d %H:%M} UTC.\n",
    ))

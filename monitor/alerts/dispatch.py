"""Outbox -> apprise. The outbox row is the truth (store/outbox.py): the dispatcher claims
rows under a lease, sends, and marks them sent only when apprise reports success for the
channel; otherwise they go back to pending with their error and a later attempt
(doubling, with jitter, capped), and after ``max_attempts`` they are dead letters.

Each channel is served by its own task, with its own timeout and its own threads
(``concurrency`` of them, one by default): a slow or dead channel never holds up another,
nor the next round of the others, nor takes the threads they send with.

A channel that answers 429 or 503 with ``Retry-After`` (seconds or an HTTP date) is
held: nothing is sent to it before then (at most ``RETRY_AFTER_CAP`` ahead), by this
process or any other sharing the database, and its rows' next attempt is at least then.
apprise does not pass the header on; ``responses`` reads it (see there).

A channel with an hourly limit or quiet hours is served by one worker at a time across
workers (a PostgreSQL advisory lock): its hour's count is read from the outbox rows
sent, by any worker, so the limit holds for all of them together.

Delivery is at-least-once: if the process dies after apprise delivered a message and
before the row is marked sent, the row's lease expires and that one message is sent
again. Channel URLs hold secrets: only apprise's privacy form (``url(privacy=True)``) is
ever written to a log or an error.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import apprise
import jinja2

from ..config import ChannelSettings
from ..errors import AlertError, Problem
from ..schedule import retry_after as parse_retry_after
from ..store import PendingAlert, Store
from . import targets
from .policy import HOUR, Plan, Policy, QuietHours, plan
from .render import Format, Kind, Message, Renderer
from .responses import Response, observe, recording
from .templates import renderer

__all__ = [
    "RETRY_AFTER_CAP",
    "Channel",
    "Delivery",
    "DispatchCounts",
    "Dispatcher",
    "channel_from_settings",
    "channel_problems",
    "deliver",
    "load_channel",
    "send",
    "send_test",
]

log = logging.getLogger(__name__)

SEND_TIMEOUT = 60.0  # seconds for one message through one channel, unless configured
RETRY_AFTER_CAP = timedelta(hours=1)
"""The longest a channel's Retry-After holds it: a service asking for more (or a
mistaken date) is tried again after an hour, and held again if it still refuses."""
_BODY_FORMATS = {"text": apprise.NotifyFormat.TEXT, "html": apprise.NotifyFormat.HTML,
                 "slack": apprise.NotifyFormat.MARKDOWN}


@dataclass(frozen=True)
class Channel:
    name: str
    notifier: apprise.Apprise
    display_url: str
    """The URL in apprise's privacy form: the only form ever logged."""
    renderer: Renderer
    timeout: float = SEND_TIMEOUT
    mode: str = "instant"
    policy: Policy = field(default_factory=Policy)
    concurrency: int = 1
    """Messages in flight at once on this channel."""
    pool: ThreadPoolExecutor | None = field(default=None, compare=False, repr=False)
    """The channel's own threads for apprise (``concurrency`` of them, started when
    first needed): a channel whose sends hang uses up its own threads, not others'."""


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


def _format_of(url: str) -> Format:
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("mailto", "mailtos"):
        return "html"
    if scheme == "slack":
        return "slack"
    return "text"


def load_channel(name: str, url: str, *, templates: Mapping[str, str] | None = None,
                 timeout: float = SEND_TIMEOUT, mode: str = "instant",
                 policy: Policy | None = None, concurrency: int = 1) -> Channel:
    """An apprise object for one channel URL, with its templates; AlertError (without
    the URL) if apprise does not accept it or a template does not compile."""
    _redact_apprise_logs()
    targets.register()
    if url.startswith(f"{targets.SCHEME}:///"):
        raise AlertError(f"{targets.SCHEME}:// takes a path relative to the working "
                         f"directory (e.g. {targets.SCHEME}://var/alerts.log), not an "
                         "absolute one: apprise drops the leading slash")
    # service_timeout=0: apprise would otherwise run each send with a deadline in its
    # one process-wide pool of threads (min(32, cores + 4)), which sends that hang on
    # one channel fill for every channel. The channel's timeout is ours (`deliver`).
    notifier = apprise.Apprise(asset=apprise.AppriseAsset(service_timeout=0))
    if not notifier.add(url):
        scheme = url.split("://", 1)[0] if "://" in url else "(none)"
        raise AlertError(
            f"apprise does not accept this URL (scheme {scheme!r}); see "
            "https://github.com/caronc/apprise/wiki for the URL of each service"
        )
    for service in notifier:
        observe(service)  # its HTTP responses reach `deliver` (Retry-After)
    display = ", ".join(str(s.url(privacy=True)) for s in notifier)  # type: ignore[no-untyped-call]
    try:
        render = renderer(_format_of(url), templates)
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise AlertError(f"template {getattr(exc, 'name', None) or ''} "
                         f"{f'line {line}: ' if line else ''}{exc.message}") from exc
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"alerts {name}")
    return Channel(name, notifier, display, render, timeout, mode, policy or Policy(),
                   concurrency, pool)


def channel_from_settings(ch: ChannelSettings, templates: Mapping[str, str] | None = None
                          ) -> Channel:
    tz = zoneinfo.ZoneInfo(ch.timezone)
    quiet = QuietHours.parse(ch.quiet_hours, tz) if ch.quiet_hours else None
    return load_channel(ch.name, ch.url.get_secret_value(), templates=templates,
                        timeout=ch.timeout.total_seconds(), mode=ch.mode,
                        policy=Policy(ch.max_per_hour, quiet), concurrency=ch.concurrency)


def channel_problems(file: str, channels: Iterable[ChannelSettings],
                     templates: Mapping[str, Mapping[str, str]] | None = None) -> list[Problem]:
    """Check every channel's URL with apprise and its templates with Jinja2; problems
    name the channel, never the URL."""
    problems = []
    for i, ch in enumerate(channels):
        try:
            channel_from_settings(ch, (templates or {}).get(ch.name))
        except AlertError as exc:
            where = "templates" if str(exc).startswith("template") else "url"
            problems.append(Problem(file, f"channel[{i}].{where}", str(exc)))
    return problems


@dataclass
class DispatchCounts:
    sent: int = 0
    """Messages delivered (a digest or summary counts once)."""
    failed: int = 0
    dead: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    sent_by_channel: dict[str, int] = field(default_factory=dict)
    failed_by_channel: dict[str, int] = field(default_factory=dict)

    def add(self, other: DispatchCounts) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.dead += other.dead
        self.errors.update(other.errors)
        for mine, theirs in ((self.sent_by_channel, other.sent_by_channel),
                             (self.failed_by_channel, other.failed_by_channel)):
            for name, n in theirs.items():
                mine[name] = mine.get(name, 0) + n


class Dispatcher:
    """Sends due outbox rows, each channel in its own task."""

    def __init__(self, store: Store, channels: Iterable[Channel], *,
                 retry_after: timedelta, max_retry_after: timedelta, max_attempts: int = 10,
                 jitter: Callable[[], float] | None = None,
                 clock: Callable[[], datetime] | None = None,
                 on_counts: Callable[[DispatchCounts], None] | None = None) -> None:
        self.store = store
        self.clock = clock
        """With a clock (the daemon), each claim and mark reads it: a channel may take
        minutes over a burst. Without (tests, ``run --once``), the ``now`` passed in."""
        self.channels = {c.name: c for c in channels}
        self.retry_after = retry_after
        self.max_retry_after = max_retry_after
        self.max_attempts = max_attempts
        self.jitter = jitter or (lambda: random.uniform(0.8, 1.0))
        self.busy: dict[str, asyncio.Task[None]] = {}
        self.on_counts = on_counts
        """Told the counts of each round that ``start`` began, when it ends (metrics)."""

    def _due(self, now: datetime, retry_now: bool, names: Iterable[str]
             ) -> dict[str, list[PendingAlert]]:
        by_channel: dict[str, list[PendingAlert]] = {}
        holds = self.store.channel_holds(now)
        names = [n for n in names if n not in holds]  # Retry-After: not before then
        if not names:
            return by_channel
        for alert in self.store.pending_alerts(now, channels=list(names)):
            by_channel.setdefault(alert.channel, []).append(alert)
        if retry_now:  # also pending rows still waiting out their backoff
            for alert in self.store.pending_alerts(None, channels=list(names)):
                rows = by_channel.setdefault(alert.channel, [])
                if all(r.id != alert.id for r in rows):
                    rows.append(alert)
        return by_channel

    async def dispatch(self, now: datetime, *, retry_now: bool = False,
                       skip: Iterable[str] = ()) -> DispatchCounts:
        """Send every alert due at ``now`` and wait for every channel; with
        ``retry_now``, also those waiting out the backoff after a failure (``run
        --once``). Channels in ``skip`` are left alone (``run --once`` has just sent
        their digest)."""
        counts = DispatchCounts()
        due = self._due(now, retry_now, [n for n in self.channels if n not in set(skip)])
        await asyncio.gather(*(self._serve(self.channels[name], rows, now, counts)
                               for name, rows in due.items()))
        return counts

    def start(self, now: datetime) -> None:
        """Start a task for each channel with alerts due that is not still busy with
        the last round, and return at once (the daemon's tick)."""
        idle = [n for n in self.channels if n not in self.busy]
        for name, rows in self._due(now, False, idle).items():
            counts = DispatchCounts()
            task = asyncio.create_task(self._serve(self.channels[name], rows, now, counts),
                                       name=f"alerts {name}")
            self.busy[name] = task
            task.add_done_callback(functools.partial(self._done, name, counts))

    def _done(self, name: str, counts: DispatchCounts, task: asyncio.Task[None]) -> None:
        self.busy.pop(name, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("sending to %s crashed", name, exc_info=task.exception())
        if self.on_counts is not None:
            self.on_counts(counts)

    async def drain(self, timeout: float) -> None:
        if self.busy:
            await asyncio.wait(list(self.busy.values()), timeout=timeout)

    async def send_digest(self, name: str, now: datetime) -> DispatchCounts:
        """A digest channel's scheduled message: every alert pending on it, in one
        message. Skipped (left for the next digest) during the channel's quiet hours."""
        channel, counts = self.channels[name], DispatchCounts()
        quiet = channel.policy.quiet
        if quiet is not None and now in quiet:
            log.info("digest for %s deferred: quiet hours", name)
            return counts
        hold = self.store.channel_holds(now).get(name)
        if hold is not None:
            log.info("digest for %s deferred: the channel asked to wait until %s", name,
                     hold.isoformat())
            return counts
        rows = self.store.pending_alerts(None, channels=[name])
        if rows:
            await self._send_batch(channel, rows, "digest", now, counts)
        return counts

    async def _serve(self, channel: Channel, rows: list[PendingAlert], now: datetime,
                     counts: DispatchCounts) -> None:
        policy = channel.policy
        if policy.max_per_hour is None and policy.quiet is None:
            await self._serve_alone(channel, rows, now, counts)
            return
        # Its plan counts the messages the channel sent in the last hour, by any worker
        # (outbox rows sent): with several workers on PostgreSQL one serves the channel
        # at a time, or two would each spend the hour's budget.
        with self.store.once(f"channel:{channel.name}") as mine:
            if mine:
                await self._serve_alone(channel, rows, now, counts)
            else:
                log.debug("%s is being served by another worker", channel.name)

    async def _serve_alone(self, channel: Channel, rows: list[PendingAlert], now: datetime,
                           counts: DispatchCounts) -> None:
        if channel.mode == "digest":
            # only a digest that failed is retried between scheduled digests
            retry = [r for r in rows if r.attempts > 0]
            if retry:
                await self._send_batch(channel, retry, "digest", now, counts)
            return
        sent = (self.store.sent_since(channel.name, now - HOUR)
                if channel.policy.max_per_hour else [])
        todo: Plan = plan(channel.policy, rows, sent, now)
        singles, failing = list(todo.singles), False

        async def sender() -> None:  # `concurrency` of them take the alerts in turn
            nonlocal failing
            while singles and not failing:
                if not await self._send_batch(channel, [singles.pop(0)], "alert", now,
                                              counts):
                    failing = True  # leave the channel's other rows for the next attempt

        await asyncio.gather(*(sender() for _ in range(min(channel.concurrency,
                                                           len(singles)))))
        if failing:
            return
        if todo.bundle:
            await self._send_batch(channel, list(todo.bundle), todo.bundle_kind, now, counts)

    async def _send_batch(self, channel: Channel, rows: list[PendingAlert], kind: Kind,
                          now: datetime, counts: DispatchCounts) -> bool:
        now = self.clock() if self.clock is not None else now
        lease = now + timedelta(seconds=channel.timeout * 2 + 60)
        claimed = set(self.store.claim([r.id for r in rows], now, lease))
        rows = [r for r in rows if r.id in claimed]
        if not rows:
            return True
        ids = [r.id for r in rows]
        message = channel.renderer.render(rows, kind, channel=channel.name,
                                          limit=channel.policy.max_per_hour)
        delivery = await deliver(channel, message)
        error = delivery.error
        now = self.clock() if self.clock is not None else now
        if error is None:
            self.store.mark_sent(ids, now, batch=f"{kind[0]}{min(ids)}")
            counts.sent += 1
            counts.sent_by_channel[channel.name] = counts.sent_by_channel.get(channel.name, 0) + 1
            log.info("alert %s sent to %s", ", ".join(map(str, ids)), channel.name)
            return True
        attempts = max(r.attempts for r in rows)
        wait = min(self.retry_after * (2 ** attempts), self.max_retry_after) * self.jitter()
        asked = delivery.retry_after(now)
        if asked is not None:  # the channel said when: nothing goes to it before then
            error = f"{error} (Retry-After: {asked.total_seconds():g} s)"
            hold = self.store.hold_channel(channel.name, now + asked, error)
            wait = max(wait, hold - now)
        dead = self.store.mark_failed(ids, error, now, now + wait, self.max_attempts)
        counts.failed += 1
        counts.failed_by_channel[channel.name] = (
            counts.failed_by_channel.get(channel.name, 0) + 1)
        counts.dead += len(dead)
        counts.errors[channel.name] = error
        log.warning("alert %s to %s failed (attempt %d), retry in %s: %s",
                    ", ".join(map(str, ids)), channel.name, attempts + 1, wait, error)
        if dead:
            log.error("alert %s to %s gave up after %d attempts: dead letter (see "
                      "`monitor alerts list --failed`)", ", ".join(map(str, dead)),
                      channel.name, self.max_attempts)
        return False


@dataclass(frozen=True)
class Delivery:
    """How one send went: ``error`` is None on success; ``responses`` are the HTTP
    responses the channel's plugin got, when it speaks HTTP through ``requests``."""

    error: str | None
    responses: tuple[Response, ...] = ()

    def retry_after(self, now: datetime) -> timedelta | None:
        """The wait a failed send was told (429 or 503 with ``Retry-After``, seconds or
        an HTTP date), capped at ``RETRY_AFTER_CAP``; None if it was told none."""
        if self.error is None:
            return None
        for response in reversed(self.responses):
            if response.status in (429, 503):
                wait = parse_retry_after(response.headers, now)
                if wait is not None:
                    return min(wait, RETRY_AFTER_CAP)
        return None


async def send(channel: Channel, message: Message) -> str | None:
    """Send one message; None on success, else the error (``deliver``)."""
    return (await deliver(channel, message)).error


async def deliver(channel: Channel, message: Message) -> Delivery:
    """Send one message; its error (with the URL in privacy form) if it failed.

    apprise 2 returns a result whose status tells SUCCESS from FAILURE, NOMATCH (no
    service took the message) and TIMEOUT; anything but SUCCESS is a failure. A send
    that outlasts the channel's timeout is a failure too (the worker thread, one of the
    channel's own, is left to finish; if it does deliver, the retry is the one duplicate
    at-least-once allows).
    """
    seen: list[Response] = []
    notify = functools.partial(
        recording(seen).run, channel.notifier.notify, body=message.body,
        title=message.title, body_format=_BODY_FORMATS[message.format])
    try:
        # In a worker thread of the channel's own: apprise paces each service
        # (time.sleep between messages, 5.5 s for email by default), which must not
        # stall the event loop, and a hung send must not take another channel's thread.
        result = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(channel.pool, notify),
            timeout=channel.timeout)
    except TimeoutError:
        return Delivery(f"TIMEOUT: {channel.display_url} took longer than "
                        f"{channel.timeout:g} s", tuple(seen))
    except Exception as exc:
        return Delivery(f"{type(exc).__name__} while sending to {channel.display_url}",
                        tuple(seen))
    status = getattr(result, "status", None)  # apprise 1.x returns a bare bool
    if result and (status is None or status.name == "SUCCESS"):
        return Delivery(None, tuple(seen))
    name = status.name if status is not None else "FAILURE"
    return Delivery(f"{name}: {channel.display_url} did not accept the alert", tuple(seen))


async def send_test(channel: Channel, now: datetime) -> str | None:
    """Send a short test message through ``channel``."""
    return await send(channel, Message(
        "monitor: test alert",
        f"A test alert from monitor on channel {channel.name!r} at {now:%Y-%m-%d %H:%M} UTC.\n",
    ))

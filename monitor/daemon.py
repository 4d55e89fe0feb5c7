"""The daemon: one factory wires the parts; APScheduler (3.x, asyncio) runs the loop.

Scheduling is kept in the database: each feed has a ``next_check_at``. A tick every few
seconds starts a poll for each feed that is due and not already in flight, so intervals
survive restarts and a slow feed never holds up the others. A second job sends the
outbox.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .alerts import (
    Channel,
    DispatchCounts,
    Dispatcher,
    Message,
    channel_from_settings,
    send,
)
from .config import Config
from .errors import AlertError, ConfigError, Problem
from .fetch import FeedAuth, Fetcher
from .health import health_notices
from .match import Watchlist, compile_watchlist
from .poll import FeedOptions, Poller, PollReport
from .store import Store, create, migrate

__all__ = ["App", "OnceReport", "build", "run_forever", "run_once"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    """The wired daemon: configuration, store, compiled watchlists, channels."""

    config: Config
    store: Store
    watchlists: list[Watchlist]
    channels: list[Channel]
    clock: Clock = utcnow

    @property
    def routes(self) -> dict[str, tuple[str, ...]]:
        """watchlist name -> the channels that receive it."""
        routes: dict[str, list[str]] = {}
        for ch in self.config.channels:
            for wl in ch.watchlists:
                routes.setdefault(wl, []).append(ch.name)
        return {k: tuple(v) for k, v in routes.items()}

    @property
    def min_rules(self) -> dict[str, int]:
        return {ch.name: ch.min_rules for ch in self.config.channels}

    def fetcher(self) -> Fetcher:
        f = self.config.settings.fetch
        return Fetcher(timeout=f.timeout.total_seconds(), max_body_bytes=f.max_body_bytes,
                       concurrency=f.concurrency, user_agent=f.user_agent,
                       allow_private_networks=f.allow_private_networks, per_host=f.per_host)

    def poller(self, fetcher: Fetcher) -> Poller:
        return Poller(self.store, fetcher, self.watchlists, self.routes, self.feed_options,
                      min_rules=self.min_rules,
                      story_window=self.config.settings.alerts.story_window)

    @property
    def feed_options(self) -> dict[str, FeedOptions]:
        """Per-feed headers, basic auth and adaptive intervals, by configured URL."""
        fetch = self.config.settings.fetch
        out = {}
        for feed in self.config.feeds:
            auth = None
            if feed.headers or feed.username:
                basic = ((feed.username, feed.password.get_secret_value() if feed.password
                          else "") if feed.username else None)
                auth = FeedAuth(tuple((k, v.get_secret_value()) for k, v in feed.headers.items()),
                                basic)
            adaptive = feed.adaptive if feed.adaptive is not None else fetch.adaptive
            out[feed.url] = FeedOptions(
                auth, (fetch.adaptive_floor, fetch.adaptive_ceiling) if adaptive else None)
        return out

    def dispatcher(self) -> Dispatcher:
        a = self.config.settings.alerts
        return Dispatcher(self.store, self.channels, retry_after=a.retry_after,
                          max_retry_after=a.max_retry_after, max_attempts=a.max_attempts,
                          clock=self.clock)


def build(config: Config, clock: Clock = utcnow) -> App:
    """Migrate the database, load the configuration into it, compile the watchlists and
    open the channels. Raises ConfigError or StoreError."""
    problems = []
    channels = []
    for i, ch in enumerate(config.channels):
        try:
            channels.append(channel_from_settings(ch, config.templates.get(ch.name)))
        except AlertError as exc:
            where = "templates" if str(exc).startswith("template") else "url"
            problems.append(Problem(config.path.name, f"channel[{i}].{where}", str(exc)))
    problems += schedule_problems(config)
    if problems:
        raise ConfigError(problems)
    engine = create(config.settings.database.url.get_secret_value())
    before, after = migrate(engine)
    if before != after:
        log.info("database schema migrated from %s to %s", before or "empty", after)
    store = Store(engine)
    now = clock()
    store.sync_feeds(((f.url, f.title, config.interval(f)) for f in config.feeds), now)
    store.sync_watchlists({w.name: asdict(w) for w in config.watchlists}, now)
    watchlists = [compile_watchlist(spec) for spec in config.watchlists]
    return App(config, store, watchlists, channels, clock)


def digest_trigger(schedule: str, timezone: str) -> CronTrigger:
    """The trigger of a digest channel; ValueError if cron does not accept it."""
    return CronTrigger.from_crontab(schedule, timezone=timezone)


def schedule_problems(config: Config) -> list[Problem]:
    """Each digest_schedule that APScheduler's cron refuses."""
    problems = []
    for i, ch in enumerate(config.channels):
        if ch.digest_schedule:
            try:
                digest_trigger(ch.digest_schedule, ch.timezone)
            except ValueError as exc:
                problems.append(Problem(config.path.name, f"channel[{i}].digest_schedule",
                                        f"not a cron schedule: {exc}"))
    return problems


@dataclass
class OnceReport:
    polls: list[PollReport] = field(default_factory=list)
    dispatch: DispatchCounts = field(default_factory=DispatchCounts)

    def summary(self) -> str:
        failed = sum(not p.ok for p in self.polls)
        new = sum(p.counts.new_items for p in self.polls)
        matches = sum(p.counts.matches for p in self.polls)
        return (f"polled {len(self.polls)} feeds ({failed} failed): {new} new items, "
                f"{matches} matches; alerts: {self.dispatch.sent} sent, "
                f"{self.dispatch.failed} failed")


async def run_once(app: App) -> OnceReport:
    """Poll every active feed once, then send every pending alert."""
    report = OnceReport()
    async with app.fetcher() as fetcher:
        poller = app.poller(fetcher)
        now = app.clock()
        report.polls = list(await asyncio.gather(
            *(poller.poll(feed, now) for feed in app.store.feeds())))
    await send_health_notices(app)
    report.dispatch = await app.dispatcher().dispatch(app.clock(), retry_now=True)
    return report


async def send_health_notices(app: App) -> int:
    """Tell the admin channel about feeds failing too long, and about their recovery.
    A notice is recorded only once it is sent, so a failed send is tried again."""
    alerts = app.config.settings.alerts
    channel = next((c for c in app.channels if c.name == alerts.admin_channel), None)
    if channel is None:
        return 0
    now = app.clock()
    sent = 0
    for notice in health_notices(app.store.feeds(), now, alerts.feed_failing_after):
        error = await send(channel, Message(notice.title, notice.body))
        if error is not None:
            log.warning("feed health notice to %s failed: %s", channel.name, error)
            break
        app.store.set_health_alerted(notice.feed_id, now if notice.failing else None)
        log.info("feed health notice sent to %s: %s", channel.name, notice.title)
        sent += 1
    return sent


class _Loop:
    """The two recurring jobs: start due polls, send due alerts."""

    def __init__(self, app: App, poller: Poller, dispatcher: Dispatcher) -> None:
        self.app = app
        self.poller = poller
        self.dispatcher = dispatcher
        self.inflight: dict[int, asyncio.Task[PollReport]] = {}
        self.limit = app.config.settings.fetch.concurrency * 2

    async def start_due_polls(self) -> None:
        room = self.limit - len(self.inflight)
        if room <= 0:
            return
        now = self.app.clock()
        for feed in self.app.store.due_feeds(now, room + len(self.inflight)):
            if feed.id in self.inflight or len(self.inflight) >= self.limit:
                continue
            task = asyncio.create_task(self.poller.poll(feed, now), name=f"poll {feed.url}")
            self.inflight[feed.id] = task
            task.add_done_callback(functools.partial(self._done, feed.id))

    def _done(self, feed_id: int, task: asyncio.Task[PollReport]) -> None:
        self.inflight.pop(feed_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("poll of feed %d crashed", feed_id, exc_info=task.exception())

    async def send_due_alerts(self) -> None:
        self.dispatcher.start(self.app.clock())  # one task per channel; returns at once

    async def send_digest(self, channel: str) -> None:
        await self.dispatcher.send_digest(channel, self.app.clock())

    async def check_feed_health(self) -> None:
        await send_health_notices(self.app)

    async def drain(self, timeout: float) -> None:
        if self.inflight:
            await asyncio.wait(list(self.inflight.values()), timeout=timeout)
        for task in self.inflight.values():
            task.cancel()
        await self.dispatcher.drain(timeout)  # a message in flight is let finish


async def run_forever(app: App, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set (SIGINT and SIGTERM set it)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with app.fetcher() as fetcher:
        jobs = _Loop(app, app.poller(fetcher), app.dispatcher())
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        tick = app.config.settings.fetch.check_every
        trigger = IntervalTrigger(seconds=tick.total_seconds(), timezone=UTC)
        for job in (jobs.start_due_polls, jobs.send_due_alerts):
            scheduler.add_job(job, trigger, max_instances=1, coalesce=True,
                              next_run_time=app.clock(), misfire_grace_time=None)
        scheduler.add_job(jobs.check_feed_health, IntervalTrigger(minutes=1, timezone=UTC),
                          max_instances=1, coalesce=True, misfire_grace_time=None)
        for ch in app.config.channels:
            if ch.mode == "digest" and ch.digest_schedule:
                scheduler.add_job(jobs.send_digest, digest_trigger(ch.digest_schedule,
                                                                   ch.timezone),
                                  args=[ch.name], max_instances=1, coalesce=True,
                                  misfire_grace_time=3600)
        scheduler.start()
        log.info("monitor running: %d feeds, %d watchlists, %d channels",
                 len(app.store.feeds()), len(app.watchlists), len(app.channels))
        try:
            await stop.wait()
        finally:
            log.info("stopping: no new polls; waiting for those in flight")
            scheduler.shutdown(wait=False)
            await jobs.drain(app.config.settings.fetch.timeout.total_seconds() + 5)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

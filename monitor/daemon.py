"""The daemon: one factory wires the parts; APScheduler (3.x, asyncio) runs the loop.

Scheduling is kept in the database: each feed has a ``next_check_at``. A tick every few
seconds claims the feeds that are due (under a lease, so several workers on PostgreSQL
share them) and starts a poll for each, so intervals survive restarts and a slow feed
never holds up the others. The tick also loads the watchlists another worker published.
A second job sends the outbox; a daily one applies retention (once across workers).
Signals, reloads, sd_notify and the web side live in ``service``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import functools
import gc
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
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
from .catalog import Catalog
from .config import Config
from .errors import AlertError, ConfigError, Problem, StoreError
from .feed_health import health_notices
from .fetch import FeedAuth, Fetcher
from .health import Heartbeat
from .match import ActorSpec, AliasSpec, Watchlist, WatchlistSpec, compile_watchlist
from .metrics import Metrics
from .once import claim_feeds, poll_every_feed
from .poll import AnalyseFn, FeedOptions, Poller, PollReport, analyse_in_thread
from .store import Store, create, migrate, schema_status
from .websub import Push, Subscriber
from .workers import ParseWorkers, default_workers

__all__ = [
    "App",
    "Jobs",
    "OnceReport",
    "build",
    "digest_trigger",
    "digests_due",
    "run_once",
    "schedule_problems",
    "send_health_notices",
    "stop_timeout",
    "worker_id",
]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

PRUNE_DELAY = timedelta(minutes=1)
"""Retention first runs this long after a start, then daily."""
HEALTH_EVERY = timedelta(minutes=1)
"""How often feed health is checked for the admin channel."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_id() -> str:
    """This process among the workers: ``host:pid:random`` (the random part tells a
    restarted process from a dead one that had the same pid, as in containers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


WATCHLISTS = "watchlists"
"""The shared setting that carries the watchlists in force to every worker."""
SETTINGS = "settings"
"""The shared setting whose version tells the workers to reload their settings files
(``shared_settings``)."""


def spec_of(definition: dict[str, Any]) -> WatchlistSpec:
    """A watchlist as ``dataclasses.asdict`` stored it in the database, back."""
    return WatchlistSpec(
        name=definition["name"], rules=tuple(definition["rules"]),
        description=definition.get("description", ""),
        actors=tuple(ActorSpec(a["name"], a["slug"],
                               tuple(AliasSpec(al["text"], al.get("case_sensitive", False))
                                     for al in a.get("aliases", ())))
                     for a in definition.get("actors", ())))


@dataclass
class App:
    """The wired daemon: configuration, store, compiled watchlists, channels."""

    config: Config
    store: Store
    watchlists: list[Watchlist]
    channels: list[Channel]
    clock: Clock = utcnow
    worker: str = field(default_factory=worker_id)
    """This process's name on its claims (feeds) and publications."""
    watchlists_version: int | None = None
    """The version of the shared watchlists these are (``Store.publish``)."""
    settings_version: int | None = None
    """The version of the shared settings this configuration is (``shared_settings``)."""

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

    def catalog(self) -> Catalog:
        """The feeds and watchlists in force, to read and edit (audited, published)."""
        return Catalog(self.store, self.clock,
                       default_interval=self.config.settings.fetch.default_interval,
                       worker=self.worker)

    def fetcher(self) -> Fetcher:
        f = self.config.settings.fetch
        return Fetcher(timeout=f.timeout.total_seconds(), max_body_bytes=f.max_body_bytes,
                       concurrency=f.concurrency, user_agent=f.user_agent,
                       allow_private_networks=f.allow_private_networks, per_host=f.per_host)

    def parse_workers(self) -> ParseWorkers:
        p = self.config.settings.parse
        return ParseWorkers(timeout=p.timeout.total_seconds(),
                            max_memory_bytes=p.max_memory_bytes,
                            workers=p.workers or default_workers(),
                            max_entries=p.max_entries)

    def poller(self, fetcher: Fetcher, analyse: AnalyseFn = analyse_in_thread,
               owner: str | None = None, prepare: Callable[[], None] | None = None) -> Poller:
        """With ``owner``, each poll's write must hold that worker's claim on the feed."""
        websub = self.config.settings.websub
        subscriber = None
        if websub.enabled and websub.callback_base:
            subscriber = Subscriber(self.store, fetcher, callback_base=websub.callback_base,
                                    lease=websub.lease)
        fetch = self.config.settings.fetch
        default = FeedOptions(None, (fetch.adaptive_floor, fetch.adaptive_ceiling)
                              if fetch.adaptive else None)
        return Poller(self.store, fetcher, self.watchlists, self.routes, self.feed_options,
                      min_rules=self.min_rules, default_options=default,
                      story_window=self.config.settings.alerts.story_window,
                      analyse=analyse, prepare=prepare,
                      owner=owner, websub=subscriber)

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

    def dispatcher(self, on_counts: Callable[[DispatchCounts], None] | None = None
                   ) -> Dispatcher:
        a = self.config.settings.alerts
        return Dispatcher(self.store, self.channels, retry_after=a.retry_after,
                          max_retry_after=a.max_retry_after, max_attempts=a.max_attempts,
                          clock=self.clock, on_counts=on_counts)


MALLOC_ARENAS = 2
"""glibc's malloc arenas for the daemon (see ``cap_malloc_arenas``)."""
_M_ARENA_MAX = -8  # glibc's <malloc.h>


def cap_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas``. glibc gives threads that allocate at
    the same time arenas of their own, up to 8 per core, and each keeps the memory its
    thread freed; the polls' store and parse threads (``asyncio.to_thread``) then hold
    several arenas' worth of freed memory. A ``MALLOC_ARENA_MAX`` in the environment
    (deploy/monitor.service sets one) is the operator's choice and is kept. Returns
    whether the cap was set here (not on another libc, nor with the variable set)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))


GC_THRESHOLD = 10_000
"""Container objects made (less those freed) between two of the cyclic collector's
young collections; Python's default is 700 (see ``settle_gc``)."""
_gc_settled = False


def settle_gc() -> None:
    """Once a process that polls (``run_once``, ``service.create_service``), its app
    built: collect startup's garbage, move every object left (the modules, the
    configuration, the app) out of the cyclic collector's sight (``gc.freeze``), and
    collect young objects every ``GC_THRESHOLD`` allocations. A full collection went
    through those 130,000 objects each time: a cold round of 1,000 feeds spent 75 ms in
    150 collections, a warm one 55 ms of its 0.32 s; now about 3 ms each. The other
    commands leave the collector as it is (the first collection costs about 50 ms).
    Frozen objects are still freed when nothing refers to them; only a cycle among
    them stays: what the first app holds when a reload replaces it (its store's
    ``dispose`` drops the story index it kept)."""
    global _gc_settled
    if _gc_settled:
        return
    _gc_settled = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def build(config: Config, clock: Clock = utcnow, *, migrate_schema: bool = True,
          seed: bool = True) -> App:
    """Migrate the database, seed it from the configuration files, compile the
    watchlists it holds and open the channels. Raises ConfigError or StoreError.

    With ``migrate_schema=False`` (a reload) the schema must already be current: a
    running process never migrates under its own feet, e.g. after the package was
    upgraded on disk; a restart does. With ``seed=False`` (a worker following another's
    reload) the files' feeds and watchlists are not applied: the database's are in
    force, and a file older than the one applied must not be pushed back out.

    Caps glibc's malloc arenas first (``cap_malloc_arenas``), before the threads start."""
    cap_malloc_arenas()
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
    if migrate_schema:
        before, after = migrate(engine)
        if before != after:
            log.info("database schema migrated from %s to %s", before or "empty", after)
    else:
        current, head = schema_status(engine)
        if current != head:
            engine.dispose()
            raise StoreError(f"the database schema is {current or 'empty'}, not {head}: "
                             "restart monitor to migrate it")
    store = Store(engine)
    worker = worker_id()
    # the database holds feeds and watchlists; the files seed it as diffs (catalog.py)
    catalog = Catalog(store, clock, default_interval=config.settings.fetch.default_interval,
                      worker=worker)
    if seed:
        catalog.seed(config.watchlists, ((f.url, f.title, config.interval(f))
                                         for f in config.feeds))
    # read and published under the catalog's lock: an edit landing meanwhile (console,
    # CLI) is never overwritten by this read, e.g. by a follower's reload
    version, specs = catalog.publish_in_force()
    watchlists = [compile_watchlist(spec) for spec in specs]
    return App(config, store, watchlists, channels, clock, worker, version)


def digest_trigger(schedule: str, timezone: str) -> CronTrigger:
    """The trigger of a digest channel; ValueError if cron does not accept it."""
    return CronTrigger.from_crontab(schedule, timezone=timezone)


def digests_due(app: App, now: datetime) -> list[str]:
    """The digest channels whose schedule fired since their oldest pending alert was
    queued: the daemon would have sent that digest (``run --once``, or a daemon that
    was down or failed to send then). A digest channel with nothing pending is not due."""
    digests = {ch.name: ch for ch in app.config.channels
               if ch.mode == "digest" and ch.digest_schedule}
    due = []
    for name, oldest in app.store.oldest_pending(digests).items():
        ch = digests[name]
        fired = digest_trigger(ch.digest_schedule or "", ch.timezone).get_next_fire_time(
            None, oldest)
        if fired is not None and fired <= now:
            due.append(name)
    return sorted(due)


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
    """Poll every active feed once, then send every alert due: each digest whose
    schedule fired since its oldest pending alert (``digests_due``), every instant
    alert pending (even one waiting out its backoff), but nothing to a channel held by
    its Retry-After. The feeds are claimed as the daemon claims them
    (``once.poll_every_feed``): several processes on one PostgreSQL share them."""
    settle_gc()
    report = OnceReport()
    async with app.fetcher() as fetcher, app.parse_workers() as workers:
        poller = app.poller(fetcher, workers.analyse, owner=app.worker,
                            prepare=workers.prepare)
        db = app.config.settings.database
        report.polls = await poll_every_feed(
            app.store, poller, app.worker, app.clock, lease=db.lease,
            limit=db.claim_batch or app.config.settings.fetch.concurrency * 3)
    await send_health_notices(app)
    dispatcher, now = app.dispatcher(), app.clock()
    digests = digests_due(app, now)
    for name in digests:
        with app.store.once(f"digest:{name}") as mine:
            if mine:
                report.dispatch.add(await dispatcher.send_digest(name, now))
    report.dispatch.add(await dispatcher.dispatch(now, retry_now=True, skip=digests))
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
    feeds = app.store.health_feeds()  # every minute: only the failing and the recovered
    for notice in health_notices(feeds, now, alerts.feed_failing_after):
        error = await send(channel, Message(notice.title, notice.body))
        if error is not None:
            log.warning("feed health notice to %s failed: %s", channel.name, error)
            break
        app.store.set_health_alerted(notice.feed_id, now if notice.failing else None)
        log.info("feed health notice sent to %s: %s", channel.name, notice.title)
        sent += 1
    return sent


class Jobs:
    """The recurring work of one configuration, on its own APScheduler: start due polls,
    send due alerts (and each digest channel's digest on its schedule), tell the admin
    channel about failing feeds, prune old items daily.

    Polls and sends run as tasks of their own, not inside the scheduler's jobs, so a slow
    feed or a paced channel never holds up the tick, and ``stop`` can wait for them.
    """

    def __init__(self, app: App, fetcher: Fetcher, *, metrics: Metrics | None = None,
                 heartbeat: Heartbeat | None = None, analyse: AnalyseFn = analyse_in_thread,
                 prepare: Callable[[], None] | None = None,
                 on_settings: Callable[[int], None] | None = None) -> None:
        self.app = app
        self.on_settings = on_settings
        """Told the version when another worker published new settings (a reload)."""
        self._settings_asked: int | None = None
        self.poller = app.poller(fetcher, analyse, owner=app.worker, prepare=prepare)
        self.dispatcher = app.dispatcher(on_counts=self._observe_dispatch)
        self.metrics = metrics
        self.heartbeat = heartbeat
        self.inflight: dict[int, asyncio.Task[PollReport]] = {}
        self.pushes: set[asyncio.Task[PollReport]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        db = app.config.settings.database
        self.limit = db.claim_batch or app.config.settings.fetch.concurrency * 3
        self.lease = db.lease
        self.polls_done = 0
        self.alerts_sent = 0
        self.feeds_active: int | None = None
        """The database's active feeds (the catalog's, not the file's), counted at the
        start and with each feed-health check."""
        self.scheduler: AsyncIOScheduler | None = None

    def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self.count_feeds()
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        tick = self.app.config.settings.fetch.check_every
        every_tick = IntervalTrigger(seconds=tick.total_seconds(), timezone=UTC)
        now = self.app.clock()
        for job in (self.start_due_polls, self.send_due_alerts):
            scheduler.add_job(job, every_tick, max_instances=1, coalesce=True,
                              next_run_time=now, misfire_grace_time=None)
        scheduler.add_job(self.prune, IntervalTrigger(days=1, timezone=UTC), max_instances=1,
                          coalesce=True, next_run_time=now + PRUNE_DELAY,
                          misfire_grace_time=None)
        scheduler.add_job(self.check_feed_health,
                          IntervalTrigger(seconds=HEALTH_EVERY.total_seconds(), timezone=UTC),
                          max_instances=1, coalesce=True, misfire_grace_time=None)
        if self.poller.websub is not None:
            scheduler.add_job(self.renew_subscriptions,
                              IntervalTrigger(seconds=HEALTH_EVERY.total_seconds(), timezone=UTC),
                              max_instances=1, coalesce=True, misfire_grace_time=None)
        for ch in self.app.config.channels:
            if ch.mode == "digest" and ch.digest_schedule:
                scheduler.add_job(self.send_digest, digest_trigger(ch.digest_schedule,
                                                                   ch.timezone),
                                  args=[ch.name], max_instances=1, coalesce=True,
                                  misfire_grace_time=3600)
        scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        scheduler.start()
        self.scheduler = scheduler

    def _submitted(self, event: JobSubmissionEvent) -> None:
        if self.metrics is not None and event.scheduled_run_times:
            lag = (datetime.now(UTC) - max(event.scheduled_run_times)).total_seconds()
            self.metrics.scheduler_lag.set(max(0.0, lag))

    async def start_due_polls(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.beat()
        if self.metrics is not None:
            self.metrics.last_tick.set_to_current_time()
        self.follow_watchlists()
        self.follow_settings()
        room = self.limit - len(self.inflight)
        if room <= 0:
            return
        now = self.app.clock()
        claimed = await claim_feeds(self.app.store, self.app.worker, now, self.lease, room)
        for feed in claimed:
            if feed.id in self.inflight:  # our own claim outlived by a slow poll
                continue
            task = asyncio.create_task(self.poller.poll(feed, now), name=f"poll {feed.url}")
            self.inflight[feed.id] = task
            task.add_done_callback(functools.partial(self._done, feed.id))

    def follow_watchlists(self) -> None:
        """Load the shared watchlists when another worker published new ones (one read
        of a version number per tick; the value only when it moved)."""
        try:
            version = self.app.store.shared_version(WATCHLISTS)
            if version is None or version == self.app.watchlists_version:
                return
            found = self.app.store.shared(WATCHLISTS)
            if found is None:
                return
            version, value = found
            watchlists = [compile_watchlist(spec_of(d)) for d in value]
        except (StoreError, KeyError, TypeError, ValueError) as exc:
            log.error("could not load the watchlists another worker published: %s", exc)
            return
        self.app.watchlists = watchlists
        self.app.watchlists_version = version
        self.poller.use_watchlists(watchlists)
        log.info("watchlists changed by another worker: now version %d (%s)", version,
                 ", ".join(w.name for w in watchlists))

    def follow_settings(self) -> None:
        """Ask for a reload of the settings files (``on_settings``) when another worker
        published new settings: one read of a version number per tick."""
        if self.on_settings is None:
            return
        try:
            version = self.app.store.shared_version(SETTINGS)
        except StoreError as exc:
            log.error("could not read the version of the shared settings: %s", exc)
            return
        if version is None or version in (self.app.settings_version, self._settings_asked):
            return
        self._settings_asked = version
        log.info("settings changed by another worker (version %d): reloading the files",
                 version)
        self.on_settings(version)

    def _done(self, feed_id: int, task: asyncio.Task[PollReport]) -> None:
        self.inflight.pop(feed_id, None)
        if task.cancelled():  # stopped mid-poll: nothing written, give the feed back now
            try:
                self.app.store.release_feeds(self.app.worker, [feed_id])
            except StoreError as exc:
                log.warning("feed %d stays claimed until its lease ends: %s", feed_id, exc)
            return
        if task.exception() is not None:
            log.error("poll of feed %d crashed", feed_id, exc_info=task.exception())
            return
        self.polls_done += 1
        if self.metrics is not None:
            self.metrics.observe_poll(task.result())

    def deliver_push(self, push: Push, wait: float = 10.0) -> bool:
        """Process content a WebSub hub pushed, at once (from a thread other than the
        loop's: the web server's). True once its task runs under these jobs, so ``stop``
        waits for it; False (the hub sends it again) when these jobs are not running, have
        stopped before the loop took it, or the loop did not answer within ``wait``."""
        loop = self._loop
        if loop is None or self.scheduler is None or loop.is_closed():
            return False
        taken: concurrent.futures.Future[bool] = concurrent.futures.Future()

        def start() -> None:
            if not taken.set_running_or_notify_cancel():  # the web thread gave up
                return
            if self.scheduler is None:  # stopped meanwhile: not ours to process
                taken.set_result(False)
                return
            task = loop.create_task(self.poller.push(push), name=f"push {push.feed_url}")
            self.pushes.add(task)
            task.add_done_callback(self.pushes.discard)
            taken.set_result(True)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop closed meanwhile
            return False
        try:
            return taken.result(timeout=wait)
        except TimeoutError:  # the loop is stuck: refused, unless it took it just now
            return not taken.cancel() and taken.result()

    async def renew_subscriptions(self) -> None:
        """Ask the hubs again for subscriptions whose lease nears its end, or whose
        request failed or was never verified."""
        if self.poller.websub is None:
            return
        with self.app.store.once("websub-renewal") as mine:
            if mine:
                try:
                    await self.poller.websub.renew_due(self.app.clock())
                except StoreError as exc:
                    log.error("could not renew the WebSub subscriptions: %s", exc)

    async def send_due_alerts(self) -> None:
        self.dispatcher.start(self.app.clock())  # a task per idle channel; returns at once

    async def send_digest(self, channel: str) -> None:
        with self.app.store.once(f"digest:{channel}") as mine:
            if mine:
                self._observe_dispatch(await self.dispatcher.send_digest(channel,
                                                                         self.app.clock()))

    def _observe_dispatch(self, counts: DispatchCounts) -> None:
        self.alerts_sent += counts.sent
        if self.metrics is not None:
            self.metrics.observe_dispatch(counts)

    async def check_feed_health(self) -> None:
        with self.app.store.once("feed-health") as mine:
            if mine:
                await send_health_notices(self.app)
        await asyncio.to_thread(self.count_feeds)

    def count_feeds(self) -> None:
        try:
            self.feeds_active = self.app.store.active_feeds()
        except StoreError as exc:
            log.warning("could not count the active feeds: %s", exc)

    async def prune(self) -> None:
        r = self.app.config.settings.retention
        now = self.app.clock()
        with self.app.store.once("retention") as mine:
            if not mine:
                log.info("retention: another worker is applying it")
                return
            pruned = await asyncio.to_thread(self.app.store.prune, now - r.items,
                                             now - r.matched_items)
        if pruned.unmatched or pruned.matched:
            log.info("retention: deleted %d unmatched and %d matched items",
                     pruned.unmatched, pruned.matched)
        if self.metrics is not None:
            self.metrics.pruned.labels("unmatched").inc(pruned.unmatched)
            self.metrics.pruned.labels("matched").inc(pruned.matched)

    async def stop(self, timeout: float) -> None:
        """Claim no new work; give polls and sends in flight ``timeout`` seconds, then
        cancel them. A cancelled poll wrote nothing (its feed stays due) or, if its one
        transaction had begun in its thread, all of it; a cancelled send leaves its alert
        pending: both are picked up by the next run."""
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        tasks: list[asyncio.Task[Any]] = [*self.inflight.values(), *self.pushes,
                                           *self.dispatcher.busy.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                log.warning("cancelling %s after %gs", task.get_name(), timeout)
                task.cancel()
            if late:
                await asyncio.wait(late)

    def status(self) -> str:
        """A one-line summary for systemd's STATUS=."""
        feeds = len(self.app.config.feeds) if self.feeds_active is None else self.feeds_active
        return (f"{feeds} feeds, {len(self.app.watchlists)} watchlists, "
                f"{len(self.app.channels)} channels; {self.polls_done} polls, "
                f"{self.alerts_sent} alerts sent; {len(self.inflight)} polls in flight")


def stop_timeout(config: Config) -> float:
    """How long polls and sends in flight may run on after a stop or a reload."""
    return config.settings.fetch.timeout.total_seconds() + 5

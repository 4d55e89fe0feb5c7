"""The daemon's lifecycle around the jobs: signals, reloads, sd_notify, /metrics, /healthz.

    start    READY=1 once the database is migrated (``build``) and the scheduler runs
    SIGHUP   RELOADING=1; a new App is built from the files (``build``, so the same
             validation as at start). Invalid: errors logged, the old App runs on.
             Valid: the old jobs stop claiming work and finish (bounded), the new start.
             READY=1 either way, with a STATUS saying which. Applied and changed:
             a new shared settings version tells the other workers (``shared_settings``).
    follow   another worker published settings: reloaded as on SIGHUP (with the shared
             watchlists), telling no one in turn.
    SIGTERM  STOPPING=1; no new work; in-flight work finishes or is cancelled within
    SIGINT   ``stop_timeout``; exit 0.
    watchdog WATCHDOG=1 every half ``WatchdogSec=`` while the scheduler ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from .config import Config, load_config
from .daemon import SETTINGS, App, Jobs, build, settle_gc, stop_timeout
from .errors import ConfigError, MonitorError
from .health import HealthReport, Heartbeat, check_health
from .metrics import Metrics
from .sdnotify import Notifier
from .shared_settings import announce, changed
from .shared_settings import follow as follow_settings
from .store import ExclusiveLock, Store, StoreStats, exclusive
from .web import WebServer
from .web.serve import ConsoleServer
from .websub import Endpoint, Push

__all__ = ["Service", "create_service"]

log = logging.getLogger(__name__)

Loader = Callable[[], App]
"""Reads the configuration files again and builds a new App (raises ConfigError)."""


class Service:
    """One daemon: the App in force, its jobs, and what talks to the outside.

    ``load`` rebuilds the App on SIGHUP; ``on_reload`` is told of each App applied (the
    command line re-applies the log settings with it).
    """

    def __init__(self, app: App, load: Loader, *, notifier: Notifier, metrics: Metrics,
                 on_reload: Callable[[App], None] | None = None,
                 lock: ExclusiveLock | None = None,
                 load_following: Callable[[Store], App] | None = None) -> None:
        self.app = app
        self.load_following = load_following
        """Like ``load``, for a reload that follows another worker's (given the store
        to read the shared watchlists from): ``shared_settings.follow``."""
        self.lock = lock
        """The SQLite lock file this daemon holds (``store.exclusive``), released at exit."""
        self.load = load
        self.notifier = notifier
        self.metrics = metrics
        self.on_reload = on_reload
        self.heartbeat = Heartbeat(app.config.settings.fetch.check_every.total_seconds())
        self.web: WebServer | None = None
        self.console: ConsoleServer | None = None
        """The web console (docs/web.md), when [web] console is set."""
        self._jobs: Jobs | None = None
        self._fetcher_exit: contextlib.AsyncExitStack | None = None
        self._reload_wanted = asyncio.Event()
        self._follow: int | None = None
        """The shared settings version another worker published, to reload for."""
        metrics.watch(_Source(self))

    # ------------------------------------------------------------ outside views

    def health(self) -> HealthReport:
        return check_health(self.heartbeat, self.app.store.stats,
                            self.app.config.settings.web.max_pending_alerts)

    def status(self) -> str:
        return self._jobs.status() if self._jobs is not None else "starting"

    # ------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set or SIGINT/SIGTERM arrives."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_wanted.set)
        watchdog: asyncio.Task[None] | None = None
        try:
            self._start_web()
            await self._start_jobs()
            log.info("monitor running: %d feeds, %d watchlists, %d channels",
                     self._feed_count(), len(self.app.watchlists), len(self.app.channels))
            self.notifier.ready(self.status())
            if self.notifier.watchdog_interval is not None:
                watchdog = asyncio.create_task(self._watchdog(self.notifier.watchdog_interval),
                                               name="watchdog")
            while not stop.is_set():
                await _first(stop, self._reload_wanted)
                if self._reload_wanted.is_set() and not stop.is_set():
                    self._reload_wanted.clear()
                    follow, self._follow = self._follow, None
                    await self.reload(follow=follow)
        finally:
            self.notifier.stopping("stopping: finishing the polls and sends in flight")
            log.info("stopping: no new polls; waiting for those in flight")
            if watchdog is not None:
                watchdog.cancel()
            await self._stop_jobs()
            if self.web is not None:
                self.web.close()
            if self.console is not None:
                self.console.close()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if self.lock is not None:
                self.lock.release()
            log.info("stopped")

    async def reload(self, *, follow: int | None = None) -> bool:
        """Apply the configuration files as they are now; False if they were refused.
        A SIGHUP that changed them tells the other workers (``shared_settings``); with
        ``follow``, the shared settings version this reload follows, nothing is told."""
        log.info("reloading the configuration")
        self.notifier.reloading()
        try:
            if follow is not None and self.load_following is not None:
                new = await asyncio.to_thread(self.load_following, self.app.store)
            else:
                new = await asyncio.to_thread(self.load)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused: %s", problem)
            return self._refused(f"{len(exc.problems)} errors")
        except MonitorError as exc:
            log.error("reload refused: %s", exc)
            return self._refused(str(exc))
        old = self.app
        for key in ("listen", "console", "session_lifetime", "secure_cookie"):
            if getattr(new.config.settings.web, key) != getattr(old.config.settings.web, key):
                log.warning("[web] %s changed; it takes effect at the next restart", key)
        await self._stop_jobs()
        self.app = new
        self._share_settings(old, follow)
        self.heartbeat.set_tick(new.config.settings.fetch.check_every.total_seconds())
        if self.on_reload is not None:
            self.on_reload(new)
        await self._start_jobs()
        old.store.dispose()
        self.metrics.reloads.labels("applied").inc()
        log.info("configuration reloaded: %d feeds, %d watchlists, %d channels",
                 self._feed_count(), len(new.watchlists), len(new.channels))
        self.notifier.ready(f"reloaded; {self.status()}")
        return True

    def _feed_count(self) -> int:
        """The database's active feeds (edited in the console too), else the file's."""
        jobs = self._jobs
        if jobs is None or jobs.feeds_active is None:
            return len(self.app.config.feeds)
        return jobs.feeds_active

    def _share_settings(self, old: App, follow: int | None) -> None:
        new = self.app
        new.settings_version = old.settings_version if follow is None else follow
        if follow is None and changed(old.config, new.config):
            try:
                new.settings_version = announce(new.store, new.worker, new.clock())
            except MonitorError as exc:
                log.error("the other workers will not follow this reload: %s", exc)

    def _follow_settings(self, version: int) -> None:
        self._follow = version
        self._reload_wanted.set()

    def _refused(self, why: str) -> bool:
        self.metrics.reloads.labels("refused").inc()
        self.notifier.ready(f"reload refused ({why}); running the previous configuration; "
                            f"{self.status()}")
        return False

    async def _start_jobs(self) -> None:
        exit_stack = contextlib.AsyncExitStack()
        fetcher = await exit_stack.enter_async_context(self.app.fetcher())
        workers = await exit_stack.enter_async_context(self.app.parse_workers())
        self._fetcher_exit = exit_stack
        self.metrics.declare((w.name for w in self.app.watchlists),
                             (c.name for c in self.app.channels))
        self._jobs = Jobs(self.app, fetcher, metrics=self.metrics, heartbeat=self.heartbeat,
                          analyse=workers.analyse, prepare=workers.prepare,
                          on_settings=self._follow_settings)
        self._jobs.start()

    async def _stop_jobs(self) -> None:
        if self._jobs is not None:
            await self._jobs.stop(stop_timeout(self.app.config))
        if self._fetcher_exit is not None:
            await self._fetcher_exit.aclose()
            self._fetcher_exit = None

    def _start_web(self) -> None:
        console = self.app.config.settings.web.console_address
        if console is not None:
            from .web.wiring import console_for  # fastapi is imported only when served

            self.console = ConsoleServer(*console, console_for(lambda: self.app))
            log.info("serving the web console on %s:%d", console[0], self.console.port)
        address = self.app.config.settings.web.address
        if address is None:
            return
        settings = self.app.config.settings
        endpoint = Endpoint(lambda: self.app.store, self._deliver_push, lambda: self.app.clock(),
                            lease=settings.websub.lease,
                            max_body_bytes=settings.fetch.max_body_bytes,
                            enabled=lambda: self.app.config.settings.websub.enabled)
        self.web = WebServer(*address, metrics=self.metrics.exposition, health=self.health,
                             websub=endpoint.handle, max_body_bytes=endpoint.max_body_bytes)
        log.info("serving /metrics and /healthz on %s:%d", address[0], self.web.port)
        if not ipaddress.ip_address(address[0]).is_loopback:
            log.warning("[web] listen is not a loopback address, and /metrics and /healthz "
                        "have no authentication: firewall the port")

    def _deliver_push(self, push: Push) -> bool:
        jobs = self._jobs
        return jobs is not None and jobs.deliver_push(push)

    async def _watchdog(self, interval: float) -> None:
        stalled = False
        while True:
            if self.heartbeat.alive():
                self.notifier.watchdog(self.status())
                stalled = False
            elif not stalled:
                log.error("the scheduler has not ticked for %.0fs: no more watchdog pings",
                          self.heartbeat.age())
                stalled = True
            await asyncio.sleep(interval)


def create_service(config: Config, environ: Mapping[str, str], *,
                   on_reload: Callable[[App], None] | None = None) -> Service:
    """The daemon as ``monitor run`` wires it: on SQLite the database's lock file taken
    (a second daemon is refused with StoreError), the App built from ``config``
    (database migrated), reloads from the same files, sd_notify from ``environ``, fresh
    metrics."""
    path = config.path
    lock = exclusive(config.settings.database.url.get_secret_value())
    try:
        app = build(config)
        settle_gc()
        app.settings_version = app.store.shared_version(SETTINGS)
        if lock is not None:  # the only daemon: claims in the file are a killed one's
            released = app.store.release_all_feeds()
            if released:
                log.info("released %d feed claims left by a daemon that was killed", released)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return Service(app, lambda: build(load_config(path), migrate_schema=False),
                   notifier=Notifier(environ), metrics=Metrics(), on_reload=on_reload,
                   lock=lock, load_following=lambda store: follow_settings(path, store))


class _Source:
    """The database gauges of /metrics, read from the App in force."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def stats(self) -> StoreStats:
        return self.service.app.store.stats()

    def channel_names(self) -> Iterable[str]:
        return [c.name for c in self.service.app.channels]

    def now(self) -> datetime:
        return self.service.app.clock()


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()

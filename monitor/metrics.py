"""Prometheus metrics (prometheus-client's one home in monitor).

``Metrics`` owns its own ``CollectorRegistry`` (never the library's global one), so two
daemons in one process, or two tests, never share counters. Counters and the fetch
histogram are fed by the daemon as polls and sends finish; the outbox and feed gauges
are read from the database at each scrape through a ``Source``, so they are true after
a restart and agree with ``monitor alerts list``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .alerts import DispatchCounts
from .errors import StoreError
from .poll import PollReport
from .store import StoreStats

__all__ = ["FETCH_BUCKETS", "Metrics", "Source"]

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)


class Source(Protocol):
    """What the scrape-time gauges read: the database snapshot and the clock."""

    def stats(self) -> StoreStats: ...

    def channel_names(self) -> Iterable[str]: ...

    def now(self) -> datetime: ...


class Metrics:
    """Every series monitor exports, on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.polls = Counter("monitor_polls", "Feed polls by outcome (ok, not_modified, error).",
                             ["outcome"], registry=r)
        self.fetch_seconds = Histogram("monitor_fetch_duration_seconds",
                                       "Time to fetch a feed: request to end of body or error.",
                                       buckets=FETCH_BUCKETS, registry=r)
        self.items = Counter("monitor_items_stored", "New items stored.", registry=r)
        self.matches = Counter("monitor_matches", "Matches stored, by watchlist.",
                               ["watchlist"], registry=r)
        self.alerts_sent = Counter("monitor_alerts_sent", "Alerts delivered, by channel.",
                                   ["channel"], registry=r)
        self.alerts_failed = Counter("monitor_alerts_failed",
                                     "Failed attempts to deliver an alert, by channel.",
                                     ["channel"], registry=r)
        self.scheduler_lag = Gauge("monitor_scheduler_lag_seconds",
                                   "How late the last scheduled job started.", registry=r)
        self.last_tick = Gauge("monitor_scheduler_last_tick_timestamp_seconds",
                               "Unix time of the scheduler's last tick.", registry=r)
        self.pruned = Counter("monitor_items_pruned", "Items deleted by retention, by kind "
                              "(unmatched, matched).", ["kind"], registry=r)
        self.reloads = Counter("monitor_config_reloads", "Configuration reloads (SIGHUP) by "
                               "result (applied, refused).", ["result"], registry=r)
        for outcome in ("ok", "not_modified", "error"):
            self.polls.labels(outcome)
        for result in ("applied", "refused"):
            self.reloads.labels(result)

    def watch(self, source: Source) -> None:
        """Read the database gauges from ``source`` at every scrape."""
        self.registry.register(_StoreCollector(source))

    def declare(self, watchlists: Iterable[str], channels: Iterable[str]) -> None:
        """Show the configured watchlists and channels at zero before anything happens."""
        for name in watchlists:
            self.matches.labels(name)
        for name in channels:
            self.alerts_sent.labels(name)
            self.alerts_failed.labels(name)

    def observe_poll(self, report: PollReport) -> None:
        outcome = "error" if not report.ok else "not_modified" if report.status == 304 else "ok"
        self.polls.labels(outcome).inc()
        self.fetch_seconds.observe(report.fetch_seconds)
        self.items.inc(report.counts.new_items)
        for watchlist, n in report.counts.by_watchlist.items():
            self.matches.labels(watchlist).inc(n)

    def observe_dispatch(self, counts: DispatchCounts) -> None:
        for channel, n in counts.sent_by_channel.items():
            self.alerts_sent.labels(channel).inc(n)
        for channel, n in counts.failed_by_channel.items():
            self.alerts_failed.labels(channel).inc(n)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape body and its content type, negotiated on the Accept header."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class _StoreCollector(Collector):
    def __init__(self, source: Source) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("monitor_database_up",
                               "1 if the database answered this scrape, else 0.")
        try:
            stats = self.source.stats()
        except StoreError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = self.source.now()
        pending = GaugeMetricFamily("monitor_alerts_pending", "Alerts not yet delivered "
                                    "(waiting or being sent), by channel.", labels=["channel"])
        age = GaugeMetricFamily("monitor_outbox_oldest_pending_age_seconds",
                                "Age of the oldest alert not yet delivered, by channel "
                                "(0 if none).",
                                labels=["channel"])
        channels = sorted(set(self.source.channel_names()) | stats.pending.keys())
        for channel in channels:
            pending.add_metric([channel], stats.pending.get(channel, 0))
            first = stats.oldest_pending.get(channel)
            age.add_metric([channel], max(0.0, (now - first).total_seconds()) if first else 0.0)
        yield pending
        yield age
        yield GaugeMetricFamily("monitor_feeds_active", "Feeds being polled.",
                                value=stats.feeds_active)
        yield GaugeMetricFamily("monitor_feeds_in_error", "Active feeds whose last poll failed.",
                                value=stats.feeds_failing)

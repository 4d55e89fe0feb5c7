"""Liveness of the daemon: the scheduler's heartbeat and the checks behind /healthz.

The heartbeat is beaten by the scheduler's tick; the watchdog pings systemd only while it
is fresh, and /healthz reports it with the database and the outbox backlog.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import StoreError
from .store import StoreStats

__all__ = ["HealthReport", "Heartbeat", "check_health"]

MIN_STALE_AFTER = 30.0
"""Seconds without a tick before the scheduler is called stalled, at the least."""


class Heartbeat:
    """When the scheduler's tick last ran, on a monotonic clock."""

    def __init__(self, tick: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stale_after = 0.0
        self.set_tick(tick)
        self.last = clock()  # starting counts as a beat: the first tick is due at once

    def set_tick(self, tick: float) -> None:
        """The scheduler ticks every ``tick`` seconds; three missed ticks (30 s at
        least) and it is stalled."""
        self.stale_after = max(3 * tick, MIN_STALE_AFTER)

    def beat(self) -> None:
        self.last = self.clock()

    def age(self) -> float:
        return self.clock() - self.last

    def alive(self) -> bool:
        return self.age() <= self.stale_after


@dataclass(frozen=True)
class HealthReport:
    checks: dict[str, str] = field(default_factory=dict)
    """check -> "ok" or what is wrong"""

    @property
    def ok(self) -> bool:
        return all(v == "ok" for v in self.checks.values())

    @property
    def reason(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.checks.items() if v != "ok")

    def json(self) -> bytes:
        return json.dumps({"status": "ok" if self.ok else "failing",
                           "checks": self.checks}).encode() + b"\n"


def check_health(heartbeat: Heartbeat, stats: Callable[[], StoreStats],
                 max_pending: int) -> HealthReport:
    checks = {}
    checks["scheduler"] = ("ok" if heartbeat.alive()
                           else f"no tick for {heartbeat.age():.0f}s")
    try:
        snapshot: StoreStats | None = stats()
        checks["database"] = "ok"
    except StoreError as exc:
        snapshot = None
        checks["database"] = str(exc)
    if snapshot is None:
        checks["outbox"] = "unknown: the database did not answer"
    elif snapshot.pending_total > max_pending:
        checks["outbox"] = (f"{snapshot.pending_total} alerts pending, more than "
                            f"{max_pending}")
    else:
        checks["outbox"] = "ok"
    return HealthReport(checks)

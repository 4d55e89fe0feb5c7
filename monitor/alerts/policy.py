"""What a channel sends now: rate limit, quiet hours. Pure: the clock is a parameter.

``plan`` takes the alerts due on one channel, the times of the messages it sent in the
last hour and ``now``, and decides which alerts go alone and which go together in one
message:

- during quiet hours nothing is sent;
- alerts that arrived during quiet hours go together, as one digest, once they end;
- past ``max_per_hour`` messages in the last hour, the alerts that do not fit roll into
  one summary message (sent as the last message the hour allows), never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo

from ..store import PendingAlert
from .render import Kind

__all__ = ["Plan", "Policy", "QuietHours", "plan"]

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class QuietHours:
    """A daily range of local time, e.g. 22:00-07:00 (crossing midnight) in ``tz``."""

    start: time
    end: time
    tz: tzinfo = UTC

    @classmethod
    def parse(cls, text: str, tz: tzinfo = UTC) -> QuietHours:
        a, b = text.split("-")
        return cls(time.fromisoformat(a), time.fromisoformat(b), tz)

    def __contains__(self, t: datetime) -> bool:
        local = t.astimezone(self.tz).time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True)
class Policy:
    max_per_hour: int | None = None
    quiet: QuietHours | None = None


@dataclass(frozen=True)
class Plan:
    singles: tuple[PendingAlert, ...] = ()
    """Alerts sent one message each, in order."""
    bundle: tuple[PendingAlert, ...] = ()
    """Alerts sent together in one message of kind ``bundle_kind``."""
    bundle_kind: Kind = "digest"
    messages: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", len(self.singles) + bool(self.bundle))


def plan(policy: Policy, due: Sequence[PendingAlert], sent: Sequence[datetime],
         now: datetime) -> Plan:
    """Which of ``due`` to send at ``now``; ``sent``: when the channel's recent messages
    went."""
    quiet = policy.quiet
    if not due or (quiet is not None and now in quiet):
        return Plan()
    held = tuple(a for a in due if quiet is not None and a.created_at in quiet)
    rest = tuple(a for a in due if a not in held)
    if policy.max_per_hour is None:
        return Plan(rest, held, "digest")
    budget = policy.max_per_hour - sum(1 for t in sent if t > now - HOUR)
    if budget <= 0:
        return Plan()
    if len(rest) + bool(held) <= budget:
        return Plan(rest, held, "digest")
    keep = budget - 1
    return Plan(rest[:keep], held + rest[keep:], "summary")

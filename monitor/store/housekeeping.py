"""Queries for operations: the numbers behind /metrics and /healthz, and retention.

Kept apart from ``repo`` (the daemon's working queries); ``Store`` exposes both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import StoreError
from .models import Feed, Item, Match, Outbox

__all__ = ["Pruned", "StoreStats", "ping", "prune", "stats"]


@dataclass(frozen=True)
class StoreStats:
    """A snapshot of the database for metrics and health."""

    pending: dict[str, int] = field(default_factory=dict)
    """channel -> alerts not yet delivered (waiting, or being sent)"""
    oldest_pending: dict[str, datetime] = field(default_factory=dict)
    """channel -> when its oldest waiting alert was created"""
    feeds_active: int = 0
    feeds_failing: int = 0
    """active feeds whose last poll failed"""

    @property
    def pending_total(self) -> int:
        return sum(self.pending.values())


UNSENT = ("pending", "sending")
"""Outbox states of an alert not yet delivered: waiting, or claimed by a send that is in
flight (or died; its lease will expire)."""


@dataclass(frozen=True)
class Pruned:
    unmatched: int = 0
    matched: int = 0


def ping(engine: Engine) -> None:
    """Raise StoreError unless the database answers."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot reach the database: {type(exc).__name__}") from exc


def active_feeds(engine: Engine) -> int:
    """How many feeds are polled (not paused, not removed)."""
    try:
        with Session(engine) as s:
            return s.scalar(select(func.count()).select_from(Feed)
                            .where(Feed.active.is_(True))) or 0
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the database: {type(exc).__name__}") from exc


def stats(engine: Engine) -> StoreStats:
    try:
        with Session(engine) as s:
            rows = s.execute(select(Outbox.channel, func.count(), func.min(Outbox.created_at))
                             .where(Outbox.status.in_(UNSENT)).group_by(Outbox.channel))
            pending, oldest = {}, {}
            for channel, n, first in rows:
                pending[channel], oldest[channel] = n, first
            active = s.scalar(select(func.count()).select_from(Feed)
                              .where(Feed.active.is_(True))) or 0
            failing = s.scalar(select(func.count()).select_from(Feed)
                               .where(Feed.active.is_(True), Feed.consecutive_failures > 0)) or 0
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the database: {type(exc).__name__}") from exc
    return StoreStats(pending, oldest, active, failing)


def prune(engine: Engine, unmatched_before: datetime, matched_before: datetime) -> Pruned:
    """Delete items their feed last served before the cutoffs: unmatched ones before
    ``unmatched_before``; matched ones (with their matches and alerts) before
    ``matched_before``, unless an alert of theirs is still pending or being sent. An
    item its feed
    still serves is never deleted, so it can never be stored (and alerted on) again."""
    matched = select(Match.id).where(Match.item_id == Item.id).exists()
    pending = (select(Outbox.id).join(Match, Outbox.match_id == Match.id)
               .where(Match.item_id == Item.id, Outbox.status.in_(UNSENT)).exists())
    try:
        with Session(engine) as s, s.begin():
            a = s.execute(delete(Item).where(Item.last_seen_at < unmatched_before, ~matched)
                          .execution_options(synchronize_session=False))
            b = s.execute(delete(Item).where(Item.last_seen_at < matched_before, matched,
                                             ~pending)
                          .execution_options(synchronize_session=False))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot prune old items: {type(exc).__name__}") from exc
    # a DELETE returns a CursorResult, whose rowcount Result's type does not promise
    return Pruned(a.rowcount, b.rowcount)  # type: ignore[attr-defined]

"""The alert outbox: claiming rows under a lease, marking them sent or failed, dead
letters and their retry. Each method is one transaction.

A row's life: ``pending`` → ``sending`` (claimed: ``attempts`` counted, ``lease_until``
set) → ``sent``; or back to ``pending`` with its error and a later ``next_attempt_at``;
or ``dead`` once it has used every attempt. A ``sending`` row whose lease has expired
belonged to a process that died mid-send: it is due again (at-least-once).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import ChannelHold, Feed, Item, Match, Outbox, Watchlist

__all__ = ["OutboxStore", "PendingAlert", "Source"]


@dataclass(frozen=True)
class Source:
    """A feed that carried a story."""

    feed_title: str | None
    feed_url: str
    link: str | None


@dataclass(frozen=True)
class PendingAlert:
    """An outbox row with everything needed to render its message."""

    id: int
    channel: str
    attempts: int
    watchlist: str
    rules: list[dict[str, Any]]
    snippet: str
    marks: list[list[int]]
    title: str
    link: str | None
    published_at: datetime | None
    feed_title: str | None
    feed_url: str
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None
    status: str = "pending"
    errors: tuple[dict[str, str], ...] = ()
    story_id: int | None = None
    also: tuple[Source, ...] = ()
    """The other feeds that carried the same story."""


class OutboxStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def pending_alerts(self, due_at: datetime | None, limit: int = 10_000,
                       channels: Iterable[str] | None = None) -> list[PendingAlert]:
        """Rows to send, oldest first: pending rows due at ``due_at`` (every pending row
        when it is None), and ``sending`` rows whose lease expired by then."""
        if due_at is None:
            cond = Outbox.status == "pending"
        else:
            cond = or_(and_(Outbox.status == "pending", Outbox.next_attempt_at <= due_at),
                       and_(Outbox.status == "sending", Outbox.lease_until <= due_at))
        return self._alerts(cond, limit, channels)

    def alerts(self, statuses: Sequence[str], limit: int = 10_000) -> list[PendingAlert]:
        """Rows in any of ``statuses`` (e.g. ``["dead"]``), oldest first."""
        return self._alerts(Outbox.status.in_(list(statuses)), limit, None)

    def _alerts(self, cond: Any, limit: int, channels: Iterable[str] | None) -> list[PendingAlert]:
        with self._session() as s:
            query = (
                select(Outbox, Match, Item, Feed, Watchlist.name)
                .join(Match, Outbox.match_id == Match.id)
                .join(Item, Match.item_id == Item.id)
                .join(Feed, Item.feed_id == Feed.id)
                .join(Watchlist, Match.watchlist_id == Watchlist.id)
                .where(cond)
                .order_by(Outbox.id)
                .limit(limit)
            )
            if channels is not None:
                query = query.where(Outbox.channel.in_(list(channels)))
            rows = list(s.execute(query))
            also = _sources(s, {i.story_id for _, _, i, _, _ in rows if i.story_id})
            return [
                PendingAlert(
                    id=o.id, channel=o.channel, attempts=o.attempts, watchlist=wl,
                    rules=m.rules, snippet=m.snippet, marks=m.marks, title=i.title,
                    link=i.link, published_at=i.published_at, feed_title=f.title,
                    feed_url=f.url, created_at=o.created_at,
                    next_attempt_at=o.next_attempt_at, last_error=o.last_error,
                    status=o.status, errors=tuple(o.errors or ()), story_id=i.story_id,
                    also=tuple(src for item_id, src in also.get(i.story_id or -1, [])
                               if item_id != i.id and src.feed_url != f.url),
                )
                for o, m, i, f, wl in rows
            ]

    def claim(self, ids: Iterable[int], now: datetime, lease_until: datetime) -> list[int]:
        """Take the rows for sending: those still pending, or sending under an expired
        lease. Counts the attempt before it is made, so a message that kills the process
        still runs out of attempts. Returns the ids claimed: with several workers, each
        row goes to one of them."""
        ids = list(ids)
        claimable = or_(Outbox.status == "pending",
                        and_(Outbox.status == "sending", Outbox.lease_until <= now))
        claim = dict(status="sending", lease_until=lease_until, attempts=Outbox.attempts + 1)
        with self._session() as s, s.begin():
            if self.engine.dialect.name == "postgresql":
                # several workers: a row another worker is claiming right now is
                # skipped, not waited for; the rows locked here are ours to update
                free = set(s.scalars(select(Outbox.id).where(Outbox.id.in_(ids), claimable)
                                     .with_for_update(skip_locked=True)))
                if free:
                    s.execute(update(Outbox).where(Outbox.id.in_(free)).values(**claim))
                return [i for i in ids if i in free]
            # SQLite: one writer at a time; each conditional UPDATE says if it took the row
            claimed = []
            for outbox_id in ids:
                result = s.execute(update(Outbox).where(Outbox.id == outbox_id, claimable)
                                   .values(**claim))
                if result.rowcount:  # type: ignore[attr-defined]
                    claimed.append(outbox_id)
            return claimed

    def mark_sent(self, ids: Iterable[int], now: datetime, batch: str | None = None) -> None:
        ids = list(ids)
        with self._session() as s, s.begin():
            s.execute(update(Outbox).where(Outbox.id.in_(ids))
                      .values(status="sent", sent_at=now, last_error=None, lease_until=None,
                              batch=batch or f"a{min(ids)}"))

    def mark_failed(self, ids: Iterable[int], error: str, now: datetime, retry_at: datetime,
                    max_attempts: int | None = None) -> list[int]:
        """Record the failure on each row; a row that has used ``max_attempts`` becomes a
        dead letter. Returns the ids now dead."""
        dead = []
        with self._session() as s, s.begin():
            for row in s.scalars(select(Outbox).where(Outbox.id.in_(list(ids)))):
                row.errors = [*(row.errors or []), {"at": now.isoformat(), "error": error}]
                row.last_error = error
                row.lease_until = None
                row.next_attempt_at = retry_at
                if max_attempts is not None and row.attempts >= max_attempts:
                    row.status = "dead"
                    dead.append(row.id)
                else:
                    row.status = "pending"
        return dead

    def retry(self, ids: Iterable[int] | None, now: datetime) -> int:
        """Dead letters (and waiting rows) back to pending, due now, with a fresh count
        of attempts; their error history stays. ``None``: every dead letter."""
        query = update(Outbox).values(status="pending", attempts=0, next_attempt_at=now,
                                      lease_until=None)
        if ids is None:
            query = query.where(Outbox.status == "dead")
        else:
            query = query.where(Outbox.id.in_(list(ids)), Outbox.status.in_(["dead", "pending"]))
        with self._session() as s, s.begin():
            return int(s.execute(query).rowcount)  # type: ignore[attr-defined]

    def sent_since(self, channel: str, since: datetime) -> list[datetime]:
        """When each message (a batch of rows) went to ``channel`` since ``since``."""
        with self._session() as s:
            rows = s.execute(select(func.min(Outbox.sent_at))
                             .where(Outbox.channel == channel, Outbox.status == "sent",
                                    Outbox.sent_at >= since)
                             .group_by(Outbox.batch))
            return sorted(t for (t,) in rows if t is not None)

    def hold_channel(self, channel: str, until: datetime, reason: str) -> datetime:
        """Send nothing to ``channel`` before ``until`` (its Retry-After): the hold is
        kept (a later hold never shortens an earlier one) and every pending row of the
        channel waits until then. Returns the hold in force."""
        for attempt in range(2):  # two workers may insert the first hold at once
            try:
                with self._session() as s, s.begin():
                    hold = s.get(ChannelHold, channel, with_for_update=True)
                    if hold is None:
                        hold = ChannelHold(channel=channel, until=until, reason=reason)
                        s.add(hold)
                    elif hold.until < until:
                        hold.until, hold.reason = until, reason
                    s.execute(update(Outbox).where(Outbox.channel == channel,
                                                   Outbox.status == "pending",
                                                   Outbox.next_attempt_at < hold.until)
                              .values(next_attempt_at=hold.until))
                    return hold.until
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def channel_holds(self, now: datetime) -> dict[str, datetime]:
        """channel -> the time before which nothing may be sent to it, for the holds
        still in force at ``now`` (one small read per round; ended holds stay, one row
        per channel, and are simply not in force)."""
        with self._session() as s:
            return {c: u for c, u in s.execute(select(ChannelHold.channel, ChannelHold.until)
                                               .where(ChannelHold.until > now))}

    def oldest_pending(self, channels: Iterable[str]) -> dict[str, datetime]:
        """channel -> when its oldest pending row was queued."""
        with self._session() as s:
            rows = s.execute(select(Outbox.channel, func.min(Outbox.created_at))
                             .where(Outbox.status == "pending",
                                    Outbox.channel.in_(list(channels)))
                             .group_by(Outbox.channel))
            return {c: t for c, t in rows if t is not None}

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        """(channel, status) -> number of rows."""
        with self._session() as s:
            rows = s.execute(select(Outbox.channel, Outbox.status, func.count())
                             .group_by(Outbox.channel, Outbox.status))
            return {(c, st): n for c, st, n in rows}


def _sources(s: Session, stories: set[int]) -> dict[int, list[tuple[int, Source]]]:
    """story id -> (item id, source) of every item of the story, first seen first."""
    out: dict[int, list[tuple[int, Source]]] = {}
    if not stories:
        return out
    query = (select(Item.id, Item.story_id, Item.link, Feed.title, Feed.url)
             .join(Feed, Item.feed_id == Feed.id)
             .where(Item.story_id.in_(list(stories))).order_by(Item.id))
    for item_id, story, link, title, url in s.execute(query):
        if story is not None:
            out.setdefault(story, []).append((item_id, Source(title, url, link)))
    return out

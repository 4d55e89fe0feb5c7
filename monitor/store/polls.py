"""Writing many polls in one transaction: each feed's fetch state, its new items, their
matches and outbox rows, and the time the feed last served each key.

A round of cold polls then costs a commit, a read of the claims, an ``executemany`` of
the states, one read of the known keys and one ``INSERT`` of the new items per batch,
not a transaction and half a dozen statements per poll. A batch stores what its polls
would store written one after the other, in its order: a poll whose claim was taken
over stores nothing (its own StoreError), the others go on; a database error refuses
them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..analyse import NewItem, NewMatch
from ..errors import StoreError
from .items import BatchItems
from .states import FetchState, lock_feeds, refresh_served, write_states

__all__ = ["NewItem", "NewMatch", "PollCounts", "PollWrite", "record_polls"]


@dataclass
class PollCounts:
    new_items: int = 0
    matches: int = 0
    alerts: int = 0
    by_watchlist: dict[str, int] = field(default_factory=dict)
    """watchlist name -> matches stored by this poll."""


@dataclass(frozen=True)
class PollWrite:
    """One poll for ``record_polls``: ``Store.record_poll``'s arguments."""

    feed_id: int
    state: FetchState | None
    """None: content a WebSub hub pushed, which leaves the feed's fetch state alone."""
    items: Sequence[NewItem] = ()
    seen: Sequence[str] = ()
    owner: str | None = None
    pushed_at: datetime | None = None
    """When the push (no ``state``) arrived."""

    @property
    def at(self) -> datetime:
        """The poll's time: its items' ``fetched_at`` and ``last_seen_at``."""
        if self.state is not None:
            return self.state.checked_at
        assert self.pushed_at is not None, "a write without a state is a push: give its time"
        return self.pushed_at


def record_polls(engine: Engine, writes: Sequence[PollWrite],
                 story_window: timedelta) -> list[PollCounts | StoreError]:
    """See ``Store.record_polls``. The feeds' rows are locked (PostgreSQL) in id order,
    so two workers' batches, or a batch and a push, never store one item twice."""
    results: list[PollCounts | StoreError] = []
    if not writes:
        return results
    ids = sorted({w.feed_id for w in writes})
    try:
        with engine.begin() as conn:
            owners = lock_feeds(conn, ids)
            accepted: list[tuple[PollWrite, PollCounts]] = []
            for w in writes:
                error = _refusal(w, owners)
                if error is None:
                    counts = PollCounts()
                    accepted.append((w, counts))
                    results.append(counts)
                else:
                    results.append(error)
            items = BatchItems(conn, story_window,
                               min((w.at for w, _ in accepted), default=_NEVER) - story_window)
            for segment in _segments(accepted):
                write_states(conn, [(w.feed_id, w.state, w.owner) for w, _ in segment
                                    if w.state is not None])
                refreshed: dict[datetime, list[int]] = {}
                for w, _ in segment:
                    if w.state is not None and w.state.status == 304:
                        refreshed.setdefault(w.state.checked_at, []).append(w.feed_id)
                for at, feed_ids in refreshed.items():
                    refresh_served(conn, feed_ids, at)
                items.write(segment)
    except SQLAlchemyError as exc:
        what = (f"the poll of feed {writes[0].feed_id}" if len(writes) == 1
                else f"the polls of {len(ids)} feeds")
        return [StoreError(f"cannot save {what}: {exc}")] * len(writes)
    return results


_NEVER = datetime.max.replace(tzinfo=UTC)


def _refusal(w: PollWrite, owners: dict[int, str | None]) -> StoreError | None:
    """Why the poll may not be stored (None: it may), and the claim it ends."""
    if w.feed_id not in owners:
        return StoreError(f"feed {w.feed_id} no longer exists")
    if w.owner is not None:
        if owners[w.feed_id] != w.owner:
            return StoreError(f"feed {w.feed_id} was taken over by another worker after "
                              "this one's lease expired; its poll is dropped")
        owners[w.feed_id] = None  # the write ends the claim
    return None


def _segments(polls: list[tuple[PollWrite, PollCounts]]
              ) -> list[list[tuple[PollWrite, PollCounts]]]:
    """The polls in runs where no feed comes twice: each run is written whole (states,
    known keys, items) before the next, so a feed's second poll sees its first's items."""
    runs: list[list[tuple[PollWrite, PollCounts]]] = [[]]
    feeds: set[int] = set()
    for poll in polls:
        if poll[0].feed_id in feeds:
            runs.append([])
            feeds.clear()
        runs[-1].append(poll)
        feeds.add(poll[0].feed_id)
    return runs

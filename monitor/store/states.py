"""The fetch state a poll leaves on its feed, and the writing of many such states in one
transaction: a round of 304s (or of failures) costs one commit, not one per feed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from ..errors import StoreError
from .models import Feed, Item

__all__ = ["FetchState", "StateWrite", "apply_state", "record_states"]


@dataclass(frozen=True)
class FetchState:
    """The outcome of one poll of a feed, as the feed row keeps it."""

    checked_at: datetime
    next_check_at: datetime
    ok: bool
    status: int | None = None
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    title: str | None = None
    moved_to: str | None = None
    """The feed's new URL after a permanent redirect."""



@dataclass(frozen=True)
class StateWrite:
    """One poll's state for ``record_states``; ``owner`` as in ``Store.record_poll``."""

    feed_id: int
    state: FetchState
    owner: str | None = None


def record_states(engine: Engine, writes: Sequence[StateWrite]) -> list[StoreError | None]:
    """See ``Store.record_states``."""
    errors: list[StoreError | None] = [None] * len(writes)
    if not writes:
        return errors
    ids = sorted({w.feed_id for w in writes})
    locked = any(w.owner is not None for w in writes)
    try:
        with Session(engine, expire_on_commit=False) as s, s.begin():
            query = select(Feed).where(Feed.id.in_(ids)).order_by(Feed.id)
            feeds = {f.id: f for f in s.scalars(query.with_for_update() if locked else query)}
            refreshed: dict[datetime, list[int]] = {}
            for n, w in enumerate(writes):
                feed = feeds.get(w.feed_id)
                if feed is None:
                    errors[n] = StoreError(f"feed {w.feed_id} no longer exists")
                    continue
                if w.owner is not None:
                    if feed.lease_owner != w.owner:
                        errors[n] = StoreError(
                            f"feed {w.feed_id} was taken over by another worker after this "
                            "one's lease expired; its poll is dropped")
                        continue
                    feed.lease_owner, feed.lease_until = None, None
                apply_state(feed, w.state)
                if w.state.status == 304:
                    refreshed.setdefault(w.state.checked_at, []).append(w.feed_id)
            for at, feed_ids in refreshed.items():
                # the items of each feed's last response are still served (record_poll)
                latest = aliased(Item)
                last = (select(func.max(latest.last_seen_at))
                        .where(latest.feed_id == Item.feed_id).scalar_subquery())
                for i in range(0, len(feed_ids), 500):
                    s.execute(update(Item)
                              .where(Item.feed_id.in_(feed_ids[i : i + 500]),
                                     Item.last_seen_at == last)
                              .values(last_seen_at=at))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot save the polls of {len(ids)} feeds: {exc}") from exc
    return errors


def apply_state(feed: Feed, st: FetchState) -> None:
    feed.last_checked_at = st.checked_at
    feed.next_check_at = st.next_check_at
    feed.last_status = st.status
    if st.moved_to and st.moved_to != (feed.fetch_url or feed.url):
        feed.fetch_url = None if st.moved_to == feed.url else st.moved_to
    if st.status == 410:
        feed.gone_at = feed.gone_at or st.checked_at
    elif st.ok:
        feed.gone_at = None
    if st.ok:
        feed.last_success_at = st.checked_at
        feed.last_error = None
        feed.consecutive_failures = 0
        if st.etag is not None or st.last_modified is not None or st.status == 200:
            feed.etag, feed.last_modified = st.etag, st.last_modified
        if st.title and not feed.title:
            feed.title = st.title
    else:
        feed.last_error = st.error
        feed.consecutive_failures += 1

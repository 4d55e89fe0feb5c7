"""The fetch state a poll leaves on its feed, and the writing of many such states in one
statement (``polls.record_polls``): a round of 304s (or of failures) costs one commit,
not one per feed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Connection,
    Integer,
    String,
    Table,
    Text,
    Update,
    and_,
    bindparam,
    case,
    func,
    literal,
    null,
    select,
    update,
)

from .models import Feed, Item, UTCDateTime

__all__ = ["FetchState", "StateWrite", "lock_feeds", "refresh_served", "write_states"]

_CHUNK = 500
"""Ids per ``IN (…)``: well under SQLite's and PostgreSQL's parameter limits."""
SEEN_SLACK = timedelta(hours=1)
"""A 304 moves the ``last_seen_at`` of the feed's last response's items (retention counts
from it) only once it is this old: a feed polled every 15 minutes rewrites its items
once an hour, not at every poll. Retention then counts from up to an hour before the
last 304: it can reach an item its feed still serves only if it is shorter than an hour
plus the feed's interval (it is 30 days by default)."""


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


_FEEDS = cast(Table, Feed.__table__)
_ITEMS = cast(Table, Item.__table__)


def _state_update(owned: bool) -> Update:
    """One poll's state as an UPDATE of its feed row, for ``executemany``: each new
    value is computed by the database from the row's own, so nothing read before the
    write can be stale. ``owned``: only while the poll's worker holds the claim, which
    the write ends."""
    c = _FEEDS.c
    ok = bindparam("s_ok", type_=Boolean())
    checked = bindparam("s_checked", type_=UTCDateTime())
    moved = bindparam("s_moved", type_=Text())
    validators = bindparam("s_validators", type_=Boolean())
    values: dict[str, Any] = {
        "last_checked_at": checked,
        "next_check_at": bindparam("s_next", type_=UTCDateTime()),
        "last_status": bindparam("s_status", type_=Integer()),
        "fetch_url": case((moved.is_(None), c.fetch_url), (moved == c.url, null()),
                          else_=moved),
        "gone_at": case((bindparam("s_gone", type_=Boolean()), func.coalesce(c.gone_at, checked)),
                        (ok, null()), else_=c.gone_at),
        "last_success_at": case((ok, checked), else_=c.last_success_at),
        "last_error": bindparam("s_error", type_=Text()),
        "consecutive_failures": case((ok, literal(0)), else_=c.consecutive_failures + 1),
        "etag": case((validators, bindparam("s_etag", type_=Text())), else_=c.etag),
        "last_modified": case((validators, bindparam("s_last_modified", type_=Text())),
                              else_=c.last_modified),
        # a title only where the feed has none: NULLIF makes '' none too, as in Python
        "title": func.coalesce(func.nullif(c.title, ""), bindparam("s_title", type_=Text()),
                               c.title),
    }
    where = c.id == bindparam("s_id", type_=Integer())
    if owned:
        values.update(lease_owner=null(), lease_until=null())
        where = and_(where, c.lease_owner == bindparam("s_owner", type_=String()))
    return update(_FEEDS).where(where).values(values)


def _params(feed_id: int, st: FetchState, owner: str | None) -> dict[str, Any]:
    return {
        "s_id": feed_id, "s_owner": owner, "s_ok": st.ok, "s_checked": st.checked_at,
        "s_next": st.next_check_at, "s_status": st.status, "s_moved": st.moved_to or None,
        "s_gone": st.status == 410,
        "s_error": None if st.ok else st.error,
        "s_validators": st.ok and (st.etag is not None or st.last_modified is not None
                                   or st.status == 200),
        "s_etag": st.etag, "s_last_modified": st.last_modified,
        "s_title": (st.title or None) if st.ok else None,
    }


_OWNED, _FREE = _state_update(True), _state_update(False)


def lock_feeds(conn: Connection, ids: Sequence[int]) -> dict[int, str | None]:
    """Each of the feeds ``ids`` that exists, with the worker that holds its claim;
    their rows locked until the transaction ends (PostgreSQL), in id order, so two
    batches never wait on each other's locks."""
    ids = sorted(ids)
    owners: dict[int, str | None] = {}
    for i in range(0, len(ids), _CHUNK):
        owners.update((n, o) for n, o in conn.execute(
            select(_FEEDS.c.id, _FEEDS.c.lease_owner)
            .where(_FEEDS.c.id.in_(ids[i : i + _CHUNK])).order_by(_FEEDS.c.id)
            .with_for_update()))
    return owners


def write_states(conn: Connection, writes: Sequence[tuple[int, FetchState, str | None]]
                 ) -> None:
    """The fetch states (feed id, state, owner) of polls whose claims were checked
    (``lock_feeds``): one ``executemany`` for the claimed feeds, one for the others."""
    owned = [_params(feed_id, st, owner) for feed_id, st, owner in writes if owner is not None]
    free = [_params(feed_id, st, None) for feed_id, st, owner in writes if owner is None]
    for statement, params in ((_OWNED, owned), (_FREE, free)):
        if params:
            conn.execute(statement, params)


def refresh_served(conn: Connection, feed_ids: Sequence[int], at: datetime) -> None:
    """After a 304 at ``at``: the items of each feed's last response are still served,
    so their ``last_seen_at`` (retention counts from it) moves to ``at``, once it is
    ``SEEN_SLACK`` old."""
    latest = _ITEMS.alias("latest")
    last = (select(func.max(latest.c.last_seen_at))
            .where(latest.c.feed_id == _ITEMS.c.feed_id).scalar_subquery())
    for i in range(0, len(feed_ids), _CHUNK):
        conn.execute(update(_ITEMS)
                     .where(_ITEMS.c.feed_id.in_(feed_ids[i : i + _CHUNK]),
                            _ITEMS.c.last_seen_at == last,
                            _ITEMS.c.last_seen_at <= at - SEEN_SLACK)
                     .values(last_seen_at=at))

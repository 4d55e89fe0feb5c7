"""WebSub subscriptions (``monitor/websub.py`` speaks the protocol): one per feed, kept
so that a restart knows its hubs, its callbacks and their secrets. Each method is one
transaction.

A subscription's life: ``request`` makes it ``pending`` (a new token and secret when the
hub or topic is new; the same ones on a renewal, so pushes signed with the secret in
force keep verifying) → the hub's verification GET makes it ``active`` (``verify``) →
``renew_at`` comes round before the lease ends and it is requested again. A hub that
refuses makes it ``failed`` or ``denied``, retried at ``renew_at``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import StoreError
from .models import Feed
from .models import Subscription as _Row

__all__ = ["SubscriptionRow", "SubscriptionStore"]


@dataclass(frozen=True)
class SubscriptionRow:
    id: int
    feed_id: int
    feed_url: str
    token: str
    hub: str
    topic: str
    secret: str = field(repr=False)
    state: str
    requested_at: datetime
    renew_at: datetime
    failures: int = 0
    lease_seconds: int | None = None
    verified_at: datetime | None = None
    expires_at: datetime | None = None
    last_error: str | None = None
    last_push_at: datetime | None = None
    feed_active: bool = True


class SubscriptionStore:
    engine: Engine

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def subscription(self, *, feed_id: int | None = None,
                     token: str | None = None) -> SubscriptionRow | None:
        """The subscription of a feed, or the one a callback token names."""
        query = select(_Row, Feed).join(Feed, _Row.feed_id == Feed.id)
        query = query.where(_Row.feed_id == feed_id) if token is None else query.where(
            _Row.token == token)
        try:
            with self._session() as s:
                found = s.execute(query).first()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the WebSub subscriptions: {exc}") from exc
        return None if found is None else _row(*found)

    def subscriptions(self) -> list[SubscriptionRow]:
        with self._session() as s:
            return [_row(r, f) for r, f in s.execute(
                select(_Row, Feed).join(Feed, _Row.feed_id == Feed.id).order_by(Feed.url))]

    def due_subscriptions(self, now: datetime, limit: int = 100) -> list[SubscriptionRow]:
        """Subscriptions of active feeds to request again now (renewal or retry)."""
        with self._session() as s:
            return [_row(r, f) for r, f in s.execute(
                select(_Row, Feed).join(Feed, _Row.feed_id == Feed.id)
                .where(_Row.renew_at <= now, Feed.active.is_(True))
                .order_by(_Row.renew_at).limit(limit))]

    def request_subscription(self, feed_id: int, hub: str, topic: str, now: datetime,
                             retry_at: datetime) -> SubscriptionRow:
        """Record that the hub is being asked (``pending``), before it is asked: a hub
        may verify before it answers. A new hub or topic gets a new token and secret."""
        try:
            with self._session() as s, s.begin():
                row = s.scalar(select(_Row).where(_Row.feed_id == feed_id))
                if row is None or (row.hub, row.topic) != (hub, topic):
                    if row is not None:
                        s.delete(row)
                        s.flush()
                    row = _Row(feed_id=feed_id, token=secrets.token_urlsafe(24), hub=hub,
                               topic=topic, secret=secrets.token_hex(32), failures=0)
                    s.add(row)
                row.state = "pending"
                row.requested_at = now
                row.renew_at = retry_at
                s.flush()
                feed = s.get(Feed, feed_id)
                if feed is None:
                    raise StoreError(f"feed {feed_id} no longer exists")
                return _row(row, feed)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save the WebSub subscription of feed {feed_id}: "
                             f"{exc}") from exc

    def verify_subscription(self, token: str, topic: str, lease: timedelta, now: datetime,
                            renew_at: datetime) -> bool:
        """The hub's verification of a subscribe request: True (and ``active``) only if
        the subscription named by ``token`` is pending and is for ``topic``."""
        granted = int(lease.total_seconds())
        try:
            with self._session() as s, s.begin():
                done = s.execute(
                    update(_Row)
                    .where(_Row.token == token, _Row.state == "pending", _Row.topic == topic)
                    .values(state="active", verified_at=now, lease_seconds=granted,
                            expires_at=now + lease, renew_at=renew_at, failures=0,
                            last_error=None))
                return bool(done.rowcount)  # type: ignore[attr-defined]  # a CursorResult
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save a WebSub verification: {exc}") from exc

    def subscription_failed(self, token: str, error: str, retry_at: datetime, *,
                            state: str = "failed") -> None:
        """The hub refused (``failed``) or denied (``denied``) the subscription."""
        try:
            with self._session() as s, s.begin():
                s.execute(update(_Row).where(_Row.token == token).values(
                    state=state, last_error=error[:500], renew_at=retry_at,
                    failures=_Row.failures + 1))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save a WebSub failure: {exc}") from exc

    def subscription_pushed(self, token: str, now: datetime) -> None:
        try:
            with self._session() as s, s.begin():
                s.execute(update(_Row).where(_Row.token == token).values(last_push_at=now))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot record a WebSub push: {type(exc).__name__}") from exc


def _row(r: _Row, f: Feed) -> SubscriptionRow:
    return SubscriptionRow(
        id=r.id, feed_id=r.feed_id, feed_url=f.url, token=r.token, hub=r.hub, topic=r.topic,
        secret=r.secret, state=r.state, requested_at=r.requested_at, renew_at=r.renew_at,
        failures=r.failures, lease_seconds=r.lease_seconds, verified_at=r.verified_at,
        expires_at=r.expires_at, last_error=r.last_error, last_push_at=r.last_push_at,
        feed_active=f.active)

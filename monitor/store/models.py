"""SQLAlchemy models. The schema itself is defined by the Alembic migrations beside this
module; a test checks that the two agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Audit",
    "Base",
    "ChannelHold",
    "Feed",
    "Item",
    "Match",
    "Outbox",
    "SessionRow",
    "SharedConfig",
    "Subscription",
    "UTCDateTime",
    "User",
    "Watchlist",
    "sqlite_text",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend: stored as naive UTC, read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def sqlite_text(value: datetime | None) -> str | None:
    """What ``UTCDateTime``'s bind processor on SQLite makes of ``value`` (naive UTC as
    DATETIME's text, ``2026-01-02 03:04:05.000006``), in one call, not four: a cold
    poll binds one for each new item."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware one")
    # In UTC, isoformat ends in "+00:00" after 26 characters (years have four digits).
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Feed(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    """The URL as configured: the feed's identity."""
    fetch_url: Mapped[str | None] = mapped_column(Text)
    """Where the feed now lives, after permanent redirects (None: ``url``)."""
    gone_at: Mapped[datetime | None]
    """When the feed first answered 410 Gone (None: not gone)."""
    health_alerted_at: Mapped[datetime | None]
    """When the admin channel was told the feed is failing (None: not alerted)."""
    title: Mapped[str | None] = mapped_column(Text)
    interval_seconds: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # fetch state
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_checked_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    # the claim of a worker polling the feed (several workers on PostgreSQL)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    """The worker polling the feed now (None: nobody)."""
    lease_until: Mapped[datetime | None]
    """When that claim expires and another worker may take the feed over."""
    removed_at: Mapped[datetime | None]
    """When the feed was removed (``monitor feeds remove``); its items stay."""


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("feed_id", "key", name="uq_items_feed_id_key"),
        # a 304 refreshes the items of the feed's last response (record_poll); without
        # it, the planner takes ix_items_last_seen_at and scans every item of that time
        Index("ix_items_feed_id_last_seen_at", "feed_id", "last_seen_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    guid: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    fetched_at: Mapped[datetime] = mapped_column(index=True)
    # same story, many feeds (dedup.py): the first item of the story, and its keys
    story_id: Mapped[int | None] = mapped_column(Integer, index=True)
    title_key: Mapped[str | None] = mapped_column(String(64))
    simhash: Mapped[str | None] = mapped_column(String(16))
    last_seen_at: Mapped[datetime] = mapped_column(index=True)
    """When the feed last served this item; retention deletes on it, so an item still in
    its feed is never deleted (and never stored, matched and alerted on again)."""


class Watchlist(Base):
    __tablename__ = "watchlists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    definition: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
    """When the watchlist was deleted; its matches stay, a save of the name revives it."""


class Match(Base):
    __tablename__ = "matches"
    __table_args__ = (
        UniqueConstraint("item_id", "watchlist_id", name="uq_matches_item_id_watchlist_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    watchlist_id: Mapped[int] = mapped_column(ForeignKey("watchlists.id", ondelete="CASCADE"))
    rules: Mapped[list[Any]]
    """Every rule that fired:
    ``[{"index", "rule", "terms": [{"field", "start", "end", "text"}]}]``."""
    snippet: Mapped[str] = mapped_column(Text)
    marks: Mapped[list[Any]]
    created_at: Mapped[datetime]


class Outbox(Base):
    """One alert to send: a match for one channel. The truth about what was delivered."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("match_id", "channel", name="uq_outbox_match_id_channel"),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    match_id: Mapped[int] = mapped_column(ForeignKey("matches.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending | sending (claimed, under a lease) | sent | dead (out of attempts) |
    merged (the same story already alerted on this channel)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Every failure: ``[{"at": ISO time, "error": text}]``."""
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    """While ``sending``: when the claim expires and another attempt may take the row."""
    batch: Mapped[str | None] = mapped_column(String(64))
    """The message that carried the row: alone, in a digest or in a summary."""
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class SharedConfig(Base):
    """What every worker must run with, published by the process that loaded it:
    ``watchlists`` holds the watchlist definitions in force. Each worker compares
    ``version`` with its own at every tick and loads the new value when it moved."""

    __tablename__ = "shared_config"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the value's canonical JSON: publishing the same value is no change."""
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))
    """The worker that published it (host:pid)."""


class ChannelHold(Base):
    """A channel that asked not to be sent to before ``until`` (an HTTP 429 or 503 with
    ``Retry-After``): no worker sends to it before then, whatever is due."""

    __tablename__ = "channel_holds"

    channel: Mapped[str] = mapped_column(String(200), primary_key=True)
    until: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)


class Subscription(Base):
    """A feed's WebSub subscription at its hub (``monitor/websub.py``): one per feed."""

    __tablename__ = "websub_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"),
                                         unique=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    """The last part of the callback URL: names the subscription, proves nothing."""
    hub: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(Text)
    """The feed's ``rel="self"`` URL (else the URL fetched): what the hub knows it by."""
    secret: Mapped[str] = mapped_column(String(128))
    """The HMAC key of the pushes (``hub.secret``). Never logged, never shown."""
    state: Mapped[str] = mapped_column(String(16))
    """pending (asked, not yet verified) | active | denied | failed (the hub refused the
    request or could not be reached)."""
    lease_seconds: Mapped[int | None] = mapped_column(Integer)
    """The lease the hub granted at the last verification."""
    requested_at: Mapped[datetime]
    verified_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    renew_at: Mapped[datetime] = mapped_column(index=True)
    """When to (re)subscribe: before the lease ends, or to retry a request that failed
    or was never verified."""
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_push_at: Mapped[datetime | None]


class Audit(Base):
    """One edit of a watchlist, a feed or a user: who, when, and the before/after."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_kind_target", "kind", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))
    """create | update | delete | pause | resume"""
    kind: Mapped[str] = mapped_column(String(16))
    """watchlist | feed | user"""
    target: Mapped[str] = mapped_column(String(2048))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class User(Base):
    """A local account of the web console."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    """An Argon2id hash in PHC format (``$argon2id$…``), never the password."""
    role: Mapped[str] = mapped_column(String(16))
    """``admin`` (reads and edits) or ``analyst`` (reads)."""
    created_at: Mapped[datetime]


class SessionRow(Base):
    """A signed-in browser or API client. ``id`` is the SHA-256 of the cookie's token:
    a copy of the database does not hold a usable session."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    """The session's CSRF token: required on every unsafe request."""
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)

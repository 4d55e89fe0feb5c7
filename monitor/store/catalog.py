"""The catalog's side of the database: watchlist definitions and feeds edited by people
(CLI, console) or seeded from the config files, each edit written with its audit row in
one transaction.

Deletions are soft: a deleted watchlist keeps its matches, a removed feed its items;
saving the name (adding the URL) again brings them back. Edits are serialized (an
advisory lock on PostgreSQL), so the watchlists published after an edit are never
older than the edit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import NotFound, StoreError
from . import cluster
from .models import Audit, Feed, SharedConfig, Subscription, Watchlist

__all__ = ["AuditEntry", "CatalogStore", "Edit"]

_CHUNK = 500
"""Edits applied (and flushed) at a time within ``apply_edits``' one transaction."""


@dataclass(frozen=True)
class AuditEntry:
    """One edit: who made it, when, and the record before and after it."""

    id: int
    at: datetime
    actor: str
    action: str
    """create | update | delete | pause | resume"""
    kind: str
    """watchlist | feed | user"""
    target: str
    """The watchlist's name, the feed's URL, the user's name."""
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class Edit:
    """One change to make. ``op``: ``put`` (create or replace: a watchlist's definition,
    or a feed's ``{"title", "interval"}`` in seconds), ``delete``, ``pause``, ``resume``."""

    kind: str
    op: str
    target: str
    value: dict[str, Any] | None = None


Publisher = Callable[[list[dict[str, Any]]], Any]
"""The watchlist definitions in force, sorted by name -> the value shared with workers."""


class CatalogStore:
    engine: Engine

    def watchlist_definitions(self) -> list[dict[str, Any]]:
        """The definitions of the watchlists in force (not deleted), sorted by name."""
        try:
            with Session(self.engine) as s:
                return [w.definition for w in s.scalars(
                    select(Watchlist).where(Watchlist.deleted_at.is_(None))
                    .order_by(Watchlist.name))]
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the watchlists: {type(exc).__name__}") from exc

    def apply_edits(self, edits: Sequence[Edit], now: datetime, actor: str, *,
                    publish: tuple[str, Publisher, str] | None = None,
                    remember: tuple[str, Any] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> list[AuditEntry]:
        """Make every edit, with its audit row, in one transaction: all or none.

        ``publish`` = (shared name, publisher, worker): after watchlist edits, share the
        watchlists now in force under that name (``Store.publish``), in the same
        transaction. ``remember`` = (shared name, value): record a value too (what a
        config file said when it was applied). Raises NotFound for an edit of something
        absent, StoreError when the database refuses. ``progress(done, total)`` is
        called as edits are made (before the commit)."""
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                cluster.serialize(s, "catalog")
                entries: list[AuditEntry] = []
                for start in range(0, len(edits), _CHUNK):
                    chunk = edits[start : start + _CHUNK]
                    rows = _prefetch(s, chunk)
                    changes = []
                    for i, e in enumerate(chunk, start):
                        changes.append(_apply(s, rows, e, now))
                        if progress is not None and (i % 50 == 49 or i == len(edits) - 1):
                            progress(i + 1, len(edits))
                    audit = [Audit(at=now, actor=actor, action=a, kind=e.kind,
                                   target=e.target, before=b, after=af)
                             for e, (a, b, af) in zip(chunk, changes, strict=True)]
                    s.add_all(audit)
                    s.flush()
                    entries += [_entry(r) for r in audit]
                    # written (not committed): a seed of 10,000 feeds must not hold 20,000
                    # ORM objects to the end; a later chunk reads its rows again
                    s.expunge_all()
                if publish is not None and any(e.kind == "watchlist" for e in edits):
                    name, publisher, by = publish
                    defs = [w.definition for w in s.scalars(
                        select(Watchlist).where(Watchlist.deleted_at.is_(None))
                        .order_by(Watchlist.name))]
                    _share(s, name, publisher(defs), now, by)
                if remember is not None:
                    _share(s, remember[0], remember[1], now, actor)
                return entries
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save the edit: {type(exc).__name__}: {exc}") from exc

    def publish_in_force(self, name: str, publisher: Publisher, now: datetime,
                         by: str) -> tuple[int, Any]:
        """Share the watchlists in force under ``name`` (``publisher`` makes the value
        from their definitions, and may raise to refuse them): read and published in
        one transaction that holds the catalog's lock, and the shared row's (SQLite: the
        write lock) before reading, so an edit made meanwhile is either in the value or
        published after it, never overwritten by an older read. Returns (version, value)."""
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                cluster.serialize(s, "catalog")
                s.execute(update(SharedConfig).where(SharedConfig.name == name)
                          .values(version=SharedConfig.version))
                value = publisher([w.definition for w in s.scalars(
                    select(Watchlist).where(Watchlist.deleted_at.is_(None))
                    .order_by(Watchlist.name))])
                return _share(s, name, value, now, by), value
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot publish the watchlists: {type(exc).__name__}") from exc

    def audit(self, *, limit: int = 100, kind: str | None = None,
              target: str | None = None) -> list[AuditEntry]:
        """The newest ``limit`` audit rows, newest first, of one kind and target if given."""
        query = select(Audit).order_by(Audit.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(Audit.kind == kind)
        if target is not None:
            query = query.where(Audit.target == target)
        try:
            with Session(self.engine) as s:
                return [_entry(r) for r in s.scalars(query)]
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the audit log: {type(exc).__name__}") from exc

    def record_audit(self, action: str, kind: str, target: str, actor: str, now: datetime,
                     before: dict[str, Any] | None = None,
                     after: dict[str, Any] | None = None) -> AuditEntry:
        """Write one audit row for an edit made elsewhere (e.g. of a user account)."""
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                row = Audit(at=now, actor=actor, action=action, kind=kind, target=target,
                            before=before, after=after)
                s.add(row)
                s.flush()
                return _entry(row)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write the audit log: {type(exc).__name__}") from exc


def _share(s: Session, name: str, value: Any, now: datetime, by: str) -> int:
    fingerprint = cluster._fingerprint(value)
    row = s.get(SharedConfig, name, with_for_update=True)
    if row is None:
        s.add(SharedConfig(name=name, version=1, fingerprint=fingerprint, value=value,
                           updated_at=now, updated_by=by))
        return 1
    if row.fingerprint != fingerprint:
        row.version += 1
        row.fingerprint, row.value = fingerprint, value
        row.updated_at, row.updated_by = now, by
    return row.version


Change = tuple[str, dict[str, Any] | None, dict[str, Any] | None]
Rows = dict[tuple[str, str], Any]
"""(kind, target) -> its Watchlist or Feed row, or None: read once for every edit."""


def _prefetch(s: Session, edits: Sequence[Edit]) -> Rows:
    rows: Rows = {(e.kind, e.target): None for e in edits}
    names = sorted({e.target for e in edits if e.kind == "watchlist"})
    urls = sorted({e.target for e in edits if e.kind == "feed"})
    for i in range(0, len(names), 500):
        for w in s.scalars(select(Watchlist).where(Watchlist.name.in_(names[i:i + 500]))):
            rows[("watchlist", w.name)] = w
    for i in range(0, len(urls), 500):
        for f in s.scalars(select(Feed).where(Feed.url.in_(urls[i:i + 500]))):
            rows[("feed", f.url)] = f
    return rows


def _apply(s: Session, rows: Rows, e: Edit, now: datetime) -> Change:
    if e.kind == "watchlist":
        return _apply_watchlist(s, rows, e, now)
    if e.kind == "feed":
        return _apply_feed(s, rows, e, now)
    raise ValueError(f"unknown kind {e.kind!r}")


def _apply_watchlist(s: Session, rows: Rows, e: Edit, now: datetime) -> Change:
    row: Watchlist | None = rows[("watchlist", e.target)]
    live = row is not None and row.deleted_at is None
    before = row.definition if row is not None and live else None
    if e.op == "put":
        assert e.value is not None
        if row is None:
            row = Watchlist(name=e.target, definition=e.value, updated_at=now)
            s.add(row)
            rows[("watchlist", e.target)] = row
        else:
            row.definition, row.updated_at, row.deleted_at = e.value, now, None
        return ("update" if live else "create"), before, e.value
    if e.op == "delete":
        if row is None or not live:
            raise NotFound(f"no watchlist named {e.target!r}")
        row.deleted_at = row.updated_at = now
        return "delete", before, None
    raise ValueError(f"unknown watchlist edit {e.op!r}")


def feed_record(f: Feed) -> dict[str, Any]:
    """A feed as the audit log shows it."""
    return {"url": f.url, "title": f.title, "interval": f.interval_seconds,
            "active": f.active}


def _apply_feed(s: Session, rows: Rows, e: Edit, now: datetime) -> Change:
    row: Feed | None = rows[("feed", e.target)]
    live = row is not None and row.removed_at is None
    before = feed_record(row) if row is not None and live else None
    if e.op == "put":
        assert e.value is not None
        title = e.value.get("title")
        interval = int(e.value["interval"])
        if row is None:
            row = Feed(url=e.target, title=title, active=True, consecutive_failures=0,
                       interval_seconds=interval, created_at=now, next_check_at=now)
            s.add(row)
            rows[("feed", e.target)] = row
        else:
            if not live:  # back from removal: active, and polled soon
                row.active, row.removed_at, row.next_check_at = True, None, now
                _resubscribe(s, row, now)
            elif row.interval_seconds != interval and row.next_check_at is not None:
                row.next_check_at = min(row.next_check_at,
                                        now + timedelta(seconds=interval))
            row.interval_seconds = interval
            if title:
                row.title = title
        return ("update" if live else "create"), before, feed_record(row)
    if row is None or not live:
        raise NotFound(f"no feed {e.target} (see monitor feeds list)")
    if e.op == "delete":
        row.active, row.removed_at = False, now
        row.lease_owner = row.lease_until = None
        return "delete", before, None
    if e.op in ("pause", "resume"):
        was_active, row.active = row.active, e.op == "resume"
        if row.active and (row.next_check_at is None or row.next_check_at > now):
            row.next_check_at = now
        if row.active and not was_active:
            _resubscribe(s, row, now)
        return e.op, before, feed_record(row)
    raise ValueError(f"unknown feed edit {e.op!r}")


def _resubscribe(s: Session, row: Feed, now: datetime) -> None:
    """A feed back from a pause or a removal: its WebSub subscription (if any) is asked
    again at once, since the pushes it got meanwhile were answered 410, which tells a
    hub to drop it."""
    if row.id is not None:
        s.execute(update(Subscription).where(Subscription.feed_id == row.id)
                  .values(renew_at=now))


def _entry(r: Audit) -> AuditEntry:
    return AuditEntry(id=r.id, at=r.at, actor=r.actor, action=r.action, kind=r.kind,
                      target=r.target, before=r.before, after=r.after)

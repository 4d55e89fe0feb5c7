"""Several workers on one database: feed claims under leases, jobs that run once across
workers (PostgreSQL advisory locks), the shared settings version, and the lock that
keeps a second daemon off a SQLite file.

On PostgreSQL the claims are ``SELECT … FOR UPDATE SKIP LOCKED``: two workers claiming
at once get disjoint rows and neither waits for the other. SQLAlchemy renders no
``FOR UPDATE`` on SQLite, where one daemon runs (``exclusive``) and the same statements
keep their single-process meaning.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import weakref
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    create_engine,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from ..errors import StoreError
from .models import Feed, SharedConfig

__all__ = ["ExclusiveLock", "claim_feeds", "exclusive", "lock_key", "once", "publish",
           "release_feeds", "serialize", "shared", "shared_version"]


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def claim_feeds(engine: Engine, owner: str, now: datetime, lease: timedelta,
                limit: int, *, unchecked_since: datetime | None = None,
                columns: Sequence[ColumnElement[Any]] = ()) -> list[Row[Any]]:
    """Claim up to ``limit`` due feeds for ``owner`` until ``now + lease``: active, due,
    and not under another worker's unexpired lease. Returns their rows, most overdue
    first: the feed's id, then ``columns`` as they were read under the claim. A worker
    that dies leaves leases that expire; another then takes the feed.

    With ``unchecked_since`` (``run --once``), every active feed not checked since
    then is claimed, due or not."""
    if limit <= 0:
        return []
    if unchecked_since is None:
        which = Feed.next_check_at <= now
    else:
        which = or_(Feed.last_checked_at.is_(None), Feed.last_checked_at < unchecked_since)
    try:
        with engine.begin() as conn:
            rows = list(conn.execute(
                select(Feed.id, *columns)
                .where(Feed.active.is_(True), which,
                       or_(Feed.lease_until.is_(None), Feed.lease_until <= now))
                .order_by(Feed.next_check_at, Feed.id)
                .limit(limit)
                .with_for_update(skip_locked=True)))
            if rows:
                conn.execute(update(Feed).where(Feed.id.in_([r[0] for r in rows]))
                             .values(lease_owner=owner, lease_until=now + lease))
            return rows
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot claim due feeds: {type(exc).__name__}: {exc}") from exc


def release_feeds(engine: Engine, owner: str, ids: list[int]) -> None:
    """Give back claims not used (a poll cancelled at stop): the feeds are due at once
    for any worker instead of after the lease."""
    if not ids:
        return
    try:
        with Session(engine) as s, s.begin():
            s.execute(update(Feed).where(Feed.id.in_(ids), Feed.lease_owner == owner)
                      .values(lease_owner=None, lease_until=None))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot release feeds: {type(exc).__name__}") from exc


def release_all_feeds(engine: Engine) -> int:
    """Drop every feed claim: for a daemon that holds SQLite's ``exclusive`` lock, which
    proves that no other runs, so claims left by one killed are dead (otherwise its
    feeds would wait out their lease). Returns how many were released."""
    try:
        with Session(engine) as s, s.begin():
            result = s.execute(update(Feed).where(Feed.lease_owner.is_not(None))
                               .values(lease_owner=None, lease_until=None))
            return int(result.rowcount)  # type: ignore[attr-defined]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot release feeds: {type(exc).__name__}") from exc


def serialize(conn: Connection | Session, name: str) -> None:
    """Hold the transaction-level advisory lock ``name`` until the transaction ends, on
    PostgreSQL: workers starting together migrate and load their settings one at a
    time instead of racing on the same rows. Nothing on SQLite (one writer anyway)."""
    dialect = conn.dialect if isinstance(conn, Connection) else conn.get_bind().dialect
    if dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(lock_key(name))))


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from a job's name."""
    return int.from_bytes(hashlib.sha256(f"monitor:{name}".encode()).digest()[:8], "big",
                          signed=True)


_lock_engines: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def _lock_engine(engine: Engine) -> Engine:
    """The engine the advisory locks of ``once`` are held on: the same database, without
    a pool. A lock is held for a whole job (a channel's sends), whose own reads and
    writes need connections from ``engine``'s pool: were the lock's one of them, as many
    busy jobs as the pool has connections would leave none for their work."""
    found = _lock_engines.get(engine)
    if found is None:
        found = _lock_engines[engine] = create_engine(engine.url, poolclass=NullPool)
    return found


@contextlib.contextmanager
def once(engine: Engine, name: str) -> Iterator[bool]:
    """Whether this worker may run the job ``name`` now: on PostgreSQL, a session
    advisory lock tried (never waited for) and held on a connection of its own, outside
    ``engine``'s pool (``_lock_engine``), for the ``with`` block; released at its end, or
    by PostgreSQL when the worker dies. Always True on SQLite, where one daemon runs."""
    if not is_postgres(engine):
        yield True
        return
    key = lock_key(name)
    try:
        conn = _lock_engine(engine).connect()
        got = bool(conn.scalar(select(func.pg_try_advisory_lock(key))))
        conn.commit()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot take the lock of {name}: {type(exc).__name__}") from exc
    try:
        yield got
    finally:
        try:
            if got:
                conn.scalar(select(func.pg_advisory_unlock(key)))
                conn.commit()
        except SQLAlchemyError:
            conn.invalidate()  # closing the session releases the lock anyway
        finally:
            conn.close()


def _fingerprint(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def publish(engine: Engine, name: str, value: Any, now: datetime, by: str) -> int:
    """Make ``value`` the shared ``name``; returns its version, moved only when the
    value changed. Concurrent publishers are serialised by the row's lock."""
    fingerprint = _fingerprint(value)
    try:
        with Session(engine) as s, s.begin():
            row = s.get(SharedConfig, name, with_for_update=True)
            if row is None:
                try:
                    with s.begin_nested():
                        s.add(SharedConfig(name=name, version=1, fingerprint=fingerprint,
                                           value=value, updated_at=now, updated_by=by))
                    return 1
                except SQLAlchemyError:  # another worker inserted it first
                    row = s.get(SharedConfig, name, with_for_update=True,
                                populate_existing=True)
                    assert row is not None
            if row.fingerprint != fingerprint:
                row.version += 1
                row.fingerprint, row.value = fingerprint, value
                row.updated_at, row.updated_by = now, by
            return row.version
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot publish {name}: {type(exc).__name__}") from exc


def shared_version(engine: Engine, name: str) -> int | None:
    """The version of the shared ``name`` (None: never published); one indexed read."""
    try:
        with Session(engine) as s:
            return s.scalar(select(SharedConfig.version).where(SharedConfig.name == name))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the version of {name}: {type(exc).__name__}") from exc


def shared(engine: Engine, name: str) -> tuple[int, Any] | None:
    """(version, value) of the shared ``name``."""
    try:
        with Session(engine) as s:
            row = s.get(SharedConfig, name)
            return None if row is None else (row.version, row.value)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read {name}: {type(exc).__name__}") from exc


class ExclusiveLock:
    """An exclusive ``flock`` on ``<database>.lock`` beside a SQLite file, held while
    the daemon runs; the kernel drops it when the process dies, however it dies."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle = handle

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def exclusive(url: str) -> ExclusiveLock | None:
    """Refuse a second daemon on one SQLite file: take its lock file, or raise
    StoreError saying who holds it. None for PostgreSQL (workers share it) and for
    in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database \
            or parsed.database == ":memory:":
        return None
    path = Path(parsed.database + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreError(
            f"another monitor daemon ({holder}) is running on the SQLite database "
            f"{parsed.database}; SQLite serves one daemon: stop that one first, or move "
            "the database to PostgreSQL to run several workers (docs/scaling.md)") from exc
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return ExclusiveLock(path, handle)

"""The database: engine, schema migrations, and the schema-version check at start.

alembic is imported only when the schema is not current (or the migrations do not form
one line): a daemon starting on a current schema reads the revision itself and leaves
alembic (about 11 MB of its RSS) unloaded."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StoreError
from .cluster import serialize

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

__all__ = ["create", "migrate", "schema_status"]

_MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_PAGE_SIZE = 16384
"""Bytes a page of a new SQLite file (4,096 is SQLite's default). An item row is about
1.5 kB of text: with larger pages a cold round's inserts split and write fewer pages.
A file keeps the page size it was made with (in WAL mode it cannot change)."""


def create(url: str) -> Engine:
    """An engine for ``url``. SQLite gets WAL, foreign keys and a busy timeout, and the
    directory of its file is created."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError and ValueError alike
        raise StoreError(f"database.url is not a database URL: {type(exc).__name__}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # a new file's only: WAL fixes it
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def _head() -> str:
    """The newest revision this code knows: read from the migration files' ``revision``
    and ``down_revision`` (without importing them, nor alembic) when they form one line
    of revisions, else from alembic."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        values = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None):
                targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
                for t in targets:
                    if isinstance(t, ast.Name) and t.id in ("revision", "down_revision"):
                        values[t.id] = ast.literal_eval(node.value)
        rev, down = values.get("revision"), values.get("down_revision")
        if not isinstance(rev, str) or not (down is None or isinstance(down, str)):
            return _alembic_head()  # a merge (a tuple), or not a plain file: alembic knows
        revisions.add(rev)
        if down is not None:
            downs.add(down)
    heads = revisions - downs
    if len(heads) != 1 or not downs <= revisions:
        return _alembic_head()
    return heads.pop()


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(conn: Connection) -> str | None:
    """The database's revision (None if it has none), as alembic reads it."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:  # several heads: only alembic's own reading reports that right
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()
    return rows[0] if rows else None


def schema_status(engine: Engine) -> tuple[str | None, str]:
    """(the database's revision, the newest revision this code knows)."""
    head = _head()
    try:
        with engine.connect() as conn:
            current = _current(conn)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot reach the database: {type(exc).__name__}") from exc
    return current, head


def _known(script: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Upgrade the schema to the newest revision; returns (before, after).

    Refuses a database whose revision this code does not know (made by a newer
    monitor): downgrade the code, or restore a backup.
    """
    current, head = schema_status(engine)
    if current == head:
        return current, head
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    if current is not None and not _known(script, current):
        raise StoreError(
            f"the database has schema revision {current}, which this version of monitor "
            f"does not know (newest known: {head}); it was made by a newer monitor"
        )
    if current != head:
        cfg = _alembic_config()
        with engine.begin() as conn:
            serialize(conn, "migrate")  # workers starting together: one migrates
            if MigrationContext.configure(conn).get_current_revision() != head:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    return current, head

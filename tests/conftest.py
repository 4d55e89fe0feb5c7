from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import FeedServer, SmtpServer
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.store import create, migrate

ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"
DATA = Path(__file__).resolve().parent / "data"


PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class PostgresServer:
    """The PostgreSQL of ``MONITOR_TEST_PG_URL``: each test gets a database of its own,
    created empty and dropped after, so parallel runs and CI never see each other."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=None)

    def reason(self) -> str | None:
        """Why PostgreSQL cannot be used here, or None."""
        try:
            with self.admin.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, ImportError) as exc:
            return (f"no PostgreSQL answers at {self.url.render_as_string(hide_password=True)}"
                    f" ({type(exc).__name__}); set MONITOR_TEST_PG_URL to run these tests")
        return None

    def create(self) -> URL:
        name = f"monitor_test_{os.getpid()}_{secrets.token_hex(4)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return self.url.set(database=name)

    def drop(self, url: URL) -> None:
        """Drop the test's database, whatever is still connected to it (a killed
        worker's connections included)."""
        with self.admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :name AND pid <> pg_backend_pid()"),
                         {"name": url.database})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}"'))


@pytest.fixture(scope="session", autouse=True)
def unsettled_collector() -> None:
    """The suite's process keeps Python's collector as it is: ``daemon.settle_gc`` would
    freeze whatever the first test to poll left behind, and every later test would run
    with its threshold. Its own test runs in a fresh process."""
    from monitor import daemon

    daemon._gc_settled = True


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The test PostgreSQL; skips the test, with the reason, where none answers."""
    server = PostgresServer(os.environ.get("MONITOR_TEST_PG_URL", PG_DEFAULT))
    reason = server.reason()
    if reason is not None:
        server.admin.dispose()
        pytest.skip(reason)
    yield server
    server.admin.dispose()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """The URL of an empty PostgreSQL database of this test's own."""
    url = postgres.create()
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        postgres.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: the store's contract holds on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sub' / 'monitor.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database on each backend (SQLite, and PostgreSQL where one answers)."""
    e = create(db_url)
    migrate(e)
    yield e
    e.dispose()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def seed_article() -> str:
    """The real news story the Libya watchlist must catch (shared/fixtures), falling back
    to the copy in tests/data when the shared folder is not beside the checkout."""
    for path in (SHARED_FIXTURES / "seed-article-libya.txt", DATA / "seed-article-libya.txt"):
        if path.exists():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError("seed-article-libya.txt")


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Workspace:
    """A directory with a settings file, the example watchlists and a database."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "monitor.toml"

    @property
    def db(self) -> Path:
        return self.root / "monitor.db"

    def write(self, *, feeds: list[str], channels: list[tuple[str, str]] = (),  # type: ignore[assignment]
              extra: str = "", watchlists: str | None = None) -> Path:
        text = [
            'watchlists = "watchlists.yaml"',
            "[database]",
            f'url = "sqlite:///{self.db}"',
            "[fetch]",
            'timeout = "5s"',
            'allow_private_networks = ["127.0.0.1/32"]',
            extra,
        ]
        for url in feeds:
            text += ["[[feed]]", f'url = "{url}"']
        for name, url in channels:
            text += ["[[channel]]", f'name = "{name}"', f"url = '{url}'", 'watchlists = ["libya"]']
        self.config.write_text("\n".join(text) + "\n", encoding="utf-8")
        wl = watchlists or (ROOT / "config" / "watchlists.yaml").read_text(encoding="utf-8")
        (self.root / "watchlists.yaml").write_text(wl, encoding="utf-8")
        return self.config

    def monitor(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 120) -> Result:
        """Run ``monitor --config … ARGS`` as a real process."""
        proc = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(self.config), *args],
            cwd=self.root, input=stdin, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)

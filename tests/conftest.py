from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import FeedServer, SmtpServer

ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"
DATA = Path(__file__).resolve().parent / "data"


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

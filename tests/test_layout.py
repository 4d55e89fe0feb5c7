"""Each third-party library has one home; the pure core does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import monitor

PACKAGE = Path(monitor.__file__).resolve().parent

HOMES = {
    "aiohttp": {"fetch.py", "netguard.py"},
    "yarl": {"fetch.py"},
    "httpx": {"fetch.py", "netguard.py"},
    "feedparser": {"parse.py"},
    "sqlalchemy": {"store/"},
    "alembic": {"store/"},
    "psycopg": {"store/"},
    "apprise": {"alerts/"},
    "jinja2": {"alerts/", "web/"},
    "apscheduler": {"daemon.py"},
    "prometheus_client": {"metrics.py"},
    "yaml": {"config.py"},
    "pydantic": {"config.py"},
    "ahocorasick_rs": {"match/matcher.py"},
    "fastapi": {"web/"},
    "starlette": {"web/"},
    "uvicorn": {"web/serve.py"},
    "argon2": {"web/passwords.py"},
    "playwright": set(),  # the browser test only
}
PURE = ["text.py", "parse.py", "fastfeed.py", "xmlguard.py", "dedup.py", "opml.py", "match/",
        "alerts/render.py", "alerts/policy.py", "backtest.py", "web/views.py"]
IO_MODULES = ("socket", "httpx", "sqlalchemy", "apprise", "subprocess", "requests",
              "urllib.request", "http.client")


def imports(path: Path, *, full: bool = False) -> set[str]:
    """Top-level names of the absolute imports (or the full dotted names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names if full else {n.split(".")[0] for n in names}


def modules() -> dict[str, Path]:
    return {str(p.relative_to(PACKAGE)): p for p in PACKAGE.rglob("*.py")
            if "migrations" not in p.parts}


def in_home(rel: str, homes: set[str]) -> bool:
    return any(rel == h or (h.endswith("/") and rel.startswith(h)) for h in homes)


def test_each_library_is_imported_only_in_its_home() -> None:
    for rel, path in modules().items():
        for lib in imports(path) & HOMES.keys():
            assert in_home(rel, HOMES[lib]), f"{rel} imports {lib}; its home is {HOMES[lib]}"


def test_the_pure_core_does_no_io() -> None:
    for rel, path in modules().items():
        if in_home(rel, set(PURE)):
            io = {n for n in imports(path, full=True) for m in IO_MODULES
                  if n == m or n.startswith(m + ".")}
            assert not io, f"{rel} is pure but imports {io}"
            assert "datetime.now" not in path.read_text(), f"{rel} reads the clock"


def test_public_exports_exist() -> None:
    for name in monitor.__all__:
        assert hasattr(monitor, name)

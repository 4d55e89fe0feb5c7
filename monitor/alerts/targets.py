"""An apprise target that needs no credentials: ``alertfile://PATH`` appends each alert
to a file (PATH relative to the daemon's working directory). The example config uses
it so that ``make run`` alerts somewhere before email or Slack are set up.

The target is registered by ``register()``, which building a channel calls, not on
import: apprise's ``@notify`` loads every one of apprise's plugins (about 13 MB of a
daemon's RSS), which a process without a channel (``run`` without channels, the
catalog and rules commands) never needs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from apprise.decorators import notify

SCHEME = "alertfile"


def alert_file_path(url: str) -> Path:
    rest = url.split("://", 1)[1].split("?", 1)[0]
    return Path(rest)


def _append(body: str, title: str, notify_type: str, meta: dict[str, Any],
            *args: Any, **kwargs: Any) -> bool:
    path = alert_file_path(meta["url"])
    if not path.name:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"=== {title}\n{body}\n")
    return True


_registered = False
_lock = threading.Lock()


def register() -> None:
    """Add ``alertfile://`` to apprise's services (once per process)."""
    global _registered
    with _lock:
        if not _registered:
            notify(on=SCHEME, name="monitor alert file")(_append)  # type: ignore[no-untyped-call]
            _registered = True

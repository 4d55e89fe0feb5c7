"""An apprise target that needs no credentials: ``alertfile://PATH`` appends each alert
to a file (PATH relative to the daemon's working directory). The example config uses
it so that ``make run`` alerts somewhere before email or Slack are set up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apprise.decorators import notify

SCHEME = "alertfile"


def alert_file_path(url: str) -> Path:
    rest = url.split("://", 1)[1].split("?", 1)[0]
    return Path(rest)


@notify(on=SCHEME, name="monitor alert file")  # type: ignore[untyped-decorator,no-untyped-call]
def _append(body: str, title: str, notify_type: str, meta: dict[str, Any],
            *args: Any, **kwargs: Any) -> bool:
    path = alert_file_path(meta["url"])
    if not path.name:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"=== {title}\n{body}\n")
    return True

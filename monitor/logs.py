"""Logging: one line per event on stderr, JSON for journald and collectors, text for people.

``log_format = "auto"`` writes JSON when stderr is not a terminal (under systemd, stderr
is the journal) and ``time level logger: message`` when it is. Whatever the format, a
filter masks the password of any ``scheme://user:password@`` URL in a message; channel
URLs are only ever logged in apprise's privacy form in the first place.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["JsonFormatter", "configure", "redact"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
NOISY = ("httpx", "httpcore", "apprise", "apscheduler", "alembic")
"""httpx logs every request line at INFO (URLs may carry credentials); the others' INFO
lines add nothing to ours."""

_USERINFO_RE = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """``mailtos://me:secret@host`` → ``mailtos://me:****@host``."""
    return _USERINFO_RE.sub(r"\1:****@", text)


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


class _Handler(logging.StreamHandler[TextIO]):
    """The handler ``configure`` installs, so that reconfiguring replaces only it."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg`` (and ``exc``)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def configure(level: str, fmt: str = "auto", stream: TextIO | None = None) -> None:
    """(Re)configure the root logger: one handler on ``stream`` (stderr by default)."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(_Redact())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)  # ours only: others (a test runner's) stay
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

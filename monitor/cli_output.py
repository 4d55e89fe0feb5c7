"""Output helpers shared by the commands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

__all__ = ["iso", "print_table"]


def iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())

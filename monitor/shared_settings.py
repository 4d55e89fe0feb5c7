"""Settings changes that reach every worker: channels (URLs, routes, modes, limits,
templates), fetch, parse, alert and retention settings, per-feed options.

A worker that applies a changed configuration on SIGHUP publishes a new version of the
shared ``settings``; each other worker sees the version move on its next tick and
reloads its own settings file, exactly as on a SIGHUP of its own. The database carries
the version and who published it, never the settings: channel URLs hold secrets, and a
template's ``${ENV}`` reference would be expanded differently on each host anyway. So
the workers must read the same files (one host, or the same files deployed to each):
docs/scaling.md.

The watchlists travel as values instead (``daemon.WATCHLISTS``): they hold no secret.
"""

from __future__ import annotations

from datetime import datetime

from .config import Config
from .store import Store

__all__ = ["SETTINGS", "announce", "changed"]

SETTINGS = "settings"
"""The shared name whose version tells the workers to reload their settings files."""


def changed(old: Config, new: Config) -> bool:
    """Whether a reload changed more than the watchlists (which travel on their own).
    Compared in memory, secrets included: a new password alone is a change."""
    return (old.settings, old.feeds, old.templates) != (new.settings, new.feeds,
                                                        new.templates)


def announce(store: Store, by: str, now: datetime) -> int:
    """Tell the other workers to reload their settings files; returns the new version.
    The value published is who and when: nothing of the settings themselves."""
    return store.publish(SETTINGS, {"reloaded_by": by, "at": now.isoformat()}, now, by)

"""Settings changes that reach every worker: channels (URLs, routes, modes, limits,
templates), fetch, parse, alert and retention settings, per-feed options.

A worker that applies a changed configuration on SIGHUP publishes a new version of the
shared ``settings`` (``daemon.SETTINGS``); each other worker sees the version move on
its next tick and reloads its own settings file, as on a SIGHUP of its own but without
seeding the database from its own feeds and watchlists files, and without telling the
others in turn. The database carries the version and who published it, never the
settings: channel URLs hold secrets, and a ``${ENV}`` reference would be expanded
differently on each host anyway. So the workers must read the same settings files (one
host, or the same files deployed to each): docs/scaling.md.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .config import Config, load_config
from .daemon import SETTINGS, App, build
from .store import Store

__all__ = ["announce", "changed", "follow"]


def changed(old: Config, new: Config) -> bool:
    """Whether a reload changed more than the watchlists (which travel on their own).
    Compared in memory, secrets included: a new password alone is a change."""
    return (old.settings, old.feeds, old.templates) != (new.settings, new.feeds,
                                                        new.templates)


def announce(store: Store, by: str, now: datetime) -> int:
    """Tell the other workers to reload their settings files; returns the new version.
    The value published is who and when: nothing of the settings themselves."""
    return store.publish(SETTINGS, {"reloaded_by": by, "at": now.isoformat()}, now, by)


def follow(path: Path, store: Store) -> App:
    """A follower's reload: the settings files at ``path``, without seeding the database
    from its feeds and watchlists files, so that the rebuild compiles and republishes the
    watchlists in force (no new version) rather than applying a file older than the one
    another worker applied."""
    return build(load_config(path), migrate_schema=False, seed=False)

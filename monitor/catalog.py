"""The catalog: the watchlists and feeds in force, as people edit them (CLI, console) and
as the config files seed them. Every edit is validated first (nothing half-applied),
written with its audit row, and, for watchlists, published so running daemons follow
within a tick (``Store.publish`` / ``Jobs.follow_watchlists``).

At run time the DATABASE holds feeds and watchlists. The config files seed it as a diff
(``seed``): what changed in a file since it was last applied is applied, audited as
``config-file``; edits made elsewhere persist unless the file changes that same entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from .config import dump_watchlists, parse_watchlists, watchlist_specs
from .errors import ConfigError, FeedError, NotFound, Problem
from .fetch import Fetcher
from .match import ActorSpec, WatchlistSpec, slugify
from .opml import OpmlFeed, parse_opml, write_opml
from .parse import discover, parse_feed
from .store import AuditEntry, Edit, FeedRow, Store

__all__ = [
    "CONFIG_ACTOR",
    "WATCHLISTS",
    "AuditEntry",
    "Catalog",
    "Discovered",
    "ImportReport",
    "NotFound",
    "definition_of",
    "discover_feed",
    "shared_watchlists",
]

WATCHLISTS = "watchlists"
"""The shared setting that carries the watchlists in force to every worker."""
SEED_WATCHLISTS = "seed:watchlists"
SEED_FEEDS = "seed:feeds"
CONFIG_ACTOR = "config-file"
DEFAULT_INTERVAL = timedelta(minutes=15)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ImportReport:
    """What an import (or a seeding) did, by watchlist name or feed URL."""

    created: list[str]
    updated: list[str]
    deleted: list[str]
    unchanged: list[str]

    def summary(self) -> str:
        return (f"{len(self.created)} created, {len(self.updated)} updated, "
                f"{len(self.deleted)} deleted, {len(self.unchanged)} unchanged")


@dataclass(frozen=True)
class Discovered:
    """A feed URL found by ``discover_feed``; ``note`` says how, when it was not given."""

    url: str
    title: str | None
    note: str | None = None


def definition_of(spec: WatchlistSpec) -> dict[str, Any]:
    """A watchlist as one entry of watchlists.yaml, in its shortest form: the canonical
    definition, so that equal watchlists have equal definitions."""
    d: dict[str, Any] = {"name": spec.name}
    if spec.description:
        d["description"] = spec.description
    d["actors"] = [_actor(a) for a in spec.actors]
    d["rules"] = list(spec.rules)
    return d


def _actor(a: ActorSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": a.name}
    if a.slug != slugify(a.name):
        out["slug"] = a.slug
    if a.aliases:
        out["aliases"] = [al.text if not al.case_sensitive
                          else {"text": al.text, "case_sensitive": True} for al in a.aliases]
    return out


def shared_watchlists(definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The value published to workers (``daemon.spec_of`` reads it back)."""
    if not definitions:
        return []
    return [asdict(s) for s in watchlist_specs({"watchlists": definitions}, "database")]


class Catalog:
    """Watchlists, feeds and the audit log of their edits, over a Store."""

    def __init__(self, store: Store, clock: Clock, *,
                 default_interval: timedelta = DEFAULT_INTERVAL,
                 worker: str = "catalog") -> None:
        self.store = store
        self.clock = clock
        self.default_interval = default_interval
        self.worker = worker

    # ------------------------------------------------------------ watchlists

    def watchlists(self) -> list[dict[str, Any]]:
        """The definitions of the watchlists in force, sorted by name."""
        return [_canonical(d) for d in self.store.watchlist_definitions()]

    def watchlist(self, name: str) -> dict[str, Any]:
        for d in self.watchlists():
            if d["name"] == name:
                return d
        raise NotFound(f"no watchlist named {name!r}")

    def specs(self) -> list[WatchlistSpec]:
        """The watchlists in force, ready to compile. Raises ConfigError naming each
        stored watchlist this version of monitor refuses (and its field)."""
        return _specs(self.store.watchlist_definitions())

    def publish_in_force(self) -> tuple[int, list[WatchlistSpec]]:
        """Publish the watchlists in force for the workers (a start or a reload) and
        return (version, their specs), read and published under the catalog's lock: an
        edit landing meanwhile is never overwritten by an older read. ConfigError as
        ``specs``."""
        specs: list[WatchlistSpec] = []

        def publisher(definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
            specs[:] = _specs(definitions)
            return [asdict(s) for s in specs]

        version, _ = self.store.publish_in_force(WATCHLISTS, publisher, self.clock(),
                                                 self.worker)
        return version, specs

    def check_watchlist(self, definition: dict[str, Any]) -> None:
        """Raise ConfigError naming the field (``rules[2]``) and, for a malformed rule,
        the column and reason; return None when the definition is sound."""
        self.spec(definition)

    def spec(self, definition: dict[str, Any]) -> WatchlistSpec:
        """The checked spec of a definition (ConfigError as ``check_watchlist``)."""
        try:
            return watchlist_specs({"watchlists": [definition]}, "watchlist")[0]
        except ConfigError as exc:
            raise ConfigError([Problem(p.file, p.field.removeprefix("watchlists[0]")
                                       .removeprefix("."), p.message)
                               for p in exc.problems]) from exc

    def save_watchlist(self, definition: dict[str, Any], actor: str) -> AuditEntry:
        """Create or replace the watchlist of that name; publishes the watchlists."""
        d = definition_of(self.spec(definition))
        return self._apply([Edit("watchlist", "put", d["name"], d)], actor)[0]

    def delete_watchlist(self, name: str, actor: str) -> AuditEntry:
        return self._apply([Edit("watchlist", "delete", name)], actor)[0]

    def import_watchlists(self, text: str, actor: str, *, replace: bool = False,
                          source: str = "<input>") -> ImportReport:
        """Apply a watchlists.yaml text: every watchlist in it is created or updated;
        with ``replace``, those not in it are deleted. All or nothing."""
        wanted = {s.name: definition_of(s) for s in parse_watchlists(text, source)}
        edits, report = _watchlist_edits(wanted, self._current_watchlists(), replace)
        self._apply(edits, actor)
        return report

    def export_watchlists(self) -> str:
        return dump_watchlists(self.watchlists())

    def _current_watchlists(self) -> dict[str, dict[str, Any]]:
        return {d["name"]: d for d in self.watchlists()}

    # ------------------------------------------------------------ feeds

    def feeds(self, *, counts: bool = True) -> list[FeedRow]:
        """Every feed, paused ones included (``active`` False), by URL; ``counts`` fills
        ``FeedRow.items``."""
        return self.store.catalog_feeds(counts=counts)

    def feed(self, url: str) -> FeedRow:
        for f in self.feeds():
            if f.url == url:
                return f
        raise NotFound(f"no feed {url} (see monitor feeds list)")

    def add_feed(self, url: str, actor: str, *, title: str | None = None,
                 interval: timedelta | None = None) -> AuditEntry:
        """Add a feed (an already resolved feed URL), due at once. Adding one that is
        there updates its title and interval (those given); adding a removed one brings
        it back."""
        url = check_feed_url(url)
        if interval is None:  # a feed that is there keeps its own
            known = {f.url: f.interval for f in self.store.feeds(active_only=False,
                                                                  counts=False)}
            interval = known.get(url, self.default_interval)
        seconds = int(interval.total_seconds())
        if seconds <= 0:
            raise ConfigError([Problem("feed", "interval", "must be positive")])
        return self._apply([Edit("feed", "put", url, {"title": title, "interval": seconds})],
                           actor)[0]

    def set_feed_active(self, url: str, active: bool, actor: str) -> AuditEntry:
        """Resume (True) or pause (False) polling of a feed."""
        return self._apply([Edit("feed", "resume" if active else "pause", url)], actor)[0]

    def remove_feed(self, url: str, actor: str) -> AuditEntry:
        """Stop polling a feed and drop it from the lists; its items and matches stay."""
        return self._apply([Edit("feed", "delete", url)], actor)[0]

    def import_opml(self, data: bytes, actor: str, *, replace: bool = False,
                    progress: Callable[[int, int], None] | None = None,
                    source: str = "<input>") -> ImportReport:
        """Add every feed of an OPML document (titles updated, intervals kept); with
        ``replace``, remove the feeds not in it. All or nothing; ``progress(done,
        total)`` is called as the edits are applied."""
        try:
            entries = parse_opml(data)
        except FeedError as exc:
            raise ConfigError([Problem(source, "", str(exc))]) from exc
        problems = []
        for i, e in enumerate(entries):
            try:
                check_feed_url(e.url)
            except ConfigError as exc:
                problems.append(Problem(source, f"outline[{i}] ({e.title or e.url})",
                                        exc.problems[0].message))
        if problems:
            raise ConfigError(problems)
        wanted = {e.url: None if e.title == e.url else e.title for e in entries}
        edits, report = _feed_edits(
            {u: (t, None) for u, t in wanted.items()}, self.feeds(counts=False), replace,
            int(self.default_interval.total_seconds()))
        self._apply(edits, actor, progress=progress)
        return report

    def export_opml(self) -> bytes:
        return write_opml([OpmlFeed(f.url, f.title) for f in self.feeds(counts=False)],
                          title="monitor feeds")

    # ------------------------------------------------------------ audit

    def audit(self, *, limit: int = 100, kind: str | None = None,
              target: str | None = None) -> list[AuditEntry]:
        """Audit rows, newest first."""
        return self.store.audit(limit=limit, kind=kind, target=target)

    # ------------------------------------------------------------ seeding

    def seed(self, watchlists: Sequence[WatchlistSpec],
             feeds: Iterable[tuple[str, str | None, timedelta]]
             ) -> tuple[ImportReport, ImportReport]:
        """Apply the config files as a diff against what they said when last applied
        (a fresh database takes them whole). Returns the reports (watchlists, feeds).

        Workers started (or reloaded) together each seed: one that read the database
        before another applied a deletion finds the entry gone (NotFound) and reads
        again, once; the second diff is then empty or what is still left to apply."""
        feeds = list(feeds)
        try:
            return self._seed(watchlists, feeds)
        except NotFound:
            return self._seed(watchlists, feeds)

    def _seed(self, watchlists: Sequence[WatchlistSpec],
              feeds: Iterable[tuple[str, str | None, timedelta]]
              ) -> tuple[ImportReport, ImportReport]:
        file_wl = {s.name: definition_of(s) for s in watchlists}
        last = self.store.shared(SEED_WATCHLISTS)
        current = self._current_watchlists()
        if last is None:
            wl_edits, wl_report = _watchlist_edits(file_wl, current, replace=True)
        else:
            changed = {n: d for n, d in file_wl.items() if last[1].get(n) != d}
            wl_edits, wl_report = _watchlist_edits(changed, current, replace=False)
            for name in sorted(set(last[1]) - set(file_wl)):
                if name in current:
                    wl_edits.append(Edit("watchlist", "delete", name))
                    wl_report.deleted.append(name)
        self._apply(wl_edits, CONFIG_ACTOR, remember=(SEED_WATCHLISTS, file_wl))

        file_feeds: dict[str, dict[str, Any]] = {
            url: {"title": t, "interval": int(iv.total_seconds())} for url, t, iv in feeds}
        last = self.store.shared(SEED_FEEDS)
        rows = self.feeds(counts=False)
        wanted = {u: (v["title"], v["interval"]) for u, v in file_feeds.items()
                  if last is None or last[1].get(u) != v}
        feed_edits, feed_report = _feed_edits(wanted, rows, last is None, 0)
        if last is not None:
            live = {f.url for f in rows}
            for url in sorted(set(last[1]) - set(file_feeds)):
                if url in live:
                    feed_edits.append(Edit("feed", "delete", url))
                    feed_report.deleted.append(url)
        self._apply(feed_edits, CONFIG_ACTOR, remember=(SEED_FEEDS, file_feeds))
        return wl_report, feed_report

    # ------------------------------------------------------------ internals

    def _apply(self, edits: list[Edit], actor: str, *,
               remember: tuple[str, Any] | None = None,
               progress: Callable[[int, int], None] | None = None) -> list[AuditEntry]:
        if not edits and remember is None:
            if progress is not None:
                progress(0, 0)
            return []
        return self.store.apply_edits(edits, self.clock(), actor,
                                      publish=(WATCHLISTS, shared_watchlists, self.worker),
                                      remember=remember, progress=progress)


def _canonical(definition: dict[str, Any]) -> dict[str, Any]:
    """A stored definition in canonical form (rows written before the catalog hold
    ``dataclasses.asdict`` of the spec)."""
    try:
        return definition_of(watchlist_specs({"watchlists": [definition]}, "database")[0])
    except ConfigError:
        return definition


def _watchlist_edits(wanted: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]],
                     replace: bool) -> tuple[list[Edit], ImportReport]:
    report = ImportReport([], [], [], [])
    edits = []
    for name, d in wanted.items():
        old = current.get(name)
        if old == d:
            report.unchanged.append(name)
            continue
        edits.append(Edit("watchlist", "put", name, d))
        (report.created if old is None else report.updated).append(name)
    if replace:
        for name in sorted(set(current) - set(wanted)):
            edits.append(Edit("watchlist", "delete", name))
            report.deleted.append(name)
    return edits, report


def _feed_edits(wanted: dict[str, tuple[str | None, int | None]], rows: list[FeedRow],
                replace: bool, default_interval: int) -> tuple[list[Edit], ImportReport]:
    """Edits making ``wanted`` (url -> (title, interval seconds or None: keep or
    default)) hold; with ``replace``, removing the feeds not in it."""
    report = ImportReport([], [], [], [])
    edits = []
    current = {f.url: f for f in rows}
    for url, (title, interval) in wanted.items():
        row = current.get(url)
        seconds = interval or (int(row.interval.total_seconds()) if row else default_interval)
        if row is not None and int(row.interval.total_seconds()) == seconds \
                and (not title or title == row.title):
            report.unchanged.append(url)
            continue
        edits.append(Edit("feed", "put", url, {"title": title, "interval": seconds}))
        (report.created if row is None else report.updated).append(url)
    if replace:
        for url in sorted(set(current) - set(wanted)):
            edits.append(Edit("feed", "delete", url))
            report.deleted.append(url)
    return edits, report


def check_feed_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError([Problem("feed", "url", f"{url!r} is not an http:// or https:// URL")])
    return url


async def discover_feed(fetcher: Fetcher, url: str) -> Discovered:
    """The feed at ``url``: the URL itself when it serves a feed, else the first feed an
    HTML page advertises with ``<link rel="alternate">``. Raises FeedError saying what
    was found instead."""
    url = check_feed_url(url)
    body, headers, where = await _get(fetcher, url)
    try:
        parsed = await asyncio.to_thread(parse_feed, body, headers, where)
        return Discovered(url, parsed.title or None)
    except FeedError as exc:
        found = discover(body, where)
        if not found:
            if _looks_html(body, headers):
                raise FeedError(
                    f"{url} is an HTML page that advertises no feed (no <link "
                    'rel="alternate" type="application/rss+xml"> or atom+xml); give the '
                    "feed's own URL") from exc
            raise FeedError(f"{url}: {exc}") from exc
    feed_url = found[0]
    body, headers, where = await _get(fetcher, feed_url)
    try:
        parsed = await asyncio.to_thread(parse_feed, body, headers, where)
    except FeedError as exc:
        raise FeedError(f"the page {url} advertises {feed_url}, but that is not a feed: "
                        f"{exc}") from exc
    return Discovered(feed_url, parsed.title or None,
                      f"found the feed {feed_url} on the page {url}")


async def _get(fetcher: Fetcher, url: str) -> tuple[bytes, dict[str, str], str]:
    result = await fetcher.fetch(url)
    if result.error is not None:
        raise FeedError(f"cannot fetch {url}: {result.error}")
    if result.status is None or not 200 <= result.status < 300:
        raise FeedError(f"cannot fetch {url}: HTTP {result.status}")
    return result.body, result.headers, result.moved_to or url


def _looks_html(body: bytes, headers: dict[str, str]) -> bool:
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    head = body.lstrip()[:200].lower()
    return "html" in ctype.lower() or head.startswith((b"<!doctype html", b"<html"))


def _specs(definitions: list[dict[str, Any]]) -> list[WatchlistSpec]:
    """The specs of stored definitions; ConfigError naming each one this version of
    monitor refuses (and its field)."""
    specs, problems = [], []
    for d in definitions:
        try:
            specs.append(watchlist_specs({"watchlists": [d]}, "database")[0])
        except ConfigError as exc:
            name = d.get("name", "?") if isinstance(d, dict) else "?"
            problems += [Problem("database", p.field.replace(
                "watchlists[0]", f"watchlist {name}", 1), p.message + " (fix it with "
                "monitor watchlists import)") for p in exc.problems]
    if problems:
        raise ConfigError(problems)
    return specs

"""The commands that edit the catalog: feeds (add with autodiscovery, pause, resume,
remove, OPML import and export), watchlists (list, show, import, export, delete) and
the audit log. Each edit is made as ``cli:<OS user>`` and audited."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .catalog import AuditEntry, Catalog, ImportReport, discover_feed
from .cli_output import iso, print_table
from .config import Config, parse_duration
from .daemon import App, build
from .errors import ConfigError, Problem

__all__ = ["actor", "add_audit_command", "add_feed_commands", "add_watchlist_commands",
           "cmd_watchlists_list"]


def actor() -> str:
    """Who edits from this command line: ``cli:`` and the OS user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "cli:unknown"


def _open(config: Config) -> tuple[App, Catalog]:
    app = build(config)
    return app, Catalog(app.store, app.clock,
                        default_interval=config.settings.fetch.default_interval,
                        worker=actor())  # as App.catalog(), published by the user


def _duration(text: str) -> Any:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


# ---------------------------------------------------------------- feeds


def add_feed_commands(sub: Any) -> None:
    """``feeds add|remove|pause|resume|import-opml|export-opml`` under ``feeds``."""
    add = sub.add_parser(
        "add", help="add a feed (finds the feed of a web page)",
        description="Add a feed; the daemon polls it at its next tick, without a restart. "
        "If URL is a web page, the feed it advertises (<link rel=\"alternate\">) is "
        "added instead, and the command says so. Adding a feed already there updates "
        "its title and interval (those given); adding a removed one brings it back.")
    add.add_argument("url", metavar="URL", help="the feed's URL, or a page that links to it")
    add.add_argument("--title", help="the feed's title (default: the feed's own)")
    add.add_argument("--interval", type=_duration, metavar="DURATION",
                     help="how often to poll it, e.g. 10m (default: [fetch] default_interval)")
    add.add_argument("--no-discover", action="store_true",
                     help="add URL as given, without fetching it")
    add.set_defaults(func=cmd_feeds_add)
    for name, what, more in (
            ("remove", "stop polling a feed and drop it from the list",
             " Its stored items and matches stay; `feeds add` brings it back."),
            ("pause", "stop polling a feed, keeping it in the list", ""),
            ("resume", "poll a paused feed again", " It is polled at the next tick.")):
        p = sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + "."
                           + more + " The running daemon follows without a restart.")
        p.add_argument("url", metavar="URL", help="the feed's URL as `feeds list` shows it")
        p.set_defaults(func=cmd_feeds_edit, action=name)
    imp = sub.add_parser(
        "import-opml", help="add the feeds of an OPML file",
        description="Add every feed of an OPML file (the export of any feed reader); "
        "titles are updated, intervals kept. With --replace, feeds not in the file are "
        "removed, so the list mirrors the file. A bad entry refuses the whole file. A "
        "progress bar goes to stderr when it is a terminal.")
    imp.add_argument("file", type=Path, metavar="FILE", help="the OPML file")
    imp.add_argument("--replace", action="store_true",
                     help="remove the feeds the file does not list")
    imp.set_defaults(func=cmd_feeds_import)
    exp = sub.add_parser("export-opml", help="write the feeds as OPML",
                         description="Write every feed (paused ones included) as an OPML "
                         "file, which `feeds import-opml` reads back unchanged.")
    exp.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help="write to FILE (default: standard output)")
    exp.set_defaults(func=cmd_feeds_export)


def cmd_feeds_add(config: Config, args: argparse.Namespace) -> int:
    app, catalog = _open(config)
    url, title = args.url, args.title
    if not args.no_discover:
        found = asyncio.run(_discover(app, url))
        if found.note:
            print(found.note)
        url, title = found.url, title or found.title
    entry = catalog.add_feed(url, actor(), title=title, interval=args.interval)
    verb = "added" if entry.action == "create" else "updated"
    shown = f" ({entry.after['title']})" if entry.after and entry.after.get("title") else ""
    print(f"{verb} {url}{shown}; the daemon polls it at its next tick")
    return 0


async def _discover(app: App, url: str) -> Any:
    async with app.fetcher() as fetcher:
        return await discover_feed(fetcher, url)


def cmd_feeds_edit(config: Config, args: argparse.Namespace) -> int:
    _, catalog = _open(config)
    if args.action == "remove":
        catalog.remove_feed(args.url, actor())
        print(f"removed {args.url} (its items stay)")
    else:
        catalog.set_feed_active(args.url, args.action == "resume", actor())
        print(f"{'resumed' if args.action == 'resume' else 'paused'} {args.url}")
    return 0


def cmd_feeds_import(config: Config, args: argparse.Namespace) -> int:
    _, catalog = _open(config)
    data = _read_bytes(args.file)
    bar = progress_bar(sys.stderr, "importing feeds")
    report = catalog.import_opml(data, actor(), replace=args.replace, progress=bar,
                                 source=args.file.name)
    _print_report(report, "feed")
    return 0


def cmd_feeds_export(config: Config, args: argparse.Namespace) -> int:
    _, catalog = _open(config)
    data = catalog.export_opml()
    if args.output:
        args.output.write_bytes(data)
        print(f"wrote {len(catalog.feeds())} feeds to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0


# ---------------------------------------------------------------- watchlists


def add_watchlist_commands(sub: Any) -> None:
    """``watchlists show|import|export|delete`` under ``watchlists`` (and ``list``'s
    options: the parser is made by cli.py)."""
    show = sub.add_parser("show", help="one watchlist: its actors and rules",
                          description="Show one watchlist as the daemon runs it: actors "
                          "with their @slug and aliases, and numbered rules.")
    show.add_argument("name", metavar="NAME", help="the watchlist's name")
    show.add_argument("--json", action="store_true", help="print its definition as JSON")
    show.set_defaults(func=cmd_watchlists_show)
    imp = sub.add_parser(
        "import", help="create or update watchlists from a YAML file",
        description="Apply a file in the watchlists.yaml format: each watchlist in it is "
        "created or replaced. With --replace, watchlists not in the file are deleted, so "
        "the database mirrors the file (for teams that keep watchlists in git). Every "
        "rule is checked first: one error (named by file, field and column) refuses the "
        "whole file. Running daemons follow within seconds.")
    imp.add_argument("file", type=Path, metavar="FILE", help="a watchlists YAML file")
    imp.add_argument("--replace", action="store_true",
                     help="delete the watchlists the file does not list")
    imp.set_defaults(func=cmd_watchlists_import)
    exp = sub.add_parser("export", help="write the watchlists as YAML",
                         description="Write every watchlist in the watchlists.yaml format; "
                         "`watchlists import` reads it back unchanged.")
    exp.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help="write to FILE (default: standard output)")
    exp.set_defaults(func=cmd_watchlists_export)
    rm = sub.add_parser("delete", help="delete a watchlist",
                        description="Delete a watchlist: it stops matching at once in "
                        "running daemons. Its past matches stay; importing or saving the "
                        "name again brings it back.")
    rm.add_argument("name", metavar="NAME", help="the watchlist's name")
    rm.set_defaults(func=cmd_watchlists_delete)


def cmd_watchlists_list(config: Config, args: argparse.Namespace) -> int:
    _, catalog = _open(config)
    defs = catalog.watchlists()
    if getattr(args, "json", False):
        print(json.dumps(defs, indent=2, ensure_ascii=False))
        return 0
    if not defs:
        print("no watchlists (monitor watchlists import FILE)")
        return 0
    table: list[tuple[str, ...]] = [("NAME", "RULES", "ACTORS", "DESCRIPTION")]
    table += [(d["name"], str(len(d["rules"])), str(len(d["actors"])),
               _short(d.get("description", ""), 60)) for d in defs]
    print_table(table)
    return 0


def cmd_watchlists_show(config: Config, args: argparse.Namespace) -> int:
    _, catalog = _open(config)
    d = catalog.watchlist(args.name)
    if args.json:
        print(json.dumps(d, indent=2, ensure_ascii=False))
        return 0
    spec = catalog.spec(d)
    print(f"{spec.name}: {len(spec.rules)} rules, {len(spec.actors)} actors"
          + (f" — {spec.description}" if spec.description else ""))
    for a in spec.actors:
        aliases = ", ".join(al.text for al in a.aliases)
        print(f"  @{a.slug}  {a.name}" + (f"  ({aliases})" if aliases else ""))
    for i, r in enumerate(spec.rules):
        print(f"  [{i}] {r}")
    return 0


def cmd_watchlists_import(config: Config, args: argparse.Namespace) -> int:
    _, catalog = _open(config)
    report = catalog.import_watchlists(_read(args.file), actor(), replace=args.replace,
                                       source=args.file.name)
    _print_report(report, "watchlist")
    return 0


def cmd_watchlists_export(config: Config, args: argparse.Namespace) -> int:
    _, catalog = _open(config)
    text = catalog.export_watchlists()
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {len(catalog.watchlists())} watchlists to {args.output}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_watchlists_delete(config: Config, args: argparse.Namespace) -> int:
    _, catalog = _open(config)
    catalog.delete_watchlist(args.name, actor())
    print(f"deleted watchlist {args.name} (its matches stay)")
    return 0


# ---------------------------------------------------------------- audit


def add_audit_command(sub: Any) -> None:
    au = sub.add_parser("audit", help="who changed which watchlist or feed, and when",
                        description="The audit log, newest first: every edit of a "
                        "watchlist, a feed or a user, by whom (cli:USER, web:USER, or "
                        "config-file for what the config files seeded), with the record "
                        "before and after it (--json).")
    au.add_argument("--kind", choices=["watchlist", "feed", "user"],
                    help="only edits of this kind")
    au.add_argument("--target", metavar="NAME",
                    help="only edits of this watchlist name, feed URL or user name")
    au.add_argument("--limit", type=int, default=50, metavar="N",
                    help="entries to show (default 50)")
    au.add_argument("--json", action="store_true",
                    help="print JSON for scripts, with before and after")
    au.set_defaults(func=cmd_audit)


def cmd_audit(config: Config, args: argparse.Namespace) -> int:
    _, catalog = _open(config)
    rows = catalog.audit(limit=args.limit, kind=args.kind, target=args.target)
    if args.json:
        print(json.dumps([audit_json(e) for e in rows], indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no edits recorded")
        return 0
    table: list[tuple[str, ...]] = [("WHEN", "ACTOR", "ACTION", "KIND", "TARGET", "CHANGE")]
    table += [(e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.action, e.kind, e.target,
               _change(e)) for e in rows]
    print_table(table)
    return 0


def audit_json(e: AuditEntry) -> dict[str, Any]:
    return {"id": e.id, "at": iso(e.at), "actor": e.actor, "action": e.action,
            "kind": e.kind, "target": e.target, "before": e.before, "after": e.after}


def _change(e: AuditEntry) -> str:
    """What an update changed, in a few words: the keys whose values differ."""
    if e.before is None or e.after is None:
        return ""
    keys = [k for k in dict.fromkeys([*e.before, *e.after])
            if e.before.get(k) != e.after.get(k)]
    return ", ".join(keys) if keys else "no change"


# ---------------------------------------------------------------- helpers


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _read(path: Path) -> str:
    try:
        return _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(path.name, "", f"not UTF-8 text: {exc.reason}")]) from exc


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc.strerror}")]) from exc


def _print_report(report: ImportReport, what: str) -> None:
    for label, names in (("created", report.created), ("updated", report.updated),
                         ("deleted", report.deleted)):
        for name in names:
            print(f"  {label} {what} {name}")
    print(f"{what}s: {report.summary()}")


def progress_bar(stream: TextIO, label: str,
                 width: int = 30) -> Callable[[int, int], None] | None:
    """A progress callback drawing a bar on ``stream`` if it is a terminal, else None."""
    if not stream.isatty():
        return None

    def draw(done: int, total: int) -> None:
        filled = width * done // total if total else width
        stream.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            stream.write("\n")
        stream.flush()
    return draw

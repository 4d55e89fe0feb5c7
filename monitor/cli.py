"""The command line: ``monitor [--config FILE] COMMAND``.

Exit status: 0 on success, 1 when the configuration is invalid or a fatal error
stops the command, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import __version__, cli_catalog, cli_web, logs
from .alerts import channel_problems, load_channel, send_test
from .cli_output import iso as _iso
from .cli_output import print_table as _print_table
from .cli_rules import cmd_backtest as _cmd_backtest
from .cli_rules import cmd_watchlists_test as _cmd_watchlists_test
from .cli_rules import duration as _duration
from .config import Config, default_config_path, load_config
from .daemon import build, run_once, schedule_problems
from .errors import ConfigError, MonitorError
from .feed_health import feed_status
from .service import create_service
from .store import create, exclusive, migrate

__all__ = ["main"]

log = logging.getLogger("monitor")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="monitor",
        description="Watch news feeds, match watchlists, send alerts.",
        epilog="Documentation: README.md and docs/ in the source tree.",
    )
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="settings file (default: $MONITOR_CONFIG or config/monitor.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    p.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the daemon (polls feeds, sends alerts)",
                         description="Run the daemon in the foreground until SIGINT or "
                         "SIGTERM. Migrates the database to the current schema first. SIGHUP "
                         "reloads the configuration files; under systemd it speaks sd_notify.")
    run.add_argument("--once", action="store_true",
                     help="poll every feed once, send every pending alert, and exit")
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check", help="validate the settings, watchlists and channel URLs",
                           description="Validate the settings file, the watchlists and the "
                           "feed list, and check every channel URL with apprise. Prints each "
                           "error with its file and field; exits 1 if there is any.")
    check.set_defaults(func=_cmd_check)

    mig = sub.add_parser("migrate", help="create or upgrade the database schema",
                         description="Apply the Alembic migrations up to the newest schema.")
    mig.set_defaults(func=_cmd_migrate)

    feeds = sub.add_parser("feeds", help="feeds and their health",
                           description="The feeds in force and their fetch state: list, add, "
                           "pause, resume, remove, OPML import and export.")
    feeds_sub = feeds.add_subparsers(dest="feeds_command", metavar="ACTION", required=True)
    fl = feeds_sub.add_parser("list", help="every feed with its status, last success and "
                              "last error", description="List the feeds (paused ones too) "
                              "with their status, last success, next check and last error.")
    fl.add_argument("--json", action="store_true", help="print JSON for scripts")
    fl.set_defaults(func=_cmd_feeds_list)
    cli_catalog.add_feed_commands(feeds_sub)

    alerts = sub.add_parser("alerts", help="the alert outbox",
                            description="Alerts waiting to be sent or sent already.")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    al = alerts_sub.add_parser("list", help="alerts still pending, with their last error",
                               description="List the alerts not yet delivered, with the "
                               "number of attempts and the last error; with --failed, the "
                               "dead letters (alerts that used every attempt) instead.")
    al.add_argument("--failed", action="store_true",
                    help="list the dead letters, with every error")
    al.add_argument("--json", action="store_true", help="print JSON for scripts")
    al.set_defaults(func=_cmd_alerts_list)
    ar = alerts_sub.add_parser("retry", help="send dead letters again",
                               description="Put dead letters (or alerts waiting out a "
                               "retry delay) back in the queue, due now, with a fresh count "
                               "of attempts. Their error history is kept.")
    ar.add_argument("ids", nargs="*", type=int, metavar="ID", help="alert ids (alerts list)")
    ar.add_argument("--all", action="store_true", help="every dead letter")
    ar.set_defaults(func=_cmd_alerts_retry)

    wl = sub.add_parser("watchlists", help="watchlists and rules",
                        description="The watchlists in force: list, show, import, export, "
                        "delete; and try rules.")
    wl_sub = wl.add_subparsers(dest="watchlists_command", metavar="ACTION", required=True)
    wll = wl_sub.add_parser("list", help="the watchlists with their rules and actors",
                            description="List the watchlists in force (in the database).")
    wll.add_argument("--json", action="store_true", help="print their definitions as JSON")
    wll.set_defaults(func=cli_catalog.cmd_watchlists_list)
    cli_catalog.add_watchlist_commands(wl_sub)
    wlt = wl_sub.add_parser(
        "test", help="try a rule (or a watchlist) on text from stdin",
        description="Match a rule, or a configured watchlist by name, against the text "
        "read from standard input (or stored items: --item, --since), and show which "
        "rules fired and on which words, or the closest miss: the rule that came nearest "
        "and the operands that failed. Rules may use the actors of the watchlist given "
        "with --watchlist.")
    wlt.add_argument("rule", help="a rule, e.g. 'Tripoli AND NOT Lebanon', or a watchlist name")
    wlt.add_argument("--watchlist", metavar="NAME",
                     help="watchlist whose actors the rule may refer to (@slug)")
    src = wlt.add_mutually_exclusive_group()
    src.add_argument("--item", metavar="ID", type=int, action="append",
                     help="match this stored item instead of stdin, and say why not "
                     "(repeatable)")
    src.add_argument("--since", metavar="DURATION", type=_duration,
                     help="match the items fetched in the last DURATION (e.g. 7d)")
    wlt.set_defaults(func=_cmd_watchlists_test)

    bt = sub.add_parser(
        "backtest", help="what a watchlist would have matched in the stored items",
        description="Match a watchlist against the items stored in the last DURATION and "
        "report what it would have alerted on, with the number of items per rule. With "
        "--file, take the watchlist from another file (an edit not yet saved in place) "
        "and also list the items it gains and loses against the watchlist in force.")
    bt.add_argument("watchlist", help="the watchlist's name")
    bt.add_argument("--since", metavar="DURATION", type=_duration, default=timedelta(days=7),
                    help="how far back to look (default 7d)")
    bt.add_argument("--file", metavar="WATCHLISTS", type=Path,
                    help="a watchlists YAML file to take the watchlist from")
    bt.add_argument("--limit", metavar="N", type=int, default=50,
                    help="items to list (default 50)")
    bt.add_argument("--json", action="store_true", help="print JSON for scripts")
    bt.set_defaults(func=_cmd_backtest)

    cli_catalog.add_audit_command(sub)

    ta = sub.add_parser("test-alert", help="send a test alert through one channel",
                        description="Send a short test message through the named channel "
                        "and report whether apprise accepted it.")
    ta.add_argument("channel", help="the channel's name in the settings file")
    ta.set_defaults(func=_cmd_test_alert)
    cli_web.add_parsers(sub)  # users, web
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path: Path = args.config or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    _setup_logging(config, args.verbose)
    try:
        code: int = args.func(config, args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except MonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader left early (monitor feeds list | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


def _setup_logging(config: Config, verbose: bool) -> None:
    settings = config.settings
    logs.configure("DEBUG" if verbose else settings.log_level, settings.log_format)


def _cmd_run(config: Config, args: argparse.Namespace) -> int:
    if args.once:
        lock = exclusive(config.settings.database.url.get_secret_value())
        try:
            app = build(config)
            if lock is not None:  # the only process on this SQLite file: claims are dead
                app.store.release_all_feeds()
            report = asyncio.run(run_once(app))
        finally:
            if lock is not None:
                lock.release()
        print(report.summary())
        for p in report.polls:
            if not p.ok:
                print(f"  feed failed: {p.feed}: {p.error}")
        for channel, error in report.dispatch.errors.items():
            print(f"  channel failed: {channel}: {error}")
        return 0

    service = create_service(
        config, os.environ, on_reload=lambda new: _setup_logging(new.config, args.verbose))
    asyncio.run(service.run(asyncio.Event()))
    return 0


def _cmd_check(config: Config, args: argparse.Namespace) -> int:
    problems = channel_problems(config.path.name, config.channels, config.templates)
    problems += schedule_problems(config)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    rules = sum(len(w.rules) for w in config.watchlists)
    print(f"{config.path}: ok — {len(config.feeds)} feeds, {len(config.watchlists)} "
          f"watchlists ({rules} rules), {len(config.channels)} channels")
    return 0


def _cmd_migrate(config: Config, args: argparse.Namespace) -> int:
    before, after = migrate(create(config.settings.database.url.get_secret_value()))
    print(f"database schema: {before or 'empty'} -> {after}" if before != after
          else f"database schema is current ({after})")
    return 0


def _fmt_time(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else "-"


def _cmd_feeds_list(config: Config, args: argparse.Namespace) -> int:
    app = build(config)
    rows = app.store.catalog_feeds()  # paused ones too
    now = app.clock()
    if args.json:
        print(json.dumps([{
            "url": f.url, "title": f.title, "status": feed_status(f, now), "items": f.items,
            "last_status": f.last_status, "last_success_at": _iso(f.last_success_at),
            "next_check_at": _iso(f.next_check_at), "last_error": f.last_error,
            "consecutive_failures": f.consecutive_failures, "fetch_url": f.fetch_url,
            "gone_at": _iso(f.gone_at), "active": f.active,
            "interval": int(f.interval.total_seconds()),
        } for f in rows], indent=2))
        return 0
    table: list[tuple[str, ...]] = [
        ("STATUS", "ITEMS", "LAST SUCCESS", "NEXT CHECK", "FEED", "LAST ERROR")]
    table += [(feed_status(f, now), str(f.items), _fmt_time(f.last_success_at),
               _fmt_time(f.next_check_at), f.url, f.last_error or "") for f in rows]
    _print_table(table)
    return 0


def _cmd_alerts_list(config: Config, args: argparse.Namespace) -> int:
    store = build(config).store
    rows = store.alerts(["dead"] if args.failed else ["pending", "sending"])
    if args.json:
        print(json.dumps([{
            "id": a.id, "channel": a.channel, "watchlist": a.watchlist, "title": a.title,
            "status": a.status, "attempts": a.attempts, "last_error": a.last_error,
            "errors": list(a.errors), "created_at": _iso(a.created_at),
        } for a in rows], indent=2))
        return 0
    if not rows:
        print("no failed alerts" if args.failed else "no pending alerts")
        return 0
    table: list[tuple[str, ...]] = [
        ("ID", "CHANNEL", "WATCHLIST", "ATTEMPTS", "TITLE", "LAST ERROR")]
    table += [(str(a.id), a.channel, a.watchlist, str(a.attempts), a.title[:60],
               a.last_error or "") for a in rows]
    _print_table(table)
    return 0


def _cmd_alerts_retry(config: Config, args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.all):
        print("error: give alert ids or --all", file=sys.stderr)
        return 2
    store = build(config).store
    count = store.retry(None if args.all else args.ids, datetime.now(UTC))
    print(f"{count} alert{'s' if count != 1 else ''} queued again")
    return 0 if count or args.all else 1


def _cmd_test_alert(config: Config, args: argparse.Namespace) -> int:
    names = {c.name: c for c in config.channels}
    if args.channel not in names:
        print(f"error: no channel named {args.channel!r} (channels: "
              f"{', '.join(names) or 'none'})", file=sys.stderr)
        return 1
    channel = load_channel(args.channel, names[args.channel].url.get_secret_value())
    error = asyncio.run(send_test(channel, datetime.now(UTC)))
    if error is None:
        print(f"sent a test alert to {args.channel} ({channel.display_url})")
        return 0
    print(f"error: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

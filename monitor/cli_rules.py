"""The commands for rule writers: ``watchlists test`` and ``backtest``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from .backtest import backtest
from .cli_output import iso, print_table
from .config import EVERY, Config, load_watchlists, parse_duration
from .daemon import build
from .match import (
    Document,
    Watchlist,
    WatchlistMatch,
    compile_errors,
    compile_watchlist,
    snippet,
)
from .match.explain import closest_miss
from .match.watchlist import WatchlistSpec
from .poll import stored_document
from .text import html_to_text

__all__ = ["cmd_backtest", "cmd_watchlists_test", "duration"]


def cmd_watchlists_test(config: Config, args: argparse.Namespace) -> int:
    by_name = {w.name: w for w in build(config).catalog().specs()}  # those in force
    if args.rule in by_name:
        spec = by_name[args.rule]
    else:
        actors = by_name[args.watchlist].actors if args.watchlist in by_name else ()
        if args.watchlist and args.watchlist not in by_name:
            print(f"error: no watchlist named {args.watchlist!r}", file=sys.stderr)
            return 1
        spec = WatchlistSpec("rule", (args.rule,), actors)
        errors = compile_errors(spec)
        if errors:
            print(f"error: {errors[0]}", file=sys.stderr)
            return 1
    watchlist = compile_watchlist(spec)
    if args.item or args.since:
        return _test_stored(config, watchlist, args)
    doc = Document.of(content=html_to_text(sys.stdin.read()))
    match = watchlist.match(doc)
    if match is None:
        print("no match")
        _print_miss(watchlist, doc)
        return 1
    _print_match(doc, match)
    return 0


def _print_match(doc: Document, match: WatchlistMatch, indent: str = "") -> None:
    for r in match.rules:
        terms = ", ".join(f"{t.text!r}@{t.field}:{t.start}" if t.field != "content"
                          else f"{t.text!r}@{t.start}" for t in r.terms)
        print(f"{indent}match: [{r.index}] {r.rule}\n{indent}  terms: {terms}")
    print(f"{indent}  snippet: {snippet(doc, match.terms).render('[', ']')}")


def _print_miss(watchlist: Watchlist, doc: Document, indent: str = "") -> None:
    miss = closest_miss(watchlist, doc)
    if miss is None:
        return
    print(f"{indent}closest miss: [{miss.rule.index}] {miss.rule.text}")
    for m in miss.misses:
        print(f"{indent}  failed: {m}")


def _test_stored(config: Config, watchlist: Watchlist, args: argparse.Namespace) -> int:
    store = build(config).store
    if args.item:
        found = {i.id: i for i in store.items(ids=args.item)}
        missing = [str(i) for i in args.item if i not in found]
        if missing:
            print(f"error: no stored item with id {', '.join(missing)}", file=sys.stderr)
            return 1
        hit = False
        for item_id in args.item:
            item = found[item_id]
            doc = stored_document(item)
            match = watchlist.match(doc)
            print(f"item {item.id}: {item.title}")
            if match is None:
                print("  no match")
                _print_miss(watchlist, doc, "  ")
            else:
                hit = True
                _print_match(doc, match, "  ")
        return 0 if hit else 1
    since = datetime.now(UTC) - args.since
    report = backtest(watchlist, store.items(since=since),
                      _progress(store.count_items(since), "matching"))
    for h in report.hits:
        rules = ", ".join(f"[{r.index}]" for r in h.match.rules)
        print(f"item {h.item.id}: {rules} {h.item.title}")
    print(f"{len(report.hits)} of {report.scanned} items fetched since "
          f"{since:%Y-%m-%d %H:%M} UTC match")
    return 0 if report.hits else 1


def _progress(total: int, what: str) -> Callable[[int], None] | None:
    """A progress bar on stderr, only when it is a terminal and the run is long."""
    if total < 1000 or not sys.stderr.isatty():
        return None
    step = max(1, total // 200)

    def show(done: int) -> None:
        if done % step and done != total:
            return
        filled = 30 * done // total
        sys.stderr.write(f"\r{what} [{'#' * filled}{' ' * (30 - filled)}] {done:,}/{total:,}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def cmd_backtest(config: Config, args: argparse.Namespace) -> int:
    app = build(config)
    in_db = {w.name: w for w in app.catalog().specs()}  # those in force
    specs = load_watchlists(args.file) if args.file else tuple(in_db.values())
    by_name = {w.name: w for w in specs}
    if args.watchlist not in by_name:
        print(f"error: no watchlist named {args.watchlist!r} (watchlists: "
              f"{', '.join(by_name) or 'none'})", file=sys.stderr)
        return 1
    watchlist = compile_watchlist(by_name[args.watchlist])
    in_force = in_db.get(args.watchlist)
    baseline = compile_watchlist(in_force) if args.file and in_force is not None else None
    store = app.store
    since = datetime.now(UTC) - args.since
    total = store.count_items(since)
    report = backtest(watchlist, store.items(since=since),
                      None if args.json else _progress(total, f"backtest {watchlist.name}"),
                      baseline)
    if args.json:
        print(json.dumps({
            "watchlist": report.watchlist, "since": since.isoformat(),
            "items_scanned": report.scanned, "items_matched": len(report.hits),
            "rules": [{"index": r.index, "rule": r.rule, "items": r.items}
                      for r in report.rules],
            "matches": [{
                "item_id": h.item.id, "title": h.item.title, "link": h.item.link,
                "feed": h.item.feed_url, "published_at": iso(h.item.published_at),
                "fetched_at": iso(h.item.fetched_at),
                "rules": [r.index for r in h.match.rules],
                "terms": sorted({t.text for t in h.match.terms}),
            } for h in report.hits],
            **({"compared_with_config": {
                "gained": [h.item.id for h in report.gained],
                "lost": [i.id for i in report.lost],
            }} if baseline is not None else {}),
        }, indent=2, ensure_ascii=False))
        return 0
    channels = [c.name for c in config.channels if watchlist.name in c.watchlists
                or EVERY in c.watchlists]
    print(f"backtest {watchlist.name}: {len(report.hits)} of {report.scanned} items fetched "
          f"since {since:%Y-%m-%d %H:%M} UTC would have matched"
          + (f" (alerting {', '.join(channels)})" if channels else " (no channel receives it)"))
    table: list[tuple[str, ...]] = [("RULE", "ITEMS", "")]
    table += [(f"[{r.index}]", str(r.items), r.rule) for r in report.rules]
    print_table(table)
    for h in report.hits[: args.limit]:
        rules = ",".join(str(r.index) for r in h.match.rules)
        terms = ", ".join(sorted({t.text for t in h.match.terms}))
        print(f"  item {h.item.id} [{rules}] {h.item.title[:80]}  ({terms})")
    if len(report.hits) > args.limit:
        print(f"  … and {len(report.hits) - args.limit} more (--limit, or --json for all)")
    if baseline is not None:
        print("compared with the watchlist in force: "
              f"{len(report.gained)} items gained, {len(report.lost)} lost")
        for h in report.gained[: args.limit]:
            print(f"  + item {h.item.id} {h.item.title[:80]}")
        for i in report.lost[: args.limit]:
            print(f"  - item {i.id} {i.title[:80]}")
    return 0


def duration(value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc

"""CPU per feed of each stage of a cold poll, without HTTP: the new-item path alone.

    python -m bench.cold_stages [--feeds 1000] [--items 20] [--seed 1]

The bench corpus (``bench.corpus``, as ``bench.fetch_cycle`` serves it) goes through
the stages a cold poll runs, one stage at a time over every feed, in this process:

- ``parse``: ``parse_feed`` (in a parse worker);
- ``analyse``: ``Analyser.analyse`` (in the same worker): identities, ``Document``s,
  matching, snippets and story keys of every entry;
- ``pickle``: the worker's answer pickled and unpickled (the hand-off to the daemon);
- ``record``: ``Store.record_poll`` on a fresh SQLite file: the feed's state, the
  items, their stories, matches and outbox rows, in one transaction.

Each figure is CPU time (``time.process_time``) over the feeds, so other work on the
machine counts less against it than against wall time; fetching, the event loop and
thread hand-offs are left out (``bench.fetch_cycle`` measures the whole cycle).
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from monitor.config import load_config
from monitor.daemon import build
from monitor.fetch import Fetcher
from monitor.parse import parse_feed
from monitor.store import FetchState

from .corpus import feed_body

ROOT = Path(__file__).resolve().parent.parent
HEADERS = {"Content-Type": "application/xml"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--items", type=int, default=20, help="items per feed")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    n = args.feeds
    bodies = [feed_body(args.seed, i, 0, args.items) for i in range(n)]
    cpu: dict[str, float] = {}

    start = time.process_time()
    parsed = [parse_feed(b, HEADERS, f"http://127.0.0.1/feed/{i}") for i, b in enumerate(bodies)]
    cpu["parse"] = time.process_time() - start

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lines = [f'watchlists = "{ROOT / "config" / "watchlists.yaml"}"',
                 "[database]", f'url = "sqlite:///{work / "monitor.db"}"']
        for i in range(n):
            lines += ["[[feed]]", f'url = "http://127.0.0.1/feed/{i}"']
        (work / "monitor.toml").write_text("\n".join(lines) + "\n")
        app = build(load_config(work / "monitor.toml"))
        poller = app.poller(cast(Fetcher, None))  # analyses and records; never fetches
        by_url = {f.url: f for f in app.store.feeds(counts=False)}
        feeds = [by_url[f"http://127.0.0.1/feed/{i}"] for i in range(n)]
        start = time.process_time()
        analysed = [poller.analyser.analyse(p, f.title) for p, f in zip(parsed, feeds, strict=True)]
        cpu["analyse"] = time.process_time() - start

        start = time.process_time()
        answers = [pickle.dumps(("ok", a), protocol=pickle.HIGHEST_PROTOCOL) for a in analysed]
        analysed = [pickle.loads(a)[1] for a in answers]
        cpu["pickle"] = time.process_time() - start

        now = datetime.now(UTC)
        cpu["record"] = 0.0
        items = matches = 0
        for feed, a in zip(feeds, analysed, strict=True):
            state = FetchState(now, now, True, 200, etag='"1"', title=a.feed.title)
            start = time.process_time()
            counts = app.store.record_poll(feed.id, state, a.items, a.seen,
                                           story_window=poller.story_window)
            cpu["record"] += time.process_time() - start
            items += counts.new_items
            matches += counts.matches
        app.store.engine.dispose()
    print(f"{n} feeds, {items} new items, {matches} matches; CPU per feed:")
    for stage, seconds in cpu.items():
        print(f"  {stage:<8} {1000 * seconds / n:6.2f} ms")
    print(f"  {'total':<8} {1000 * sum(cpu.values()) / n:6.2f} ms")


if __name__ == "__main__":
    main()

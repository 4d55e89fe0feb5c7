"""CPU per feed of each stage of a cold poll, without HTTP: the new-item path alone.

    python -m bench.cold_stages [--feeds 1000] [--items 20] [--seed 1] [--batch 100]

The bench corpus (``bench.corpus``, as ``bench.fetch_cycle`` serves it) goes through
the stages a cold poll runs, one stage at a time over every feed, in this process:

- ``parse``: ``parse_feed`` (in a parse worker);
- ``analyse``: ``Analyser.analyse`` (in the same worker): identities, ``Document``s,
  matching, snippets and story keys of every entry;
- ``pickle``: the worker's answer pickled and unpickled (the hand-off to the daemon);
- ``record``: ``Store.record_polls`` on a fresh SQLite file, ``--batch`` polls a
  transaction as the daemon's ``PollWriter`` writes them: the feeds' states, the
  items, their stories, matches and outbox rows;
- ``record1``: the same polls one transaction each (``Store.record_poll``), on another
  fresh file: what ``record`` cost before the polls were batched. Not in the total.

Each figure is CPU time (``time.process_time``) over the feeds, so other work on the
machine counts less against it than against wall time; fetching, the event loop and
thread hand-offs are left out (``bench.fetch_cycle`` measures the whole cycle).
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from monitor.config import load_config
from monitor.daemon import build
from monitor.errors import StoreError
from monitor.fetch import Fetcher
from monitor.parse import parse_feed
from monitor.store import FetchState, PollCounts, PollWrite, Store

from .corpus import feed_body

ROOT = Path(__file__).resolve().parent.parent
HEADERS = {"Content-Type": "application/xml"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--items", type=int, default=20, help="items per feed")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=100,
                   help="polls a transaction for record (the daemon's batches)")
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
        (work / "one.toml").write_text("\n".join(lines).replace("monitor.db", "one.db") + "\n")
        app = build(load_config(work / "monitor.toml"))
        one = build(load_config(work / "one.toml")).store
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
        writes = [PollWrite(feed.id, FetchState(now, now, True, 200, etag=f'"{i}"',
                                                title=a.feed.title), a.items, a.seen)
                  for i, (feed, a) in enumerate(zip(feeds, analysed, strict=True))]
        cpu["record"], (items, matches) = _record(app.store, writes, args.batch,
                                                  poller.story_window)
        record1, counted = _record(one, writes, 1, poller.story_window)
        assert counted == (items, matches)
        app.store.engine.dispose()
        one.engine.dispose()
    print(f"{n} feeds, {items} new items, {matches} matches; CPU per feed:")
    for stage, seconds in cpu.items():
        print(f"  {stage:<8} {1000 * seconds / n:6.2f} ms")
    print(f"  {'total':<8} {1000 * sum(cpu.values()) / n:6.2f} ms")
    print(f"  ({'record1':<6} {1000 * record1 / n:6.2f} ms: one poll a transaction, "
          f"record_poll; record: {args.batch} a transaction)")


def _record(store: Store, writes: list[PollWrite], batch: int, window: timedelta
            ) -> tuple[float, tuple[int, int]]:
    """CPU seconds to store ``writes``, ``batch`` a transaction; (new items, matches)."""
    items = matches = 0
    start = time.process_time()
    for i in range(0, len(writes), batch):
        if batch == 1:
            w = writes[i]
            assert w.state is not None
            results: list[PollCounts | StoreError] = [store.record_poll(
                w.feed_id, w.state, w.items, w.seen, story_window=window)]
        else:
            results = store.record_polls(writes[i : i + batch], story_window=window)
        for counts in results:
            assert isinstance(counts, PollCounts), counts
            items += counts.new_items
            matches += counts.matches
    return time.process_time() - start, (items, matches)


if __name__ == "__main__":
    main()

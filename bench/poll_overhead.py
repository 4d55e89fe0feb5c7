"""What a 304 costs outside the HTTP client: ``run --once`` rounds in which every feed's
fetch is answered 304 at once by a stand-in fetcher, so the figure is the claim, the
poll, the state computation and write, and the round's own bookkeeping.

    python -m bench.poll_overhead [--feeds 3000] [--rounds 3] [--step 15]

The database is a fresh SQLite file whose feeds each hold 20 items, seeded through
``Store.record_poll`` (no parsing). Rounds are ``--step`` minutes apart on the clock:
below an hour a 304 leaves its items' ``last_seen_at`` alone (``SEEN_SLACK``), from an
hour it rewrites them. CPU is the process's (user + system, every thread).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from bench.fetch_cycle import ROOT, peak_mb
from monitor.config import load_config
from monitor.daemon import build, run_once
from monitor.fetch import FeedAuth, Fetcher, FetchResult
from monitor.store import FetchState, NewItem


class NotModified:
    """Answers every fetch 304 with the headers a real server sends, at once."""

    async def __aenter__(self) -> NotModified:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None

    async def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None,
                    auth: FeedAuth | None = None) -> FetchResult:
        await asyncio.sleep(0)
        return FetchResult(url, 304, headers={
            "date": "Fri, 27 Nov 2026 00:00:00 GMT", "server": "bench", "etag": etag or "",
            "cache-control": "max-age=60"}, etag=etag, last_modified=last_modified,
            elapsed=0.001)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--feeds", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--step", type=float, default=15, help="minutes between rounds")
    args = p.parse_args()
    step = timedelta(minutes=args.step)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        lines = [f'watchlists = "{ROOT / "config" / "watchlists.yaml"}"', "[database]",
                 f'url = "sqlite:///{workdir / "monitor.db"}"', "[fetch]", "concurrency = 50"]
        for i in range(args.feeds):
            lines += ["[[feed]]", f'url = "http://127.0.0.1:9/feed/{i}"']
        (workdir / "monitor.toml").write_text("\n".join(lines) + "\n")
        app = build(load_config(workdir / "monitor.toml"))
        start = datetime.now(UTC)
        for f in app.store.feeds(counts=False):
            items = [NewItem(f"{f.id}-{k}", None, None, "title", "summary", "content",
                             "author", None) for k in range(20)]
            app.store.record_poll(f.id, FetchState(start - step, start, True, 200,
                                                   etag=f'"{f.id}"'),
                                  items, [i.key for i in items])

        def stand_in() -> Fetcher:
            return NotModified()  # type: ignore[return-value]

        app.fetcher = stand_in  # type: ignore[method-assign]
        print(f"{args.feeds} feeds of 20 items, rounds {args.step:g} min apart; "
              "every fetch answered 304 by a stand-in")
        for r in range(args.rounds):
            app.clock = lambda r=r: datetime.now(UTC) + r * step  # type: ignore[misc]
            wall, cpu = time.perf_counter(), cpu_seconds()
            report = asyncio.run(run_once(app))
            wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
            polls = len(report.polls)
            print(f"round {r}: {polls} polls, {sum(not p.ok for p in report.polls)} failed; "
                  f"wall {wall:6.2f}s  CPU {cpu:6.2f}s = {cpu / polls * 1e6:4.0f} µs per poll")
        print(f"peak {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()

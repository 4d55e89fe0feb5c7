"""Scale-out benchmark: poll cycles of one corpus with 1, 2 and 4 workers sharing one
PostgreSQL, in one run, with each figure's ratio to one worker.

    python -m bench.scale [--feeds 2000] [--items 20] [--workers 1,2,4]
                          [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

For each worker count: a fresh database (created beside the one the URL names, dropped
after), the settings loaded and the schema migrated once, then N worker processes that
claim due feeds in batches exactly as ``monitor run`` does (``Store.claim_due_feeds``,
FOR UPDATE SKIP LOCKED under a lease) and poll them (fetch, parse, match, store). Each
worker waits at a start line, so the clock covers the cycle and not the imports. Two
cycles: **cold** (every feed answers 200 with its items) and **warm** (every feed 304).
The local feed server is the one of ``bench.fetch_cycle`` and runs in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.fetch_cycle import ROOT, start_server

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def write_config(workdir: Path, url: str, port: int, feeds: int, concurrency: int) -> Path:
    lines = [
        f'watchlists = "{ROOT / "config" / "watchlists.yaml"}"',
        "[database]", f'url = "{url}"', 'lease = "5m"',
        "[fetch]", f"concurrency = {concurrency}", f"per_host = {concurrency}",
        'allow_private_networks = ["127.0.0.1/32"]', 'timeout = "60s"',
    ]
    for i in range(feeds):
        lines += ["[[feed]]", f'url = "http://127.0.0.1:{port}/feed/{i}"']
    path = workdir / "monitor.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def cycle(app: object) -> dict[str, float]:
    """Claim and poll due feeds until none is left; what a worker's ticks do, without
    waiting for the next tick."""
    from monitor.daemon import App

    assert isinstance(app, App)
    batch = app.config.settings.fetch.concurrency * 2
    lease = app.config.settings.database.lease
    polled = items = errors = 0
    async with app.fetcher() as fetcher:
        poller = app.poller(fetcher, owner=app.worker)
        inflight: set[asyncio.Task[object]] = set()
        while True:
            room = batch - len(inflight)
            if room > batch // 2:
                for feed in app.store.claim_due_feeds(app.worker, app.clock(), lease, room):
                    inflight.add(asyncio.create_task(poller.poll(feed, app.clock())))
            if not inflight:
                break
            done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                report = task.result()
                polled += 1
                items += report.counts.new_items  # type: ignore[attr-defined]
                errors += not report.ok  # type: ignore[attr-defined]
    return {"polled": polled, "items": items, "errors": errors}


def child(config: Path) -> None:
    """One worker: build, say READY, then run a cycle at each GO line."""
    from monitor.config import load_config
    from monitor.daemon import build

    app = build(load_config(config), migrate_schema=False)
    print("READY", flush=True)
    for line in sys.stdin:
        if line.strip() != "GO":
            break
        print(json.dumps(asyncio.run(cycle(app))), flush=True)
    app.store.engine.dispose()


def run_workers(config: Path, url: str, workers: int) -> dict[str, dict[str, float]]:
    procs = [subprocess.Popen([sys.executable, "-m", "bench.scale", "--child", str(config)],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(workers)]
    engine = create_engine(url)
    out: dict[str, dict[str, float]] = {}
    try:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "READY":
                raise SystemExit("a worker did not start")
        for name in ("cold", "warm"):
            with engine.begin() as conn:  # every feed due now
                conn.execute(text("UPDATE feeds SET next_check_at = now() AT TIME ZONE 'UTC'"))
            start = time.perf_counter()
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("GO\n")
                p.stdin.flush()
            results = []
            for p in procs:
                assert p.stdout is not None
                results.append(json.loads(p.stdout.readline()))
            seconds = time.perf_counter() - start
            out[name] = {"seconds": seconds,
                         **{k: sum(r[k] for r in results) for k in results[0]},
                         "spread": min(r["polled"] for r in results)}
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
            p.wait(60)
        engine.dispose()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--feeds", type=int, default=2000)
    p.add_argument("--items", type=int, default=20, help="items per feed")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--concurrency", type=int, default=50, help="fetches at once per worker")
    p.add_argument("--pg-url", default=os.environ.get("MONITOR_TEST_PG_URL", PG_DEFAULT))
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child)
        return

    from monitor.config import load_config
    from monitor.daemon import build

    base = make_url(args.pg_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    print(f"corpus: {args.feeds} feeds, seed {args.seed}, {args.items} items per feed; "
          f"concurrency {args.concurrency} per worker; {os.cpu_count()} CPUs; PostgreSQL at "
          f"{base.render_as_string(hide_password=True)}")
    first: dict[str, float] = {}
    for n in (int(w) for w in args.workers.split(",")):
        server, port = start_server(args.feeds, args.items, args.seed)
        name = f"monitor_bench_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                config = write_config(Path(tmp), url, port, args.feeds, args.concurrency)
                build(load_config(config)).store.engine.dispose()  # migrate, load feeds
                result = run_workers(config, url, n)
        finally:
            server.terminate()
            server.wait(10)
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        parts = []
        for c in ("cold", "warm"):
            r = result[c]
            rate = r["polled"] / r["seconds"]
            first.setdefault(c, rate)
            parts.append(f"{c} {r['seconds']:6.2f}s {rate:6.0f} feeds/s ×{rate / first[c]:.2f}"
                         f" ({r['items']:.0f} items, {r['errors']:.0f} errors)")
        print(f"{n} worker{'s' if n > 1 else ' '}  " + "   ".join(parts)
              + f"   fewest feeds per worker {result['cold']['spread']:.0f}")
    admin.dispose()


if __name__ == "__main__":
    main()

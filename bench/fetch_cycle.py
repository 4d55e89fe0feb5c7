"""Poll-cycle benchmark: monitor end to end (fetch, parse, match, store) against
lemon24's reader, on the same local corpus, in one run.

    python -m bench.fetch_cycle [--sizes 1000,10000] [--items 20] [--no-reader] [--repeat N]

For each size, a fresh local server and a fresh database per tool: a cold cycle (every
feed 200), a warm one (every feed 304) and an "advance" one (a fifth of the feeds have
new items). Each tool runs in its own process so its peak memory is its own. The server
makes every body before the tool starts (``--prebuild``): made on demand, the bodies
took about 1.4 s of CPU from the cold cycle of 1,000 feeds, on the tool's two cores.
With ``--repeat N`` the tools run N times each, in turn, and the ratios' median is
reported with their range.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_server(feeds: int, items: int, seed: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.server", "--feeds", str(feeds),
                             "--items", str(items), "--seed", str(seed), "--prebuild"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        raise SystemExit(f"bench server did not start: {line!r}")
    return proc, int(line.split()[1])


def advance(port: int, fraction: float) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/advance/{fraction}") as r:
        r.read()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User and system CPU of this process and its reaped children (the parse workers,
    which each cycle stops): steadier than wall time on a shared machine."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def child_monitor(port: int, feeds: int, workdir: Path, concurrency: int) -> dict[str, float]:
    from monitor.config import load_config
    from monitor.daemon import build, run_once, settle_gc

    lines = [
        f'watchlists = "{ROOT / "config" / "watchlists.yaml"}"',
        "[database]", f'url = "sqlite:///{workdir / "monitor.db"}"',
        "[fetch]", f"concurrency = {concurrency}", f"per_host = {concurrency}",
        'allow_private_networks = ["127.0.0.1/32"]', 'timeout = "60s"',
    ]
    for i in range(feeds):
        lines += ["[[feed]]", f'url = "http://127.0.0.1:{port}/feed/{i}"']
    (workdir / "monitor.toml").write_text("\n".join(lines) + "\n")
    app = build(load_config(workdir / "monitor.toml"))
    settle_gc()  # as the daemon does once it has built its app, before its first round
    out: dict[str, float] = {}
    for cycle in ("cold", "warm", "advance"):
        if cycle == "advance":
            advance(port, 0.2)
        start, cpu = time.perf_counter(), cpu_seconds()
        report = asyncio.run(run_once(app))
        out[cycle] = time.perf_counter() - start
        out[f"{cycle}_cpu"] = cpu_seconds() - cpu
        out[f"{cycle}_items"] = sum(p.counts.new_items for p in report.polls)
        out[f"{cycle}_errors"] = sum(not p.ok for p in report.polls)
        out[f"{cycle}_matches"] = sum(p.counts.matches for p in report.polls)
    out["peak_mb"] = peak_mb()
    return out


def child_reader(port: int, feeds: int, workdir: Path, concurrency: int) -> dict[str, float]:
    from reader import make_reader

    r = make_reader(str(workdir / "reader.sqlite"))
    for i in range(feeds):
        r.add_feed(f"http://127.0.0.1:{port}/feed/{i}")
    out: dict[str, float] = {}
    for cycle in ("cold", "warm", "advance"):
        if cycle == "advance":
            advance(port, 0.2)
        before = r.get_entry_counts().total
        start, cpu = time.perf_counter(), cpu_seconds()
        r.update_feeds(workers=concurrency, scheduled=False)
        out[cycle] = time.perf_counter() - start
        out[f"{cycle}_cpu"] = cpu_seconds() - cpu
        out[f"{cycle}_items"] = r.get_entry_counts().total - before
    out["peak_mb"] = peak_mb()
    return out


def run_child(tool: str, feeds: int, items: int, seed: int, concurrency: int) -> dict[str, float]:
    server, port = start_server(feeds, items, seed)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.fetch_cycle", "--child", tool, "--port", str(port),
                 "--feeds", str(feeds), "--workdir", tmp, "--concurrency", str(concurrency)],
                cwd=ROOT, capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                raise SystemExit(f"{tool} failed:\n{proc.stderr[-3000:]}")
            result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
            return result
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="1000,10000")
    p.add_argument("--items", type=int, default=20, help="items per feed")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--no-reader", action="store_true", help="skip the reader reference")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each tool per size, alternated, with the median ratio "
                        "(this machine's speed drifts by a third from minute to minute)")
    p.add_argument("--child", choices=("monitor", "reader"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--feeds", type=int, help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.child:
        fn = child_monitor if args.child == "monitor" else child_reader
        print(json.dumps(fn(args.port, args.feeds, args.workdir, args.concurrency)))
        return
    print(f"corpus: seed {args.seed}, {args.items} items per feed, RSS/Atom/RDF; "
          f"concurrency {args.concurrency}")
    tools = ["monitor"] + ([] if args.no_reader else ["reader"])
    for size in (int(s) for s in args.sizes.split(",")):
        runs: list[dict[str, dict[str, float]]] = []
        for n in range(args.repeat):  # alternated: a slower minute weighs on both tools
            if args.repeat > 1:
                print(f"run {n + 1} of {args.repeat}")
            results = {t: run_child(t, size, args.items, args.seed, args.concurrency)
                       for t in tools}
            runs.append(results)
            _report(size, results)
        if args.repeat > 1 and "reader" in tools:
            cycles = ("cold", "warm", "advance")
            ratios = {c: [r["reader"][c] / r["monitor"][c] for r in runs] for c in cycles}
            print(f"        monitor vs reader over {args.repeat} alternated runs, median: "
                  + "  ".join(f"{c} ×{statistics.median(ratios[c]):.1f} "
                              f"(×{min(ratios[c]):.1f}-×{max(ratios[c]):.1f})" for c in cycles))


def _report(size: int, results: dict[str, dict[str, float]]) -> None:
    for tool, r in results.items():
        line = "  ".join(
            f"{c} {r[c]:7.2f}s ({size / r[c]:7.0f} feeds/s, "
            f"{r[c + '_items'] / r[c]:7.0f} items/s)" for c in ("cold", "warm", "advance"))
        print(f"{size:>6} feeds  {tool:<8} {line}  peak {r['peak_mb']:.0f} MB")
        cpu = "  ".join(f"{c} {r[c + '_cpu']:7.2f}s" for c in ("cold", "warm", "advance"))
        print(f"{'':>6}        {tool:<8} CPU (user+sys, its processes): {cpu}")
    m = results["monitor"]
    if "cold_errors" in m and (m["cold_errors"] or m["warm_errors"]):
        print(f"        monitor errors: cold {m['cold_errors']:.0f}, "
              f"warm {m['warm_errors']:.0f}")
    if "reader" in results:
        rd = results["reader"]
        ratios = "  ".join(f"{c} ×{rd[c] / m[c]:.1f}" for c in ("cold", "warm", "advance"))
        print(f"        monitor vs reader: {ratios} (times faster)")
        ratios = "  ".join(f"{c} ×{rd[c + '_cpu'] / m[c + '_cpu']:.1f}"
                           for c in ("cold", "warm", "advance"))
        print(f"        monitor vs reader, CPU: {ratios} (times less)")


if __name__ == "__main__":
    main()

"""Requests per second of the fetcher alone (``monitor.fetch.Fetcher``), on loopback.

    python -m bench.fetch_rate [--feeds 3000] [--hosts 1,100] [--rounds 2]

Serves ``--feeds`` feeds from ``bench.server`` (bodies made before the first request)
and fetches all of them through ``Fetcher.fetch`` at once, with the daemon's default
``[fetch]`` settings (concurrency, per-host limit, timeout, body cap). The feeds are
spread over ``--hosts`` host names (``h<k>.bench.test``, answered 127.0.0.1 by an injected
resolver, so the per-host limit and the guard apply as for real names): one host means
at most ``per_host`` requests at once on that host's connections; many hosts, the whole
``concurrency``. Each round fetches every feed once: a **200** round (no validators,
every body read) and then a **304** round (each feed's ETag sent back). Printed per round:
requests/s, wall time, CPU time (user + system) of this process (the client) and of the
server process, and any status other than the expected one.

Every round is bounded (``--max-seconds``), and so is the whole run (feeds × rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from monitor.config import FetchSettings
from monitor.fetch import Fetcher, FetchResult

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]


def start_server(feeds: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.server", "--feeds", str(feeds),
                             "--prebuild"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"bench server did not start: {line!r}")
    return proc, int(line.split()[1])


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def loopback(host: str, port: int) -> Sequence[str]:
    """Every bench name is 127.0.0.1 (the bench's own DNS)."""
    return ["127.0.0.1"]


async def run_rounds(port: int, feeds: int, hosts: int, rounds: int, max_seconds: float,
                     server_pid: int) -> None:
    settings = FetchSettings()
    urls = [f"http://h{i % hosts}.bench.test:{port}/feed/{i}" for i in range(feeds)]
    etags: dict[str, str | None] = {}
    async with Fetcher(timeout=settings.timeout.total_seconds(),
                       max_body_bytes=settings.max_body_bytes,
                       concurrency=settings.concurrency, per_host=settings.per_host,
                       user_agent=settings.user_agent, allow_private_networks=LOOPBACK,
                       resolver=loopback) as fetcher:
        for n in range(rounds):
            for kind in (200, 304):
                validators = etags if kind == 304 else {}
                server_cpu, cpu = process_cpu(server_pid), time.process_time()
                start = time.perf_counter()
                async with asyncio.timeout(max_seconds):
                    results: list[FetchResult] = await asyncio.gather(
                        *(fetcher.fetch(u, validators.get(u)) for u in urls))
                wall = time.perf_counter() - start
                cpu = time.process_time() - cpu
                server_cpu = process_cpu(server_pid) - server_cpu
                etags = {r.url: r.etag for r in results}
                odd = Counter(r.error or r.status for r in results if r.status != kind)
                print(f"  hosts {hosts:>5}  round {n + 1} {kind}  {feeds / wall:7.0f} req/s  "
                      f"wall {wall:6.2f}s  CPU client {cpu:6.2f}s "
                      f"({feeds / cpu:6.0f} req/CPU-s)  server {server_cpu:5.2f}s"
                      + (f"  unexpected: {dict(odd)}" if odd else ""), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--feeds", type=int, default=3000)
    p.add_argument("--hosts", default="1,100", help="comma-separated: one run per value")
    p.add_argument("--rounds", type=int, default=2, help="200 + 304 rounds per run")
    p.add_argument("--max-seconds", type=float, default=120, help="bound of each round")
    args = p.parse_args()
    if not 1 <= args.rounds <= 10 or not 1 <= args.feeds <= 100_000:
        raise SystemExit("--rounds 1..10, --feeds 1..100000")
    settings = FetchSettings()
    print(f"fetch_rate: {args.feeds} feeds, concurrency {settings.concurrency}, per_host "
          f"{settings.per_host}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for hosts in (int(h) for h in args.hosts.split(",")):
        server, port = start_server(args.feeds)
        try:
            asyncio.run(run_rounds(port, args.feeds, hosts, args.rounds, args.max_seconds,
                                   server.pid))
        finally:
            server.terminate()
            server.wait(10)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

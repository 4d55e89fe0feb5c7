"""A local feed server for the benchmark: asyncio, HTTP/1.1 keep-alive, conditional GET.

    python -m bench.server --feeds 1000 [--seed 1] [--items 20] [--prebuild]

prints ``READY <port>`` and serves ``/feed/<i>``. ``/advance/<fraction>`` adds new items
to that fraction of the feeds (a new generation, a new ETag). ``--prebuild`` makes every
feed's body before ``READY``, and an advanced feed's new body before ``/advance`` answers,
so that a round measures serving, not generating: a body costs about 1.4 ms of CPU to
make, which on 2 cores the server would take from the tool under test (one process
serves about 14,000 requests/s of CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import random

from bench.corpus import feed_body


class Corpus:
    def __init__(self, feeds: int, seed: int, items: int) -> None:
        self.feeds, self.seed, self.items = feeds, seed, items
        self.generation = [0] * feeds
        self.cache: dict[tuple[int, int], bytes] = {}
        self.advances = 0

    def body(self, i: int) -> tuple[bytes, str]:
        gen = self.generation[i]
        key = (i, gen)
        if key not in self.cache:
            self.cache[key] = feed_body(self.seed, i, gen, self.items)
            self.cache.pop((i, gen - 1), None)
        return self.cache[key], f'"{i}-{gen}"'

    def advance(self, fraction: float, build: bool = False) -> int:
        self.advances += 1
        rng = random.Random(f"{self.seed}/advance/{self.advances}")
        chosen = rng.sample(range(self.feeds), int(self.feeds * fraction))
        for i in chosen:
            self.generation[i] += 1
            if build:
                self.body(i)
        return len(chosen)


async def handle(corpus: Corpus, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, prebuild: bool = False) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {k.lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if line)}
            status, body, extra = 404, b"", ""
            if path.startswith("/feed/"):
                i = int(path.rsplit("/", 1)[1])
                data, etag = corpus.body(i)
                if headers.get("if-none-match") == etag:
                    status = 304
                else:
                    status, body = 200, data
                extra = f"ETag: {etag}\r\nContent-Type: application/xml\r\n"
            elif path.startswith("/advance/"):
                advanced = corpus.advance(float(path.rsplit("/", 1)[1]), build=prebuild)
                status, body = 200, str(advanced).encode()
            reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: {len(body)}"
                         "\r\n\r\n".encode() + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--feeds", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--prebuild", action="store_true", help="make every body before READY")
    args = p.parse_args()
    corpus = Corpus(args.feeds, args.seed, args.items)
    if args.prebuild:
        for i in range(args.feeds):
            corpus.body(i)
    server = await asyncio.start_server(lambda r, w: handle(corpus, r, w, args.prebuild),
                                        "127.0.0.1", 0, backlog=4096)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

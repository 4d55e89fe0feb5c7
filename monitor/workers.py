"""Parsing where it can be stopped: ``parse_feed`` in worker processes with a deadline
and a memory limit.

feedparser has inputs that make it slow (its author regex is quadratic: 50 kB of
``<author>`` takes seconds, 500 kB hours) and a thread cannot be stopped. So each parse
runs in a worker process: if it outlasts ``timeout`` the worker is killed (SIGKILL) and a
new one replaces it; its address space is capped (``RLIMIT_AS``), so a parse that tries
to allocate past ``max_memory_bytes`` fails with ``MemoryError`` in the worker, never in
the daemon. Either way the feed gets a ``FeedError`` and the other feeds go on.

Workers are started with ``spawn`` (the daemon has threads; forking it is unsafe), once,
and reused: a parse costs a pickle of the body and of the entries, not a process start.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import resource
from collections.abc import Mapping
from multiprocessing.context import SpawnProcess
from types import TracebackType
from typing import Any

from .errors import FeedError
from .parse import MAX_ENTRIES, ParsedFeed, parse_feed

__all__ = ["ParseWorkers"]

_SPAWN = multiprocessing.get_context("spawn")


def _serve(conn: multiprocessing.connection.Connection, max_memory: int | None) -> None:
    """The worker: parse each body it is sent, answer ("ok", feed) or ("error", text)."""
    if max_memory is not None:
        resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        body, headers, url, max_entries = job
        answer: tuple[str, Any]
        try:
            answer = ("ok", parse_feed(body, headers, url, max_entries=max_entries))
        except FeedError as exc:
            answer = ("error", str(exc))
        except MemoryError:
            answer = ("error", "refused: parsing the feed needed more memory than "
                               "[parse] max_memory_bytes allows")
        except RecursionError:
            answer = ("error", "refused: the feed is nested too deeply to parse")
        except Exception as exc:  # a parser bug costs this feed this poll, never the worker
            answer = ("error", f"internal error while parsing the feed ({type(exc).__name__})")
        del body, job
        try:
            conn.send(answer)
        except MemoryError:
            conn.send(("error", "refused: the parsed feed is too large to hand back "
                                "within [parse] max_memory_bytes"))


class _Worker:
    def __init__(self, max_memory: int | None) -> None:
        self.conn, child = _SPAWN.Pipe()
        self.process: SpawnProcess = _SPAWN.Process(target=_serve, args=(child, max_memory),
                                                    name="monitor-parse", daemon=True)
        self.process.start()
        child.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        with contextlib.suppress(OSError):
            self.conn.close()
        with contextlib.suppress(ValueError):
            self.process.close()


class ParseWorkers:
    """Up to ``workers`` parses at once, each in its own process, each cut off after
    ``timeout`` seconds. Use as an async context; ``parse`` raises ``FeedError``."""

    def __init__(self, *, timeout: float, max_memory_bytes: int | None, workers: int,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.timeout = timeout
        self.max_entries = max_entries
        self.max_memory = max_memory_bytes
        self._idle: list[_Worker] = []
        self._slots = asyncio.Semaphore(workers)
        self._all: set[_Worker] = set()
        self.killed = 0
        """Workers killed at their deadline (or found dead) since the start."""

    async def __aenter__(self) -> ParseWorkers:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for worker in list(self._all):
            worker.kill()
        self._all.clear()
        self._idle.clear()

    async def parse(self, body: bytes, headers: Mapping[str, str],
                    url: str | None = None) -> ParsedFeed:
        async with self._slots:
            worker = self._idle.pop() if self._idle else await self._start()
            healthy = False
            try:
                answer = await self._ask(worker, (body, dict(headers), url, self.max_entries))
                healthy = True
            finally:
                if healthy:
                    self._idle.append(worker)
                else:
                    self._all.discard(worker)
                    await asyncio.to_thread(worker.kill)
        kind, value = answer
        if kind == "ok":
            assert isinstance(value, ParsedFeed)
            return value
        raise FeedError(str(value))

    async def _start(self) -> _Worker:
        worker = await asyncio.to_thread(_Worker, self.max_memory)
        self._all.add(worker)
        return worker

    async def _ask(self, worker: _Worker, job: tuple[bytes, dict[str, str], str | None, int]
                   ) -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()
        fd = worker.conn.fileno()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.to_thread(worker.conn.send, job)
                loop.add_reader(fd, ready)
                try:
                    await readable
                    answer: tuple[str, Any] = await asyncio.to_thread(worker.conn.recv)
                finally:
                    loop.remove_reader(fd)
        except TimeoutError:
            self.killed += 1
            raise FeedError(f"refused: parsing took longer than {self.timeout:g}s "
                            "([parse] timeout); the parser was stopped") from None
        except (EOFError, OSError) as exc:
            self.killed += 1
            raise FeedError("the parser process died while parsing the feed "
                            f"({type(exc).__name__}); see the log") from exc
        return answer


def default_workers() -> int:
    """Parse workers when the settings do not say: the CPUs, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))

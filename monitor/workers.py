"""Parsing where it can be stopped: ``parse_feed`` in worker processes with a deadline
and a memory limit; the analysis of the parsed entries (``analyse.Analyser``: matching,
snippets, story keys) in the same process, on the worker's core.

feedparser has inputs that make it slow (its author regex is quadratic: 50 kB of
``<author>`` takes seconds, 500 kB hours) and a thread cannot be stopped. So each parse
runs in a worker process: if it outlasts ``timeout`` the worker is killed (SIGKILL) and a
new one replaces it; its address space is capped (``RLIMIT_AS``), so a parse that tries
to allocate past ``max_memory_bytes`` fails with ``MemoryError`` in the worker, never in
the daemon. Either way the feed gets a ``FeedError`` and the other feeds go on.

A worker is a new interpreter running ``parse_worker`` (the daemon has threads: forking
it is unsafe), started once and reused: a parse costs a pickle of the body and of the
entries, not a process start. A worker is sent the analyser (the matcher, the routes)
once per version, not per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from .analyse import Analysed, Analyser
from .errors import FeedError
from .parse import MAX_ENTRIES, ParsedFeed

__all__ = ["ParseWorkers"]

log = logging.getLogger(__name__)

class _Worker:
    def __init__(self, max_memory: int | None) -> None:
        sock, child = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "monitor.parse_worker", str(child.fileno())],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        except BaseException:
            sock.close()
            raise
        finally:
            child.close()
        self.sock = sock
        hello = pickle.dumps((sys.path, max_memory), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            sock.sendall(struct.pack("!i", len(hello)) + hello)  # before the loop has it
        except OSError:
            self.kill()
            raise
        self.analyser: int | None = None
        """The version of the analyser this worker holds."""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.stopped = False

    async def connect(self) -> None:
        """The daemon's end of the socket as asyncio streams: jobs and answers go
        through the event loop, with no thread hand-off. The worker reads and writes
        its end as a ``multiprocessing`` connection: the same frames (a 4-byte length,
        or -1 and an 8-byte one, then the pickle)."""
        self.reader, self.writer = await asyncio.open_connection(sock=self.sock)

    async def ask(self, job: tuple[Any, ...]) -> tuple[Any, ...]:
        assert self.reader is not None and self.writer is not None
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        # one write, one send: each send gives up the GIL, and getting it back from the
        # thread that writes polls can take a switch interval (5 ms)
        if len(data) > 0x7FFFFFFF:
            self.writer.write(struct.pack("!iQ", -1, len(data)) + data)
        else:
            self.writer.write(struct.pack("!i", len(data)) + data)
        await self.writer.drain()
        (size,) = struct.unpack("!i", await self.reader.readexactly(4))
        if size == -1:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        answer: tuple[Any, ...] = pickle.loads(await self.reader.readexactly(size))
        return answer

    def close_stream(self) -> None:
        """On the event loop's thread: the stream's transport is the loop's."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def kill(self) -> None:
        """Stop the process (from any thread; ``close_stream`` first, on the loop's).
        Once is enough; a second call does nothing."""
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.sock.close()  # the stream's transport closes it too: closing twice is fine


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
        self._starting: list[asyncio.Task[_Worker]] = []
        self._closed = False
        self.workers = workers
        self.killed = 0
        """Workers killed at their deadline (or found dead) since the start."""

    async def __aenter__(self) -> ParseWorkers:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._starting:
            task.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        self._starting.clear()
        self.close()

    def close(self) -> None:
        self._closed = True
        for worker in list(self._all):
            worker.close_stream()
            worker.kill()
        self._all.clear()
        self._idle.clear()

    async def parse(self, body: bytes, headers: Mapping[str, str],
                    url: str | None = None) -> ParsedFeed:
        """The parsed feed; raises FeedError."""
        value = await self._run(body, headers, url, None, None)
        assert isinstance(value, ParsedFeed)
        return value

    async def analyse(self, body: bytes, headers: Mapping[str, str], url: str,
                      analyser: Analyser, feed_title: str | None) -> Analysed:
        """The parsed feed with its entries analysed (``Analyser.analyse``), both in the
        worker; raises FeedError."""
        value = await self._run(body, headers, url, analyser, feed_title)
        assert isinstance(value, Analysed)
        return value

    async def _run(self, body: bytes, headers: Mapping[str, str], url: str | None,
                   analyser: Analyser | None, feed_title: str | None) -> ParsedFeed | Analysed:
        async with self._slots:
            worker = self._idle.pop() if self._idle else await self._next()
            healthy = False
            version = analyser.version if analyser is not None else None
            payload = (analyser.pickled()
                       if analyser is not None and worker.analyser != version else None)
            if payload is not None:  # until it answers ok, the worker may hold neither
                worker.analyser = None
            try:
                answer = await self._ask(worker, (body, dict(headers), url, self.max_entries,
                                                  feed_title, version, payload))
                healthy = True
            finally:
                if healthy:
                    if payload is not None and answer[0] == "ok":
                        worker.analyser = version
                    self._idle.append(worker)
                else:
                    self._all.discard(worker)
                    worker.close_stream()
                    await asyncio.to_thread(worker.kill)
        if answer[0] == "ok":
            value: ParsedFeed | Analysed = answer[1]
            return value
        _, text, trace = answer
        if trace:
            log.error("%s: %s\n%s", url, text, trace.rstrip())
        raise FeedError(str(text))

    async def _next(self) -> _Worker:
        """A worker for a job when none is idle. The first job starts every missing
        worker at once, in the background: a process takes a moment to import the parser
        and the matcher, and the next feeds would each wait for one. None is started
        before a feed needs parsing (a round of 304s needs none)."""
        if not self._starting:
            self._starting = [asyncio.create_task(self._start(), name="start a parse worker")
                              for _ in range(max(1, self.workers - len(self._all)))]
        while self._starting:
            task = self._starting.pop()
            try:
                return await task
            except Exception:  # it could not start: try again below, and fail there
                log.exception("a parse worker did not start")
        return await self._start()

    async def _start(self) -> _Worker:
        def make() -> _Worker:
            worker = _Worker(self.max_memory)
            self._all.add(worker)  # before the check: close kills it, or it sees closed
            if self._closed:  # the pool closed while this worker started
                self._all.discard(worker)
                worker.kill()
                raise FeedError("the parse workers are closed")
            return worker

        worker = await asyncio.to_thread(make)
        try:
            await worker.connect()
        except BaseException:
            self._all.discard(worker)
            worker.close_stream()
            await asyncio.to_thread(worker.kill)
            raise
        return worker

    async def _ask(self, worker: _Worker, job: tuple[Any, ...]) -> tuple[Any, ...]:
        try:
            async with asyncio.timeout(self.timeout):
                return await worker.ask(job)
        except TimeoutError:
            self.killed += 1
            raise FeedError(f"refused: parsing took longer than {self.timeout:g}s "
                            "([parse] timeout); the parser was stopped") from None
        except (EOFError, OSError) as exc:  # asyncio.IncompleteReadError is an EOFError
            self.killed += 1
            raise FeedError("the parser process died while parsing the feed "
                            f"({type(exc).__name__}); see the log") from exc


def default_workers() -> int:
    """Parse workers when the settings do not say: the CPUs, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))

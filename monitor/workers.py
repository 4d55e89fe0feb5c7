"""Parsing where it can be stopped: ``parse_feed`` in worker processes with a deadline
and a memory limit; the analysis of the parsed entries (``analyse.Analyser``: matching,
snippets, story keys) in the same process, on the worker's core.

feedparser has inputs that make it slow (its author regex is quadratic: 50 kB of
``<author>`` takes seconds, 500 kB hours) and a thread cannot be stopped. So each parse
runs in a worker process: if it outlasts ``timeout`` the worker is killed (SIGKILL) and a
new one replaces it; its address space is capped (``RLIMIT_AS``), so a parse that tries
to allocate past ``max_memory_bytes`` fails with ``MemoryError`` in the worker, never in
the daemon. Either way the feed gets a ``FeedError`` and the other feeds go on.

A worker is started once and reused: a parse costs a pickle of the body and of the
entries, not a process start. The daemon has threads, so it never forks: on Linux one
template process (``python -m monitor.parse_worker --template``) imports the parser
and the matcher once and forks every worker, each ready at once; a worker it forked is
not the daemon's child, and the daemon stops it through its pidfd (``_Forked``).
Elsewhere, or when the template fails, a worker is a new interpreter of its own. A
worker is sent the analyser (the matcher, the routes) once per version, not per job.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

from .analyse import Analysed, Analyser
from .errors import FeedError
from .parse import MAX_ENTRIES, ParsedFeed

__all__ = ["ParseWorkers"]

log = logging.getLogger(__name__)

_DEPTH = 2
"""Jobs sent to a worker at once: the next is there when it answers one, so it does not
wait for the daemon's event loop (which may be waiting for the GIL) between jobs."""


_ATTEMPTS = 3
"""Workers a job is given to, at most, when those before were stopped before it began
(on another feed's deadline) or had lost the analyser."""


def _pidfds() -> bool:
    """Whether this kernel lets this process open pidfds and signal through them (Linux
    5.3 and later, and no seccomp profile refusing them): then workers are forked by a
    template."""
    if not (hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")):
        return False
    try:
        pidfd = os.pidfd_open(os.getpid())
    except OSError:
        return False
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except OSError:
        return False
    finally:
        os.close(pidfd)
    return True


_CAN_FORK = _pidfds()


class _Stopped(Exception):
    """The worker was stopped on this job: past its deadline, or dead."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(cause)
        self.cause = cause


class _Requeue(Exception):
    """The worker was stopped before it began this job: another worker takes it."""


_FORK_WAIT = 30.0
"""Seconds a worker start waits for the template's worker to say it is there (the
template may still be importing)."""


class _Forked:
    """A worker the template forked, as much of ``subprocess.Popen`` as ``_Worker``
    uses. It is not this process's child (the template reaps it), so it is signalled
    and waited for through its pidfd, which names that process and no other, even once
    it has ended."""

    def __init__(self, pidfd: int) -> None:
        os.set_inheritable(pidfd, False)  # recv_fds cannot ask for MSG_CMSG_CLOEXEC
        self.pidfd = pidfd
        self.returncode: int | None = None
        """-9 once it has ended: its status went to the template."""
        self._closed = False

    def _ended(self, timeout: float) -> bool:
        poller = select.poll()  # not select(): a pidfd may be past 1023
        poller.register(self.pidfd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))

    def poll(self) -> int | None:
        if self.returncode is None and (self._closed or self._ended(0)):
            self.returncode = -signal.SIGKILL
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def wait(self, timeout: float) -> int:
        code = self.poll()
        if code is None:
            if not self._ended(timeout):
                raise subprocess.TimeoutExpired("monitor.parse_worker", timeout)
            code = self.returncode = -signal.SIGKILL
        return code

    def close(self) -> None:
        """Once the process is stopped and waited for (``_Worker.kill``, once). Reaps it
        if it has become this process's child: its template ended first, and this
        process is the one orphans go to (PID 1 in a container, a subreaper)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG)
            os.close(self.pidfd)


class TemplateFailed(OSError):
    """The template did not fork a worker: gone, or it answered nothing in time."""


def _popen(*args: str | int) -> subprocess.Popen[bytes]:
    """``python -m monitor.parse_worker ARGS``; the last is the socket's fd, passed on
    (and no other)."""
    return subprocess.Popen([sys.executable, "-m", "monitor.parse_worker", *map(str, args)],
                            pass_fds=(int(args[-1]),), stdin=subprocess.DEVNULL)


class _Template:
    """``python -m monitor.parse_worker --template``: the process that forks the
    workers. Used from any thread; ``close`` or ``kill`` it once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        """Held to send on ``control`` and to close it: never a closed (or reused) fd."""
        self.forked = 0
        self.control, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = _popen("--template", child.fileno())
        except BaseException:
            self.control.close()
            raise
        finally:
            child.close()
        try:
            self.control.sendall(pickle.dumps(sys.path, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            self.kill()
            raise

    def fork(self, max_memory: int | None) -> tuple[socket.socket, _Forked]:
        """A new worker's socket and process. Raises ``TemplateFailed`` if the template
        did not fork one, OSError if this process could not make the socket."""
        sock, child = socket.socketpair()
        try:
            # ``child`` is closed here either way: the worker holds it now (or nobody,
            # and the wait below reads EOF)
            with self._lock, contextlib.closing(child):
                if self.control.fileno() == -1:
                    raise TemplateFailed("the parse worker template is closed")
                try:  # one message, whole, whichever thread sends it
                    socket.send_fds(self.control, [pickle.dumps(max_memory)],
                                    [child.fileno()])
                except OSError as exc:
                    raise TemplateFailed(f"the parse worker template is gone ({exc})"
                                         ) from exc
                self.forked += 1
            sock.settimeout(_FORK_WAIT)
            try:
                data, fds, _, _ = socket.recv_fds(sock, 1, 1)
            except OSError as exc:  # TimeoutError too
                raise TemplateFailed(f"no worker from the parse worker template ({exc})"
                                     ) from exc
            if data != b"p" or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                raise TemplateFailed("the parse worker template did not fork a worker")
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return sock, _Forked(fds[0])

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """End it once its workers are stopped, and reap it: it kills any left, waits
        for them (their CPU time joins its own, and this process's once reaped) and
        ends. Killed at once if it never forked (it may still be importing), or if it
        has not ended within 5 s."""
        if not self.forked:
            self.kill()
            return
        with self._lock:
            self.control.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Stop it now and reap it (a template that failed). Killed before its socket is
        closed: it must not take the end of its socket for the pool's, and stop the
        workers it forked, which the pool still uses."""
        if self.process.poll() is None:
            self.process.kill()
        with self._lock:
            self.control.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def _spawn(max_memory: int | None) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """A worker of its own: a new interpreter (where there is no template)."""
    sock, child = socket.socketpair()
    try:
        process = _popen(child.fileno())
    except BaseException:
        sock.close()
        raise
    finally:
        child.close()
    hello = pickle.dumps((sys.path, max_memory), protocol=pickle.HIGHEST_PROTOCOL)
    try:
        sock.sendall(struct.pack("!i", len(hello)) + hello)  # before the loop has it
    except OSError:
        process.kill()
        process.wait()
        sock.close()
        raise
    return sock, process


class _Worker:
    def __init__(self, sock: socket.socket,
                 process: subprocess.Popen[bytes] | _Forked) -> None:
        self.analyser: int | None = None
        """The version of the analyser this worker holds once it has done the jobs sent."""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.stopped = False
        self._stopping = threading.Lock()
        self.pending: collections.deque[asyncio.Future[tuple[Any, ...]]] = collections.deque()
        """The answers awaited, in the order the jobs were sent (the worker's order)."""
        self.failed = False
        self._reading: asyncio.Task[None] | None = None
        self.sock = sock
        self.process = process

    async def connect(self) -> None:
        """The daemon's end of the socket as asyncio streams: jobs and answers go
        through the event loop, with no thread hand-off. The worker reads and writes
        its end as a ``multiprocessing`` connection: the same frames (a 4-byte length,
        or -1 and an 8-byte one, then the pickle)."""
        self.reader, self.writer = await asyncio.open_connection(sock=self.sock)

    def send(self, job: tuple[Any, ...], timeout: float, answered: asyncio.Event,
             on_failure: Callable[[_Worker], Awaitable[None]]) -> asyncio.Future[tuple[Any, ...]]:
        """Queue ``job`` to the worker; the future of its answer. An answer must come
        within ``timeout`` of the worker starting the job (once it answered the one
        before): past it, or if the worker dies, the job at the head fails with
        ``_Stopped``, the ones queued behind it with ``_Requeue``, and ``on_failure``
        stops the worker. ``answered`` is set whenever a job leaves the worker."""
        assert self.writer is not None and not self.failed
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        # one write, one send: each send gives up the GIL, and getting it back from the
        # thread that writes polls can take a switch interval (5 ms)
        if len(data) > 0x7FFFFFFF:
            self.writer.write(struct.pack("!iQ", -1, len(data)) + data)
        else:
            self.writer.write(struct.pack("!i", len(data)) + data)
        answer: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        self.pending.append(answer)
        if self._reading is None:
            self._reading = asyncio.create_task(self._read(timeout, answered, on_failure),
                                                name="read a parse worker's answers")
        return answer

    async def _read(self, timeout: float, answered: asyncio.Event,
                    on_failure: Callable[[_Worker], Awaitable[None]]) -> None:
        assert self.reader is not None
        try:
            while self.pending:
                async with asyncio.timeout(timeout):  # the head job is the one it is on
                    (size,) = struct.unpack("!i", await self.reader.readexactly(4))
                    if size == -1:
                        (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
                    data = await self.reader.readexactly(size)
                answer = self.pending.popleft()
                answered.set()
                if answer.done():  # its poll was cancelled meanwhile
                    continue
                try:
                    answer.set_result(pickle.loads(data))
                except Exception as exc:  # a bug (or memory): this answer's, not the stream's
                    answer.set_exception(FeedError(
                        f"internal error: the parser's answer could not be read "
                        f"({type(exc).__name__})"))
        except asyncio.CancelledError:
            for answer in self.pending:
                answer.cancel()
            raise
        except (TimeoutError, EOFError, OSError) as exc:  # IncompleteReadError: an EOFError
            self.failed = True
            head, *queued = self.pending
            self.pending.clear()
            answered.set()
            for answer, error in ((head, _Stopped(exc)), *((q, _Requeue()) for q in queued)):
                if not answer.done():
                    answer.set_exception(error)
            await on_failure(self)
        finally:
            self._reading = None

    def close_stream(self) -> None:
        """On the event loop's thread: the stream's transport is the loop's."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def stop(self) -> None:
        """SIGKILL the process, without waiting for it (``kill`` reaps it)."""
        if self.process.poll() is None:
            self.process.kill()

    def kill(self) -> None:
        """Stop the process and reap it (from any thread; ``close_stream`` first, on the
        loop's). Once is enough; a second call does nothing."""
        with self._stopping:
            if self.stopped:
                return
            self.stopped = True
        try:
            if self.process.poll() is None:
                self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        finally:
            if isinstance(self.process, _Forked):
                self.process.close()
            self.sock.close()  # the stream's transport closes it too: closing twice is fine


class ParseWorkers:
    """Up to ``workers`` parses at once, each in its own process, each cut off after
    ``timeout`` seconds. Use as an async context; ``parse`` raises ``FeedError``.

    Each worker is sent up to ``_DEPTH`` jobs at once, the least busy worker first: a job
    waits behind another only when every worker is busy. Its deadline starts when the
    worker gets to it; if the worker is stopped before, another worker takes it."""

    def __init__(self, *, timeout: float, max_memory_bytes: int | None, workers: int,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.timeout = timeout
        self.max_entries = max_entries
        self.max_memory = max_memory_bytes
        self._slots = asyncio.Semaphore(workers * _DEPTH)
        self._all: set[_Worker] = set()
        """Every process started and not yet stopped."""
        self._ready: list[_Worker] = []
        """The workers that take jobs: connected, not failed."""
        self._starting: set[asyncio.Task[_Worker]] = set()
        self._answered = asyncio.Event()
        """Set when a worker answers a job or is stopped: it has room again."""
        self._closed = False
        self._template: _Template | None = None
        """Forks the workers where there are pidfds; started with the first worker or
        by ``prepare`` (a round of 304s starts none), stopped by ``close``."""
        self._no_template = False
        """Set once a template failed: the workers start on their own from then on."""
        self._template_lock = threading.Lock()
        self.workers = workers
        self.killed = 0
        """Workers killed at their deadline (or found dead) since the start."""

    async def __aenter__(self) -> ParseWorkers:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        starting = list(self._starting)
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        self.close()

    def close(self) -> None:
        self._closed = True
        for worker in list(self._all):
            worker.close_stream()
            worker.kill()
        self._all.clear()
        self._ready.clear()
        with self._template_lock:
            template, self._template = self._template, None
        if template is not None:
            template.close()

    def prepare(self) -> None:
        """Start the workers now, unless some are up or starting (or the pool is
        closed): the poller calls this before fetching a feed without validators that
        is not failing, whose body will come back whole. Their start (the template's
        imports) then runs while the first feeds are fetched, not after the first body
        arrives. A round of 304s never calls it, and starts no worker."""
        if self._closed or self._ready or self._starting:
            return
        # The template's interpreter starts here, on the loop's thread (a spawn, a few
        # ms): the workers' start, in a thread, waits for its imports. Started by that
        # task instead, it would wait for every poll begun meanwhile to reach its fetch.
        self._live_template()
        self._start_missing()

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
        version = analyser.version if analyser is not None else None
        resent = False
        for _ in range(_ATTEMPTS):
            async with self._slots:
                worker = await self._pick()
                payload = (analyser.pickled()
                           if analyser is not None and worker.analyser != version else None)
                if payload is not None:  # the jobs sent after this one need not carry it
                    worker.analyser = version
                job = (body, dict(headers), url, self.max_entries, feed_title, version, payload)
                try:
                    answer = await worker.send(job, self.timeout, self._answered, self._failed)
                except _Requeue:
                    continue
                except _Stopped as exc:
                    if isinstance(exc.cause, TimeoutError):
                        raise FeedError(f"refused: parsing took longer than {self.timeout:g}s "
                                        "([parse] timeout); the parser was stopped") from None
                    raise FeedError("the parser process died while parsing the feed "
                                    f"({type(exc.cause).__name__}); see the log") from exc.cause
            if answer[0] == "resend":  # it lost the analyser (a newer one failed to load)
                if worker.analyser == version:
                    worker.analyser = None
                resent = True
                continue
            if payload is not None and answer[0] != "ok" and worker.analyser == version:
                worker.analyser = None  # it may not have loaded it: the next job carries it
            if answer[0] == "ok":
                value: ParsedFeed | Analysed = answer[1]
                return value
            _, text, trace = answer
            if trace:
                log.error("%s: %s\n%s", url, text, trace.rstrip())
            raise FeedError(str(text))
        if resent:
            raise FeedError("internal error: the parse workers could not load the "
                            "watchlists; see the log; the feed is tried at its next poll")
        raise FeedError("not parsed: the parse workers it was given to were stopped "
                        f"{_ATTEMPTS} times on other feeds; it is tried again at its next poll")

    def _start_missing(self) -> None:
        for _ in range(self.workers - len(self._ready) - len(self._starting)):
            task = asyncio.create_task(self._start(), name="start a parse worker")
            self._starting.add(task)
            task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[_Worker]) -> None:
        self._starting.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: ``_start`` logged it, and a job waiting says so

    async def _pick(self) -> _Worker:
        """An idle worker; else, once every worker is up, the one with the fewest jobs
        (below ``_DEPTH``), not one still starting. The first job starts every missing
        worker at once: a process takes a moment to import the parser and
        the matcher, and the next feeds would each wait for one. None is started before
        a feed needs parsing (a round of 304s needs none), or ``prepare`` says one will."""
        while True:
            room = [w for w in self._ready if len(w.pending) < _DEPTH]
            idle = [w for w in room if not w.pending]
            if idle or (room and not self._starting and len(self._ready) >= self.workers):
                return (idle or room)[0] if idle else min(room, key=lambda w: len(w.pending))
            self._start_missing()
            if not self._starting:  # all up and full: jobs of cancelled polls fill them
                self._answered.clear()
                await self._answered.wait()
                continue
            done, _ = await asyncio.wait(set(self._starting),
                                         return_when=asyncio.FIRST_COMPLETED)
            if any(t.cancelled() or t.exception() is not None for t in done):
                raise FeedError("a parse worker did not start; see the log")

    async def _start(self) -> _Worker:
        def make() -> _Worker:
            worker = self._fork()
            if worker is None:
                if self._closed:
                    raise FeedError("the parse workers are closed")
                worker = _Worker(*_spawn(self.max_memory))
            self._all.add(worker)  # before the check: close kills it, or it sees closed
            if self._closed:  # the pool closed while this worker started
                self._all.discard(worker)
                worker.kill()
                raise FeedError("the parse workers are closed")
            return worker

        try:
            worker = await asyncio.to_thread(make)
        except Exception:
            log.exception("a parse worker did not start")
            raise
        try:
            await worker.connect()
        except BaseException as exc:
            if isinstance(exc, Exception):
                log.exception("a parse worker did not start")
            worker.close_stream()
            worker.stop()
            await asyncio.to_thread(worker.kill)
            self._all.discard(worker)
            raise
        self._ready.append(worker)
        return worker

    def _live_template(self) -> _Template | None:
        """The template, started if need be (again, if it has ended); None where there
        is none: no pidfds, the pool closed, or a template failed before (logged)."""
        if not _CAN_FORK:
            return None
        with self._template_lock:
            if self._closed or self._no_template:
                return None
            if self._template is not None and not self._template.alive():
                self._template.kill()  # reaped
                self._template = None
            if self._template is None:
                try:
                    self._template = _Template()
                except OSError as exc:
                    self._no_template = True
                    log.warning("the parse worker template did not start (%s); "
                                "each worker starts on its own", exc)
            return self._template

    def _fork(self) -> _Worker | None:
        """A worker forked by the template, or None where there is none. A template that
        fails is stopped, and the workers start on their own from then on (logged)."""
        template = self._live_template()
        if template is None:
            return None
        try:
            return _Worker(*template.fork(self.max_memory))
        except TemplateFailed as exc:
            with self._template_lock:
                if self._template is not template:  # ``close`` took it: not a failure
                    return None
                self._template = None
                self._no_template = True
            log.warning("the parse worker template did not fork a worker (%s); "
                        "the workers start on their own", exc)
            template.kill()  # its workers, if any, go on until they are stopped
            return None

    async def _failed(self, worker: _Worker) -> None:
        """A worker past a job's deadline, or dead: stopped, and no longer given jobs."""
        if worker in self._ready:
            self._ready.remove(worker)
        if worker.stopped or self._closed:  # stopped on purpose: ``close``
            return
        self.killed += 1
        worker.close_stream()
        worker.stop()  # now: were the reaping below cancelled, the process still ends
        await asyncio.to_thread(worker.kill)
        self._all.discard(worker)


def default_workers() -> int:
    """Parse workers when the settings do not say: the CPUs, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))

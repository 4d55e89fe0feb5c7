"""A parse worker's process, started by ``workers.ParseWorkers``, in one of two ways:

- ``python -m monitor.parse_worker FD``: one worker. It reads jobs from the socket
  ``FD`` and answers each, in ``multiprocessing.connection``'s frames: a 4-byte length
  (or -1 and an 8-byte one), then the pickle. The first frame is the daemon's
  ``sys.path`` and the memory cap; then each job is a feed to parse, and to analyse
  when it carries an analyser version.
- ``python -m monitor.parse_worker --template FD`` (Linux): a process that imports the
  parser and the matcher once, then forks a worker for each request it reads from the
  socket ``FD`` (a message, and the worker's socket as its file descriptor). A forked
  worker is ready at once: it does not start an interpreter nor import anything. It
  sends the daemon a pidfd of itself first, so the daemon can stop it without being
  its parent (``workers._Forked``). The template reaps its workers as they end. When
  its socket ends (the pool closed, or the daemon died), it kills the workers still
  running (a parse the daemon can no longer stop), waits for them and ends, so their
  CPU time counts in its own (``RUSAGE_CHILDREN``), and in the daemon's once reaped.

Either way the process imports only the parser and the matcher: no asyncio, no HTTP,
no database, and not the daemon's main module (which ``multiprocessing``'s spawn would
import), so it is ready in a fraction of the time. The template has a single thread,
so forking it is safe (forking the daemon, which has threads, is not).
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import resource
import signal
import socket
import sys
import traceback
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .analyse import Analyser

REQUEST_BYTES = 1 << 16
"""The largest message the template reads: ``sys.path`` first, then each request."""


def main(argv: list[str]) -> None:
    # Ctrl-C reaches the whole process group: the daemon decides, and closes the socket
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if argv[1] == "--template":
        template(socket.socket(fileno=int(argv[2])))
        return
    conn = Connection(int(argv[1]))
    try:
        paths, max_memory = conn.recv()
    except (EOFError, OSError):
        return
    sys.path[:] = paths  # as spawn does: the daemon's modules (and tests') unpickle here
    _limit(max_memory)
    serve(conn)


def _limit(max_memory: int | None) -> None:
    if max_memory is not None:
        resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))


def template(control: socket.socket) -> None:
    """Read ``sys.path``, import what a worker runs, then fork a worker for each
    request: a pickled memory cap, with the worker's socket passed along."""
    try:
        paths = pickle.loads(control.recv(REQUEST_BYTES))
    except (EOFError, OSError, pickle.UnpicklingError):
        return
    sys.path[:] = paths
    from . import analyse, parse  # noqa: F401  what every worker runs, imported once

    signal.signal(signal.SIGCHLD, _reap)
    gc.collect()
    gc.freeze()  # the imports, shared with every worker and never traversed by its collector
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, REQUEST_BYTES, 1)
        except OSError:
            data, fds = b"", []
        if not data:  # the pool closed (its workers stopped first), or the daemon died
            for fd in fds:
                os.close(fd)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # none reaped behind this loop:
            for pid in _running:  # each pid is a worker's, running or not yet waited for
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            while True:
                try:
                    os.wait()
                except ChildProcessError:
                    os._exit(0)  # nothing to flush nor to tear down: the pool waits for this
        if not fds:
            continue
        (fd,) = fds
        # a worker ending at once is reaped only once it is in ``_running``
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
        except OSError:  # the daemon reads EOF where it waits for the worker
            os.close(fd)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            continue
        if pid != 0:
            _running.add(pid)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        else:
            code = 0
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                _forked(socket.socket(fileno=fd), pickle.loads(data))
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        os.close(fd)


_running: set[int] = set()
"""The template's workers not yet waited for."""


def _reap(_signum: int, _frame: object) -> None:
    """SIGCHLD in the template: wait for every worker that has ended."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _running.discard(pid)


def _forked(sock: socket.socket, max_memory: int | None) -> None:
    """A forked worker: its pidfd to the daemon first, then the jobs."""
    pidfd = os.pidfd_open(os.getpid())
    try:
        socket.send_fds(sock, [b"p"], [pidfd])
    except OSError:
        return
    finally:
        os.close(pidfd)
    _limit(max_memory)
    serve(Connection(sock.detach()))


def serve(conn: Connection) -> None:
    """Parse each body sent, and analyse the entries when the job carries an analyser
    version; answer ("ok", ParsedFeed or Analysed), ("error", text, traceback or None),
    or ("resend",) when it holds no analyser of the job's version. An analyser comes
    pickled, once per version: the worker keeps the last one."""
    from .errors import FeedError
    from .parse import parse_feed

    analyser: Analyser | None = None
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        body, headers, url, max_entries, feed_title, version, payload = job
        answer: tuple[Any, ...]
        stage = "parsing the feed"
        try:
            if (version is not None and payload is None
                    and (analyser is None or analyser.version != version)):
                answer = ("resend",)  # a newer analyser failed to load: the daemon resends
            else:
                parsed = parse_feed(body, headers, url, max_entries=max_entries)
                if version is None:
                    answer = ("ok", parsed)
                else:
                    stage = "matching the feed's entries"
                    if payload is not None:
                        analyser = None  # the old one's memory first
                        analyser = pickle.loads(payload)
                    assert analyser is not None  # held, or just loaded
                    answer = ("ok", analyser.analyse(parsed, feed_title))
        except FeedError as exc:
            answer = ("error", str(exc), None)
        except MemoryError:
            answer = ("error", f"refused: {stage} needed more memory than "
                               "[parse] max_memory_bytes allows", None)
        except RecursionError:
            answer = ("error", "refused: the feed is nested too deeply to parse", None)
        except Exception as exc:  # a bug costs this feed this poll, never the worker
            answer = ("error", f"internal error while {stage} ({type(exc).__name__})",
                      traceback.format_exc())
        del body, job, payload
        try:
            conn.send(answer)
        except MemoryError:
            conn.send(("error", "refused: the parsed feed is too large to hand back "
                                "within [parse] max_memory_bytes", None))


if __name__ == "__main__":
    main(sys.argv)

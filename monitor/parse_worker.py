"""A parse worker's process: ``python -m monitor.parse_worker FD``, started by
``workers.ParseWorkers``. It reads jobs from the socket ``FD`` and answers each, in
``multiprocessing.connection``'s frames: a 4-byte length (or -1 and an 8-byte one),
then the pickle.

The first frame is the daemon's ``sys.path`` and the memory cap; then each job is a
feed to parse, and to analyse when it carries an analyser version. The process imports
only the parser and the matcher: no asyncio, no HTTP, no database, and not the
daemon's main module (which ``multiprocessing``'s spawn would import), so it is ready
in a fraction of the time.
"""

from __future__ import annotations

import pickle
import resource
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .analyse import Analyser


def main(argv: list[str]) -> None:
    conn = Connection(int(argv[1]))
    # Ctrl-C reaches the whole process group: the daemon decides, and closes the socket
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        paths, max_memory = conn.recv()
    except (EOFError, OSError):
        return
    sys.path[:] = paths  # as spawn does: the daemon's modules (and tests') unpickle here
    if max_memory is not None:
        resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    serve(conn)


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

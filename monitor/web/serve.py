"""Serving the console with uvicorn: from a thread beside the daemon (``ConsoleServer``)
or in the foreground (``serve``, for ``monitor web``).

The socket is bound here, before uvicorn starts, so a port in use is an error at once
and port 0 gives a free port known before the first request. uvicorn keeps its hands
off logging (our handlers, no access log: the console logs sign-ins itself) and does
not trust X-Forwarded-For (the sign-in limiter counts by client address).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from typing import Any

import uvicorn

from ..errors import MonitorError

__all__ = ["ConsoleServer", "bind", "serve"]

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MonitorError(f"[web] console: cannot listen on {host}:{port}: "
                           f"{exc.strerror or exc}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _server(app: Any) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(
        app, log_config=None, access_log=False, proxy_headers=False, lifespan="off",
        server_header=False, timeout_graceful_shutdown=5))


class ConsoleServer:
    """Serves ``app`` on (host, port) from a daemon thread with its own event loop
    until ``close()``. uvicorn installs no signal handlers off the main thread, so the
    daemon's own SIGTERM and SIGHUP handling is untouched."""

    def __init__(self, host: str, port: int, app: Any) -> None:
        self._sock = bind(host, port)
        self.port = int(self._sock.getsockname()[1])
        self._server = _server(app)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._sock])),
            name="console", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


def serve(host: str, port: int, app: Any) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then return (exit status 0).

    The server runs in its thread as beside the daemon; this thread only waits for the
    signal (uvicorn in the main thread would re-raise it after its shutdown)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    server = ConsoleServer(host, port, app)
    log.info("serving the console on http://%s:%d/", host, server.port)
    try:
        stop.wait()
        log.info("stopping the console")
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

"""A small WSGI app served from a thread by the standard library's ``wsgiref``.

It answers ``GET /metrics`` (Prometheus text format) and ``GET /healthz`` (200 or 503
with the failing checks as JSON), and the WebSub hubs' requests under ``/websub/``
(``websub.Endpoint.handle``, framework-free; this module only adapts WSGI to it). It
holds no state: every answer comes from callables the daemon passes in, which read the
configuration in force, so a reload needs no restart. There is no authentication:
listen on 127.0.0.1 only (a reverse proxy may forward ``/websub/`` alone).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..errors import MonitorError
from ..health import HealthReport

__all__ = ["WebServer", "wsgi_app"]

log = logging.getLogger(__name__)

Metrics = Callable[[str], tuple[bytes, str]]
Health = Callable[[], HealthReport]
WebSub = Callable[[str, str, str, dict[str, str], bytes], tuple[int, list[tuple[str, str]], bytes]]
"""method, path, query, headers, body -> status, headers, body (``websub.Endpoint``)."""
StartResponse = Callable[..., Any]


def wsgi_app(metrics: Metrics, health: Health, websub: WebSub | None = None,
             max_body_bytes: int = 10_000_000
             ) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if websub is not None and path.startswith("/websub/"):
            return _websub(websub, environ, start_response, max_body_bytes)
        if path not in ("/metrics", "/healthz"):
            return _reply(start_response, "404 Not Found", b"not found\n", "text/plain")
        if method not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"GET only\n",
                          "text/plain", [("Allow", "GET, HEAD")])
        if path == "/metrics":
            body, content_type = metrics(environ.get("HTTP_ACCEPT", ""))
            return _reply(start_response, "200 OK", body, content_type)
        report = health()
        if not report.ok:
            log.warning("health check failing: %s", report.reason)
        return _reply(start_response, "200 OK" if report.ok else "503 Service Unavailable",
                      report.json(), "application/json")

    return app


def _websub(websub: WebSub, environ: dict[str, Any], start_response: StartResponse,
            cap: int) -> list[bytes]:
    length = environ.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > cap:
        return _reply(start_response, "413 Content Too Large", b"body too large\n", "text/plain")
    body = environ["wsgi.input"].read(int(length)) if int(length) else b""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
               if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    status, extra, out = websub(environ.get("REQUEST_METHOD", "GET"), environ["PATH_INFO"],
                                environ.get("QUERY_STRING", ""), headers, body)
    start_response(f"{status} {HTTPStatus(status).phrase}",
                   [*extra, ("Content-Length", str(len(out)))])
    return [out]


def _reply(start_response: StartResponse, status: str, body: bytes, content_type: str,
           extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(status, [("Content-Type", content_type),
                            ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), *(extra or [])])
    return [body]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class WebServer:
    """Serves ``app`` on (host, port) from a daemon thread until ``close()``."""

    def __init__(self, host: str, port: int, metrics: Metrics, health: Health,
                 websub: WebSub | None = None, max_body_bytes: int = 10_000_000) -> None:
        try:
            self._httpd = make_server(host, port, wsgi_app(metrics, health, websub,
                                                           max_body_bytes),
                                      server_class=_Server6 if ":" in host else _Server,
                                      handler_class=_QuietHandler)
        except OSError as exc:
            raise MonitorError(f"[web] listen: cannot listen on {host}:{port}: "
                               f"{exc.strerror or exc}") from exc
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="web",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

"""Serving the adversarial corpus (tests/data/adversarial/cases.py) from a FeedServer:
one route per case at ``/<name>``, served the way the case says."""

from __future__ import annotations

import gzip
import importlib.util
import sys
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType

from servers import FeedServer, Route

CORPUS = Path(__file__).resolve().parent / "data" / "adversarial"
CANARY = b"http://127.0.0.1:9/"
"""Files point their external references here; served, it becomes the corpus server's
own address, so a reference that were ever followed would show among its requests."""
MB = 1_000_000


def load_cases() -> ModuleType:
    spec = importlib.util.spec_from_file_location("adversarial_cases", CORPUS / "cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _write(h: BaseHTTPRequestHandler, data: bytes) -> bool:
    try:
        h.wfile.write(data)
        h.wfile.flush()
    except OSError:
        return False
    return True


def _head(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
    h.send_response(status)
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()


def handler(server: FeedServer, case: object, body: bytes
            ) -> Callable[[BaseHTTPRequestHandler], None]:
    serve: str = case.serve  # type: ignore[attr-defined]
    ctype: str = case.content_type  # type: ignore[attr-defined]
    release = server.release

    def run(h: BaseHTTPRequestHandler) -> None:
        headers = {"Content-Type": ctype}
        if serve == "trickle":
            _head(h, 200, {**headers, "Content-Length": str(len(body))})
            for byte in body[:120]:  # one a second; the client's deadline ends it
                if not _write(h, bytes([byte])) or release.wait(1):
                    return
        elif serve == "hang":
            release.wait(60)
        elif serve == "slow-headers":
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"[:60]:
                if not _write(h, bytes([byte])) or release.wait(1):
                    return
        elif serve in ("endless", "streamed-50mb", "declared-50mb"):
            limit = {"endless": 10_000 * MB, "streamed-50mb": 50 * MB,
                     "declared-50mb": 50 * MB}[serve]
            extra = {"Content-Length": str(limit)} if serve == "declared-50mb" else {}
            h.close_connection = True
            _head(h, 200, {**headers, **extra, "Connection": "close"})
            chunk = b"<item><title>x</title></item>" * 2000
            sent = 0
            while sent < limit and not release.is_set() and _write(h, chunk):
                sent += len(chunk)
        elif serve == "chunked":
            h.close_connection = True
            _head(h, 200, {**headers, "Connection": "close"})
            _write(h, body)
        else:
            raise AssertionError(f"unknown serve {serve!r}")

    return run


def register(server: FeedServer, case: object) -> str:
    """Add the case's route (and its redirect targets) to the server; its URL."""
    name: str = case.name  # type: ignore[attr-defined]
    serve: str = case.serve  # type: ignore[attr-defined]
    path = f"/{name}"
    body = case.data().replace(CANARY, server.url("/").encode())  # type: ignore[attr-defined]
    headers = {"Content-Type": case.content_type, **case.headers}  # type: ignore[attr-defined]
    status: int = case.status  # type: ignore[attr-defined]
    if serve == "gzip":
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    elif serve == "deflate":
        body, headers["Content-Encoding"] = zlib.compress(body), "deflate"
    elif serve == "raw-deflate":
        z = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body, headers["Content-Encoding"] = z.compress(body) + z.flush(), "deflate"
    elif serve == "redirect":
        status, body = 302, b""
        location: str = case.location  # type: ignore[attr-defined]
        headers["Location"] = server.url(location) if location.startswith("/") else location
        if location.startswith("/redirect-chain-"):
            for i in range(1, 10):
                server.routes[f"/redirect-chain-{i}"] = Route(
                    b"", 302, {"Location": server.url(f"/redirect-chain-{i + 1}")})
    if serve in ("plain", "gzip", "deflate", "raw-deflate", "redirect"):
        server.routes[path] = Route(body, status, headers)
    else:
        server.routes[path] = Route(handler=handler(server, case, body))
    return server.url(path)

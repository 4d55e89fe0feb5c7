"""Real servers on 127.0.0.1 for the tests: a feed server, an SMTP server, and the
service manager's sd_notify socket."""

from __future__ import annotations

import email
import email.policy
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


def send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str],
         body: bytes) -> None:
    """A whole answer, with its length: for a ``Route`` handler of a test's own."""
    handler.send_response(status)
    for k, v in headers.items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        send(self, status, headers, body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up early (a refused body, a deadline) is expected


class _LocalServer:
    """An HTTP server on 127.0.0.1, in a thread, for one test. Handlers that hang wait on
    ``release``, which stopping the server sets."""

    def __init__(self, handler: type[_Handler], host: str = "127.0.0.1", port: int = 0) -> None:
        self.release = threading.Event()
        self.host = host
        self.httpd = _Server((host, port), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str = "") -> str:
        return f"http://{self.host}:{self.port}{path}"


class FeedServer(_LocalServer):
    """Serves whatever routes a test sets, and records every request."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        server = self

        class Handler(_Handler):
            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append(Seen(self.path, headers))
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                elif route.handler is not None:
                    route.handler(self)
                else:
                    self.reply(route.status, route.headers, route.body)

        super().__init__(Handler, host, port)

    def __enter__(self) -> FeedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve(self, path: str, body: bytes | str, status: int = 200,
              content_type: str = "application/rss+xml; charset=utf-8", **headers: str) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Route(data, status, {"Content-Type": content_type, **headers})
        return self.url(path)

    def hits(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]


class SmtpServer:
    """aiosmtpd collecting every message it is sent."""

    def __init__(self, port: int | None = None) -> None:
        self.messages: list[EmailMessage] = []
        self.received = threading.Event()
        outer = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[attr-defined]
                outer.messages.append(msg)  # type: ignore[arg-type]
                outer.received.set()
                return "250 OK"

        self.port = port or free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def url(self, to: str = "desk@example.org") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=monitor@example.org&to={to}&mode=insecure"

    @staticmethod
    def text(msg: EmailMessage) -> str:
        part = msg.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())


def rss(*items: dict[str, str], title: str = "Test feed", extra: str = "") -> str:
    """An RSS 2.0 document; each item maps element names to (already plain) text."""
    out = [f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
           f"<title>{escape(title)}</title><link>http://example.org/</link>"
           f"<description>test</description>{extra}"]
    for item in items:
        out.append("<item>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items())
                   + "</item>")
    out.append("</channel></rss>")
    return "".join(out)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)


class Receiver(_LocalServer):
    """An HTTP endpoint on 127.0.0.1 that records every POST and answers from a script
    of replies (then 200 "ok"). With ``hang`` set, it holds each request until
    ``release`` is set (at most 30 s)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        self.script: list[Reply] = []
        self.answered: list[int] = []
        self.hang = False
        self.arrived = threading.Event()
        self.changed = threading.Condition()
        server = self

        class Handler(_Handler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-body: nothing arrived
                    self.close_connection = True
                    return
                with server.changed:
                    server.posts.append((self.path, body))
                    server.changed.notify_all()
                server.arrived.set()
                if server.hang:
                    server.release.wait(30)
                reply = server.script.pop(0) if server.script else Reply()
                server.answered.append(reply.status)
                self.reply(reply.status, reply.headers, reply.body)

        super().__init__(Handler)

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_posts(self, n: int, timeout: float = 30) -> None:
        """Until ``n`` posts have arrived (answered or still held); fails after
        ``timeout`` seconds."""
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.posts) >= n, timeout):
                raise AssertionError(f"{len(self.posts)} posts, not {n}, in {timeout}s")

    def delivered(self) -> list[bytes]:
        """The bodies of the posts answered with 200."""
        return [body for (_, body), status in zip(self.posts, self.answered, strict=False)
                if status == 200]
class NotifySocket:
    """The service manager's end of sd_notify: a unix datagram socket in the abstract
    namespace, read by a thread (as systemd reads it: the daemon never finds it full)."""

    def __init__(self) -> None:
        self.name = f"@monitor-test-{os.getpid()}-{secrets.token_hex(6)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name[1:].encode())
        self.messages: list[dict[str, str]] = []
        self._queue: queue.Queue[dict[str, str]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            self._queue.put(dict(line.split("=", 1) for line in data.decode().splitlines()
                                 if line))

    def __enter__(self) -> NotifySocket:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def wait_for(self, key: str, value: str = "1", timeout: float = 30,
                 where: Callable[[dict[str, str]], bool] | None = None) -> dict[str, str]:
        """The next message with KEY=VALUE (and ``where``); every message read is kept in
        ``messages``. Fails after ``timeout`` seconds without one."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {key}={value} within {timeout}s; got "
                                     f"{self.messages[-5:]}") from None
            self.messages.append(message)
            if message.get(key) == value and (where is None or where(message)):
                return message

"""The fetcher against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import ipaddress
import threading
import tracemalloc
import zlib
from http.server import BaseHTTPRequestHandler

from servers import FeedServer, Route

from monitor.fetch import FeedAuth, Fetcher, FetchResult

LOCAL = [ipaddress.ip_network("127.0.0.1/32")]


def fetch(url: str, *, allow: list = LOCAL, timeout: float = 5, cap: int = 1_000_000,  # type: ignore[type-arg]
          etag: str | None = None, last_modified: str | None = None) -> FetchResult:
    async def go() -> FetchResult:
        async with Fetcher(timeout=timeout, max_body_bytes=cap, concurrency=4,
                           user_agent="monitor-test/1 (+https://example.org)",
                           allow_private_networks=allow) as f:
            return await f.fetch(url, etag, last_modified)
    return asyncio.run(go())


def test_body_headers_and_validators(feed_server: FeedServer) -> None:
    url = feed_server.serve("/f", "<rss/>", ETag='"abc"',
                            **{"Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"})
    r = fetch(url)
    assert (r.status, r.body, r.error) == (200, b"<rss/>", None)
    assert (r.etag, r.last_modified) == ('"abc"', "Mon, 01 Jan 2024 00:00:00 GMT")
    assert feed_server.requests[0].headers["user-agent"] == "monitor-test/1 (+https://example.org)"


def test_conditional_get_sends_validators_and_understands_304(feed_server: FeedServer) -> None:
    url = feed_server.serve("/f", b"", status=304)
    r = fetch(url, etag='"abc"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    assert r.not_modified and r.error is None
    seen = feed_server.requests[0].headers
    assert seen["if-none-match"] == '"abc"'
    assert seen["if-modified-since"] == "Mon, 01 Jan 2024 00:00:00 GMT"


def test_http_errors_are_results_not_exceptions(feed_server: FeedServer) -> None:
    assert fetch(feed_server.url("/missing")).error == "HTTP 404 Not Found"


def test_body_cap_is_enforced_while_streaming(feed_server: FeedServer) -> None:
    def endless(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()  # no Content-Length: the body just goes on
        try:
            for _ in range(10_000):
                h.wfile.write(b"x" * 1024)
        except OSError:
            pass
    feed_server.routes["/endless"] = Route(handler=endless)
    r = fetch(feed_server.url("/endless"), cap=64_000)
    assert r.error == "body larger than max_body_bytes (64,000 bytes)"


def test_declared_length_over_the_cap_is_refused_before_reading(feed_server: FeedServer) -> None:
    url = feed_server.serve("/big", b"x" * 5000)
    assert fetch(url, cap=1000).error == "body larger than max_body_bytes (1,000 bytes)"


def test_total_deadline_covers_a_server_that_never_answers(feed_server: FeedServer) -> None:
    def hang(h: BaseHTTPRequestHandler) -> None:
        feed_server.release.wait(30)
    feed_server.routes["/hang"] = Route(handler=hang)
    r = fetch(feed_server.url("/hang"), timeout=0.5)
    assert r.error == "timed out after 0.5s"


def test_private_addresses_are_refused_unless_allowed(feed_server: FeedServer) -> None:
    url = feed_server.serve("/f", "<rss/>")
    r = fetch(url, allow=[])
    assert r.error is not None and r.error.startswith("refused: 127.0.0.1 resolves to 127.0.0.1")
    assert "allow_private_networks" in r.error
    assert feed_server.requests == []  # nothing was sent


def test_redirect_into_a_private_network_is_refused(feed_server: FeedServer) -> None:
    target = feed_server.serve("/target", "<rss/>")
    feed_server.serve("/moved", b"", status=301, Location=target.replace("127.0.0.1", "127.0.0.2"))
    r = fetch(feed_server.url("/moved"))
    assert r.error is not None and "127.0.0.2" in r.error and r.error.startswith("refused")


def test_redirects_are_followed(feed_server: FeedServer) -> None:
    target = feed_server.serve("/target", "<rss/>")
    feed_server.serve("/moved", b"", status=301, Location=target)
    assert fetch(feed_server.url("/moved")).body == b"<rss/>"


def test_unreachable_host_is_an_error_result() -> None:
    from servers import free_port

    r = fetch(f"http://127.0.0.1:{free_port()}/feed")
    assert r.error is not None and r.error.startswith("connection failed")


def test_gzip_and_deflate_bodies_are_decoded(feed_server: FeedServer) -> None:
    body = b"<rss>" + b"Libya " * 1000 + b"</rss>"
    gz = feed_server.serve("/gz", gzip.compress(body), **{"Content-Encoding": "gzip"})
    zl = feed_server.serve("/zl", zlib.compress(body), **{"Content-Encoding": "deflate"})
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    rd = feed_server.serve("/raw", raw.compress(body) + raw.flush(),
                           **{"Content-Encoding": "deflate"})
    assert [fetch(u).body for u in (gz, zl, rd)] == [body, body, body]


def test_a_gzip_bomb_is_refused_without_inflating_it(feed_server: FeedServer) -> None:
    bomb = gzip.compress(b"\0" * 200_000_000, compresslevel=9)  # 200 MB of zeros in ~200 kB
    url = feed_server.serve("/bomb", bomb, **{"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        result = fetch(url, cap=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.error == "body larger than max_body_bytes (1,000,000 bytes)"
    assert peak < 20_000_000


def test_stacked_and_unknown_encodings_are_refused(feed_server: FeedServer) -> None:
    twice = feed_server.serve("/twice", gzip.compress(gzip.compress(b"<rss/>")),
                              **{"Content-Encoding": "gzip, gzip"})
    br = feed_server.serve("/br", b"xx", **{"Content-Encoding": "br"})
    assert fetch(twice).error == "refused: stacked content encodings (gzip, gzip)"
    assert fetch(br).error == "refused: unsupported content encoding 'br'"


def test_a_trickling_body_is_cut_off_by_the_deadline(feed_server: FeedServer) -> None:
    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        for _ in range(100):  # a byte every 0.2 s, far beyond the deadline
            if feed_server.release.wait(0.2):
                return
            try:
                h.wfile.write(b"x")
                h.wfile.flush()
            except OSError:
                return
    feed_server.routes["/trickle"] = Route(handler=trickle)
    assert fetch(feed_server.url("/trickle"), timeout=1).error == "timed out after 1s"


def test_a_redirect_to_ipv6_loopback_is_refused(feed_server: FeedServer) -> None:
    feed_server.serve("/v6", b"", status=302, Location="http://[::1]:9/feed")
    r = fetch(feed_server.url("/v6"))
    assert r.error is not None and r.error.startswith("refused: ::1 resolves to ::1")


def test_permanent_redirects_report_the_new_location(feed_server: FeedServer) -> None:
    target = feed_server.serve("/new", "<rss/>")
    feed_server.serve("/old", b"", status=301, Location=target)
    feed_server.serve("/tmp", b"", status=302, Location=target)
    assert fetch(feed_server.url("/old")).moved_to == target
    assert fetch(feed_server.url("/tmp")).moved_to is None


def test_feed_headers_and_basic_auth_are_sent(feed_server: FeedServer) -> None:
    url = feed_server.serve("/private", "<rss/>")

    async def go() -> FetchResult:
        async with Fetcher(timeout=5, max_body_bytes=1000, concurrency=2, user_agent="t",
                           allow_private_networks=LOCAL) as f:
            return await f.fetch(url, auth=FeedAuth((("X-Api-Key", "k1"),), ("desk", "pw")))
    assert asyncio.run(go()).error is None
    seen = feed_server.requests[0].headers
    assert seen["x-api-key"] == "k1"
    assert seen["authorization"] == "Basic " + base64.b64encode(b"desk:pw").decode()


def test_requests_to_one_host_are_limited(feed_server: FeedServer) -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def slow(h: BaseHTTPRequestHandler) -> None:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        feed_server.release.wait(0.2)  # hold the request so that others overlap
        with lock:
            state["now"] -= 1
        h.send_response(200)
        h.send_header("Content-Length", "6")
        h.end_headers()
        h.wfile.write(b"<rss/>")
    for i in range(6):
        feed_server.routes[f"/s{i}"] = Route(handler=slow)

    async def go() -> list[FetchResult]:
        async with Fetcher(timeout=10, max_body_bytes=1000, concurrency=10, user_agent="t",
                           allow_private_networks=LOCAL, per_host=2) as f:
            return await asyncio.gather(*(f.fetch(feed_server.url(f"/s{i}")) for i in range(6)))
    assert all(r.error is None for r in asyncio.run(go()))
    assert state["max"] == 2


def test_credentials_stay_with_their_origin_across_redirects(feed_server: FeedServer) -> None:
    """Basic auth goes to the feed's origin, and along a redirect on that origin, never
    to another one (another port here); the feed's own headers go along, as with httpx."""
    with FeedServer() as other:
        elsewhere = other.serve("/feed", "<rss/>")
        feed_server.serve("/same", b"", status=302, Location="/hop")
        feed_server.serve("/hop", b"", status=301, Location=elsewhere)

        async def go() -> FetchResult:
            async with Fetcher(timeout=5, max_body_bytes=1000, concurrency=2, user_agent="t",
                               allow_private_networks=LOCAL) as f:
                return await f.fetch(feed_server.url("/same"),
                                     auth=FeedAuth((("X-Api-Key", "k1"),), ("desk", "pw")))
        r = asyncio.run(go())
        assert (r.error, r.body, r.moved_to) == (None, b"<rss/>", None)  # a 302 on the way
        first, second = feed_server.requests
        (third,) = other.requests
        assert first.headers["authorization"] == second.headers["authorization"]
        assert "authorization" not in third.headers
        assert third.headers["x-api-key"] == "k1"


def test_a_cookie_set_on_a_redirect_is_sent_to_the_next_hop(feed_server: FeedServer) -> None:
    """A server that sets a cookie and redirects to where it expects it (a cookie check
    before the feed) is followed as a browser would."""
    def gate(h: BaseHTTPRequestHandler) -> None:
        if "seen=1" in (h.headers.get("Cookie") or ""):
            h.reply(200, {"Content-Type": "application/rss+xml"}, b"<rss/>")  # type: ignore[attr-defined]
        else:
            h.reply(302, {"Set-Cookie": "seen=1; Path=/", "Location": "/gate"}, b"")  # type: ignore[attr-defined]
    feed_server.routes["/gate"] = Route(handler=gate)
    r = fetch(feed_server.url("/gate"))
    assert (r.error, r.body) == (None, b"<rss/>")
    assert len(feed_server.requests) == 2


def test_an_address_in_a_form_other_than_dotted_quad_is_refused(feed_server: FeedServer) -> None:
    """2130706433 is 127.0.0.1 to the socket layer: the HTTP library takes it for an
    address and would connect to it without a lookup, so the guard refuses it, on the
    first URL and on a redirect, even where 127.0.0.1 is allowed."""
    port = feed_server.port
    feed_server.serve("/moved", b"", status=302, Location=f"http://2130706433:{port}/f")
    for url in (f"http://2130706433:{port}/f", f"http://127.1:{port}/f",
                feed_server.url("/moved")):
        r = fetch(url)
        assert r.error is not None and r.error.startswith("refused: "), (url, r.error)
        assert "is not a canonical IP address" in r.error
    assert [s.path for s in feed_server.requests] == ["/moved"]


def test_a_long_response_header_is_read(feed_server: FeedServer) -> None:
    """A 20 kB Content-Security-Policy, as some news sites send with their feeds."""
    policy = "default-src 'self'; " + "; ".join(f"img-src https://cdn{i}.example.org"
                                               for i in range(600))
    assert len(policy) > 20_000
    url = feed_server.serve("/f", "<rss/>", **{"Content-Security-Policy": policy})
    r = fetch(url)
    assert (r.error, r.body) == (None, b"<rss/>")
    assert r.headers["content-security-policy"] == policy


def test_a_feed_header_that_would_inject_is_an_error_result(feed_server: FeedServer) -> None:
    """A header value with a line break (or a name that is no HTTP token) is refused
    before anything is sent, without repeating the value (it may be a key)."""
    url = feed_server.serve("/f", "<rss/>")

    async def go(auth: FeedAuth) -> FetchResult:
        async with Fetcher(timeout=5, max_body_bytes=1000, concurrency=2, user_agent="t",
                           allow_private_networks=LOCAL) as f:
            return await f.fetch(url, auth=auth)
    for auth in (FeedAuth((("X-Api-Key", "k1\r\nX-Evil: 1"),)), FeedAuth((("Bad Name", "k1"),))):
        r = asyncio.run(go(auth))
        assert r.error is not None and r.error.startswith("refused: the feed's header")
        assert "k1" not in r.error
    assert feed_server.requests == []


def test_a_304_leaves_its_connection_for_the_next_request() -> None:
    """Keep-alive through 304s: a warm cycle is mostly 304s, and httpcore closed the
    connection of every response whose (empty) body was not read, one TCP connection
    per 304."""
    connections: list[asyncio.Event] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(done := asyncio.Event())
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\nContent-Length: 0\r\n\r\n')
                await writer.drain()
        writer.close()
        done.set()

    async def go() -> list[FetchResult]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            async with Fetcher(timeout=5, max_body_bytes=1000, concurrency=2,
                               user_agent="t", allow_private_networks=LOCAL) as f:
                results = [await f.fetch(f"http://127.0.0.1:{port}/f{i}", '"e"')
                           for i in range(5)]
            # the fetcher closed its connections: each handler sees the end and returns
            await asyncio.wait_for(asyncio.gather(*(d.wait() for d in connections)), 10)
            return results
    assert [r.status for r in asyncio.run(go())] == [304] * 5
    assert len(connections) == 1

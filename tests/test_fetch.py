"""The fetcher against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ipaddress
from http.server import BaseHTTPRequestHandler

from servers import FeedServer, Route

from monitor.fetch import Fetcher, FetchResult

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

"""DNS rebinding: the address checked is the address connected to. A name that
resolves to an allowed address when it is checked and to 127.0.0.2 a moment later
must never reach 127.0.0.2 (servers on 127.0.0.1 and 127.0.0.2, same port)."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from servers import FeedServer, rss

from monitor.errors import FeedError
from monitor.fetch import Fetcher, FetchResult
from monitor.netguard import Guard, Resolver, system_resolver

LOCAL = [ipaddress.ip_network("127.0.0.1/32")]
HOST = "feeds.rebind.test"


@pytest.fixture
def pair() -> Iterator[tuple[FeedServer, FeedServer]]:
    """A feed on 127.0.0.1 (allowed) and a trap on 127.0.0.2 (not), on the same port."""
    with FeedServer() as good:
        try:
            trap = FeedServer("127.0.0.2", good.port)
        except OSError as exc:
            pytest.skip(f"cannot listen on 127.0.0.2:{good.port}: {exc}")
        with trap:
            good.serve("/feed.xml", rss({"title": "allowed", "guid": "1"}))
            trap.serve("/feed.xml", rss({"title": "internal", "guid": "2"}))
            yield good, trap


def fetch(url: str, *, resolver: Resolver = system_resolver,
          ssl_context: ssl.SSLContext | None = None) -> FetchResult:
    async def go() -> FetchResult:
        async with Fetcher(timeout=5, max_body_bytes=100_000, concurrency=4, user_agent="t",
                           allow_private_networks=LOCAL, resolver=resolver,
                           ssl_context=ssl_context) as f:
            return await f.fetch(url)
    return asyncio.run(go())


class Rebinding:
    """A DNS server that answers the allowed address once, then 127.0.0.2."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    def answer(self, host: str) -> str:
        self.lookups.append(host)
        return "127.0.0.1" if len(self.lookups) == 1 else "127.0.0.2"

    async def resolve(self, host: str, port: int) -> Sequence[str]:
        return [self.answer(host)]


def test_an_injected_resolver_is_asked_once_and_its_answer_is_where_we_connect(
        pair: tuple[FeedServer, FeedServer]) -> None:
    good, trap = pair
    dns = Rebinding()
    r = fetch(f"http://{HOST}:{good.port}/feed.xml", resolver=dns.resolve)
    assert r.error is None and b"allowed" in r.body
    assert dns.lookups == [HOST]
    assert trap.requests == []
    (seen,) = good.requests
    assert seen.headers["host"] == f"{HOST}:{good.port}"  # the name, not the address


def test_the_system_resolver_answering_differently_the_second_time_changes_nothing(
        pair: tuple[FeedServer, FeedServer], monkeypatch: pytest.MonkeyPatch) -> None:
    """The lookups of the standard library (asyncio's and anyio's both end in
    socket.getaddrinfo) rebinding after the first: before the guard moved into the
    connection, the check saw 127.0.0.1 and httpx then connected to 127.0.0.2."""
    good, trap = pair
    dns = Rebinding()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # anyio passes bytes
        if name != HOST:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (dns.answer(name), int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    r = fetch(f"http://{HOST}:{good.port}/feed.xml")
    assert trap.requests == []
    assert r.error is None and b"allowed" in r.body
    assert dns.lookups == [HOST]


def test_a_name_that_resolves_to_a_refused_address_is_refused_before_connecting(
        pair: tuple[FeedServer, FeedServer]) -> None:
    good, trap = pair

    async def internal(host: str, port: int) -> Sequence[str]:
        return ["127.0.0.1", "127.0.0.2"]  # one bad address refuses the name

    r = fetch(f"http://{HOST}:{good.port}/feed.xml", resolver=internal)
    assert r.error is not None and r.error.startswith(f"refused: {HOST} resolves to 127.0.0.2")
    assert trap.requests == [] and good.requests == []


def test_a_redirect_to_a_rebinding_name_is_checked_on_its_own_connection(
        pair: tuple[FeedServer, FeedServer]) -> None:
    good, trap = pair
    good.serve("/moved", b"", status=302, Location=f"http://other.rebind.test:{good.port}/feed.xml")

    async def resolver(host: str, port: int) -> Sequence[str]:
        return ["127.0.0.1"] if host == HOST else ["127.0.0.2"]

    r = fetch(f"http://{HOST}:{good.port}/moved", resolver=resolver)
    assert r.error is not None and "other.rebind.test resolves to 127.0.0.2" in r.error
    assert trap.requests == []


def test_https_keeps_the_name_for_sni_and_certificate_checks(tmp_path: Path) -> None:
    """Connected to the checked address, TLS still names the host: the server sees the
    name in SNI, and the certificate (for the name only) verifies."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={HOST}",
                    "-addext", f"subjectAltName=DNS:{HOST}"],
                   check=True, capture_output=True, timeout=60)
    names: list[str | None] = []
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    server = FeedServer()
    server.httpd.socket = server_ctx.wrap_socket(server.httpd.socket, server_side=True)
    with server:
        server.serve("/feed.xml", rss({"title": "over tls", "guid": "1"}))
        client_ctx = ssl.create_default_context(cafile=str(cert))

        async def local(host: str, port: int) -> Sequence[str]:
            return ["127.0.0.1"]

        r = fetch(f"https://{HOST}:{server.port}/feed.xml", resolver=local,
                  ssl_context=client_ctx)
        assert r.error is None and b"over tls" in r.body
        assert names == [HOST]
        assert server.requests[0].headers["host"] == f"{HOST}:{server.port}"
        # the same server by address: the certificate does not name 127.0.0.1
        r = fetch(f"https://127.0.0.1:{server.port}/feed.xml", ssl_context=client_ctx)
        assert r.error is not None and "certificate" in r.error.lower()


def test_an_address_that_never_answers_does_not_hold_up_the_next(
        pair: tuple[FeedServer, FeedServer]) -> None:
    """Happy eyeballs, as before the guard moved: a name's first address is a listener
    whose queue is full (its SYNs go unanswered); the second, tried 0.25 s later,
    answers, well within the deadline."""
    good, _ = pair
    with socket.socket() as silent:
        silent.bind(("127.0.0.3", good.port))
        silent.listen(0)
        filler = socket.create_connection(("127.0.0.3", good.port), timeout=5)

        async def resolver(host: str, port: int) -> Sequence[str]:
            return ["127.0.0.3", "127.0.0.1"]

        async def go() -> FetchResult:
            async with Fetcher(timeout=20, max_body_bytes=100_000, concurrency=4,
                               user_agent="t", resolver=resolver,
                               allow_private_networks=[ipaddress.ip_network("127.0.0.0/30")]
                               ) as f:
                return await f.fetch(f"http://{HOST}:{good.port}/feed.xml")

        try:
            r = asyncio.run(go())
        finally:
            filler.close()
    assert r.error is None and b"allowed" in r.body
    assert len(good.requests) == 1


def test_address_families_alternate_the_first_answers_first() -> None:
    from monitor.netguard import _interleave

    a, b, c, d = map(ipaddress.ip_address, ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"])
    assert _interleave([a, b, c, d]) == [a, c, b, d]
    assert _interleave([c, a, b]) == [c, a, b]
    assert _interleave([]) == []


def test_the_guard_tests_an_address_once_and_parses_a_host_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``is_public`` tests about twenty networks in Python, and parsing an address host
    cost as much: the guard keeps its answers (4 % of the event loop's time in a cold
    cycle of 10,000 feeds)."""
    from monitor import netguard

    tested: list[object] = []
    real = netguard.is_public
    monkeypatch.setattr(netguard, "is_public", lambda addr: tested.append(addr) or real(addr))
    parsed: list[str] = []
    ip_address = netguard.ipaddress.ip_address
    monkeypatch.setattr(netguard.ipaddress, "ip_address",
                        lambda host: parsed.append(host) or ip_address(host))
    guard = Guard([ipaddress.ip_network("127.0.0.1/32")])
    for _ in range(3):
        guard.check_host("127.0.0.1")
        guard.check_host("93.184.216.34")
    assert parsed == ["127.0.0.1", "93.184.216.34"]
    assert [str(a) for a in tested] == ["127.0.0.1", "93.184.216.34"]
    for n in range(5000):  # more hosts than are kept: they are parsed again, and pass
        guard.check_host(f"8.8.{n // 256}.{n % 256}")
    guard.check_host("127.0.0.1")
    assert parsed.count("127.0.0.1") == 2


def test_the_guard_answers_each_address_the_same_however_many_it_has_seen() -> None:
    """``Guard`` keeps its answers (4,096 addresses or hosts, then it starts again): a
    refused address stays refused on its second look and after the kept answers are
    dropped, and so does a refused host."""
    guard = Guard([ipaddress.ip_network("127.0.0.1/32")])
    loopback, other = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("127.0.0.2")
    public = ipaddress.ip_address("93.184.216.34")
    for _ in range(2):
        assert (guard.allows(loopback), guard.allows(other), guard.allows(public)) == (
            True, False, True)
    for n in range(5000):  # more addresses than are kept: private ones, all refused
        assert not guard.allows(ipaddress.ip_address(f"10.0.{n // 256}.{n % 256}"))
    assert (guard.allows(loopback), guard.allows(other), guard.allows(public)) == (
        True, False, True)
    for _ in range(2):  # hosts as URLs give them: an address host is checked each time
        guard.check_host("127.0.0.1")
        guard.check_host("feeds.example.org")  # a name: left to the resolver
        with pytest.raises(FeedError, match=r"127\.0\.0\.2 resolves"):
            guard.check_host("127.0.0.2")
        with pytest.raises(FeedError, match="not a canonical"):
            guard.check_host("127.000.0.1")

"""The private-network guard, where the connection is made.

A host name is resolved once, every address it resolves to is checked (refused if
private, loopback, link-local or otherwise reserved, unless in ``[fetch]
allow_private_networks``), and the connection goes to a checked address. Checking the
answer of one lookup and then letting the HTTP library connect after a second lookup
would let a DNS server answer a public address to the first and 127.0.0.1 to the
second (DNS rebinding).

The connection is pinned, not the URL: aiohttp connects to the addresses its resolver
returns and to nothing else, and ``GuardedResolver`` returns only the guard's checked
answer, so a name is looked up once per connection (or once per aiohttp's DNS cache,
which only ever holds checked answers). ``Host``, SNI and certificate verification stay
on the name. A host that aiohttp takes for an address never reaches a resolver:
``Guard.check_host`` checks it before the request (``fetch.py`` calls it on every hop),
with aiohttp's own test of what an address is, on the host aiohttp will connect to.
A pooled connection only ever reaches the address checked when it was opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence

import aiohttp
import aiohttp.abc
import httpx
from aiohttp.helpers import is_ip_address

from .errors import FeedError

__all__ = ["Address", "Guard", "GuardedResolver", "Network", "Resolver", "guarded_session",
           "is_public", "system_resolver"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""host, port -> the addresses it resolves to (raises OSError)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's answer (getaddrinfo), each address once, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(addr: Address) -> bool:
    return not (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_reserved
                or addr.is_multicast or addr.is_unspecified)


_ANSWERS_KEPT = 4096
"""Addresses whose answer ``Guard`` keeps (then it starts again)."""


class Guard:
    """Resolves a host once and refuses it unless every address it has is public or
    in an allowed network."""

    def __init__(self, allowed: Iterable[Network] = (),
                 resolver: Resolver = system_resolver) -> None:
        self.allowed = tuple(allowed)
        self.resolver = resolver
        self._passed: set[str] = set()
        self._allows: dict[Address, bool] = {}
        """The answers given: ``is_public`` tests the address against about twenty
        networks in Python (4 % of the event loop's time in a cold cycle of 10,000
        feeds), and a daemon polls the same few hosts' addresses again and again."""

    def allows(self, addr: Address) -> bool:
        answer = self._allows.get(addr)
        if answer is None:
            answer = is_public(addr) or any(addr in net for net in self.allowed)
            if len(self._allows) >= _ANSWERS_KEPT:
                self._allows.clear()
            self._allows[addr] = answer
        return answer

    def check(self, host: str, addr: Address) -> None:
        if not self.allows(addr):
            raise FeedError(f"refused: {host} resolves to {addr}, a private or reserved "
                            "address; allow it with [fetch] allow_private_networks")

    def check_host(self, host: str) -> None:
        """Refuse ``host`` (a URL's host as aiohttp connects to it) if it is an address,
        by aiohttp's own test, and not an allowed one; a name is left to the resolver.
        The hosts that passed are kept, as ``allows`` keeps its answers: parsing the
        address again was as costly as the test."""
        if host in self._passed:
            return
        if is_ip_address(host):
            try:
                addr = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
            except ValueError:
                raise FeedError(f"refused: {host} is not a canonical IP address") from None
            self.check(host, addr)
        if len(self._passed) >= _ANSWERS_KEPT:
            self._passed.clear()
        self._passed.add(host)

    async def resolve(self, host: str, port: int) -> list[Address]:
        """The checked addresses of ``host`` (an address is its own answer)."""
        host = host.removeprefix("[").removesuffix("]")
        try:
            addresses: list[Address] = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await self._lookup(host, port)
        for addr in addresses:
            self.check(host, addr)
        return addresses

    async def _lookup(self, host: str, port: int) -> list[Address]:
        try:
            answer = await self.resolver(host, port)
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in answer]
        except OSError as exc:
            raise FeedError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise FeedError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise FeedError(f"cannot resolve {host}: no address")
        return addresses


HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds before the next address of a name is tried while one has not answered."""


def _interleave(addresses: list[Address]) -> list[Address]:
    """Alternate the address families, the first answer's first (RFC 8305)."""
    if not addresses:
        return []
    first = [a for a in addresses if a.version == addresses[0].version]
    other = [a for a in addresses if a.version != addresses[0].version]
    out: list[Address] = []
    for i in range(max(len(first), len(other))):
        out += first[i : i + 1] + other[i : i + 1]
    return out


class GuardedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver, answering only the guard's checked addresses, families
    alternated (aiohttp's happy eyeballs then tries them in this order)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[aiohttp.abc.ResolveResult]:
        return [{"hostname": host, "host": str(addr), "port": port,
                 "family": socket.AF_INET6 if addr.version == 6 else socket.AF_INET,
                 "proto": 0, "flags": 0}
                for addr in _interleave(await self.guard.resolve(host, port))]

    async def close(self) -> None:
        pass


MAX_HEADER = 65536
"""The longest response header (aiohttp's default is 8190 bytes; news sites send longer
Content-Security-Policy and Set-Cookie headers, which httpx's pool read)."""


def guarded_session(guard: Guard, *, limit: int, keepalive: float,
                    ssl_context: ssl.SSLContext | None = None) -> aiohttp.ClientSession:
    """An aiohttp session whose connections go only to addresses ``guard`` checked
    (names through ``GuardedResolver``; the caller checks address hosts with
    ``Guard.check_host``). Bodies stay encoded (the fetcher inflates them in bounded
    steps); no timeout of its own (the fetcher's deadline covers everything); no proxy
    from the environment; headers up to ``MAX_HEADER`` bytes. Must be made inside the
    running event loop."""
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=0, keepalive_timeout=keepalive,
        ssl=ssl_context or httpx.create_ssl_context(trust_env=False),
        resolver=GuardedResolver(guard), happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY)
    return aiohttp.ClientSession(
        connector=connector, auto_decompress=False, trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None,
                                      sock_read=None),
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies kept as httpx's client did
        max_line_size=MAX_HEADER, max_field_size=MAX_HEADER)


"""The private-network guard, where the connection is made.

A host name is resolved once, every address it resolves to is checked (refused if
private, loopback, link-local or otherwise reserved, unless in ``[fetch]
allow_private_networks``), and the connection goes to a checked address. Checking the
answer of one lookup and then letting the HTTP library connect after a second lookup
would let a DNS server answer a public address to the first and 127.0.0.1 to the
second (DNS rebinding).

The connection is pinned, not the URL: httpcore still sends ``Host`` and uses the
origin's host name for TLS (SNI and certificate verification), so HTTPS works as
before. ``GuardedTransport`` is an httpx transport whose httpcore pool connects through
``GuardedBackend``; every request and every redirect hop that opens a connection passes
the guard, and a pooled connection only ever reaches the address checked when it was
opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpcore
import httpx

from .errors import FeedError

__all__ = ["Address", "Guard", "GuardedBackend", "GuardedTransport", "Network", "Resolver",
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


class Guard:
    """Resolves a host once and refuses it unless every address it has is public or
    in an allowed network."""

    def __init__(self, allowed: Iterable[Network] = (),
                 resolver: Resolver = system_resolver) -> None:
        self.allowed = tuple(allowed)
        self.resolver = resolver

    def allows(self, addr: Address) -> bool:
        return is_public(addr) or any(addr in net for net in self.allowed)

    def check(self, host: str, addr: Address) -> None:
        if not self.allows(addr):
            raise FeedError(f"refused: {host} resolves to {addr}, a private or reserved "
                            "address; allow it with [fetch] allow_private_networks")

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


async def _abandon(tasks: set[asyncio.Task[httpcore.AsyncNetworkStream]]) -> None:
    """Cancel the connection attempts still running; close any that connected anyway."""
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, httpcore.AsyncNetworkStream):
            await result.aclose()


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard checked."""

    def __init__(self, guard: Guard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = _interleave(await self.guard.resolve(host, port))
        pending: set[asyncio.Task[httpcore.AsyncNetworkStream]] = set()
        errors: list[BaseException] = []
        try:
            # Happy eyeballs (RFC 8305), as anyio does for a name: the next address is
            # tried when one fails, or when it has not answered within the delay.
            while addresses or pending:
                if addresses:
                    pending.add(asyncio.create_task(self.inner.connect_tcp(
                        str(addresses.pop(0)), port, timeout=timeout,
                        local_address=local_address, socket_options=socket_options)))
                done, pending = await asyncio.wait(
                    pending, timeout=HAPPY_EYEBALLS_DELAY if addresses else None,
                    return_when=asyncio.FIRST_COMPLETED)
                streams = [t.result() for t in done if t.exception() is None]
                errors += [e for t in done if (e := t.exception()) is not None]
                if streams:
                    for extra in streams[1:]:
                        await extra.aclose()
                    return streams[0]
        finally:
            await _abandon(pending)
        raise errors[0]

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise FeedError("refused: unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request and response handling, errors) over a connection
    pool whose connections go through ``GuardedBackend``."""

    def __init__(self, guard: Guard, limits: httpx.Limits,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx builds its pool in __init__ with no way to pass a network backend: the
        # same pool, built again with one (httpx 0.27 and 0.28 keep it in ``_pool``).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(guard),
        )

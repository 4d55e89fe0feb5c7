"""Fetching feeds with httpx: conditional GET, a total deadline, a body cap, and a
refusal of private addresses unless the settings allow them.

``Fetcher.fetch`` never raises for a feed's own failure: it returns a ``FetchResult``
whose ``error`` says what went wrong, so one broken feed never stops the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

import httpx

from .errors import FeedError

__all__ = ["FetchResult", "Fetcher"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FetchResult:
    url: str
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    elapsed: float = 0.0
    """Seconds from the request to the end of the body (or the error), queueing excluded."""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Fetcher:
    """An httpx client shared by every fetch of a poll cycle. Use as an async context."""

    def __init__(
        self,
        *,
        timeout: float,
        max_body_bytes: int,
        concurrency: int,
        user_agent: str,
        allow_private_networks: Sequence[Network] = (),
        max_redirects: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.allowed = tuple(allow_private_networks)
        self._limit = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            max_redirects=max_redirects,
            headers={"User-Agent": user_agent,
                     "Accept": "application/rss+xml, application/atom+xml, "
                               "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"},
            limits=httpx.Limits(max_connections=concurrency),
            event_hooks={"request": [self._check_destination]},
            transport=transport,
            trust_env=False,
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._client.aclose()

    async def fetch(self, url: str, etag: str | None = None,
                    last_modified: str | None = None) -> FetchResult:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        async with self._limit:
            started = time.monotonic()
            result = await self._attempt(url, headers)
            return dataclasses.replace(result, elapsed=time.monotonic() - started)

    async def _attempt(self, url: str, headers: dict[str, str]) -> FetchResult:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._get(url, headers)
        except TimeoutError:
            return FetchResult(url, error=f"timed out after {self.timeout:g}s")
        except FeedError as exc:
            return FetchResult(url, error=str(exc))
        except httpx.TooManyRedirects:
            return FetchResult(url, error="too many redirects")
        except httpx.HTTPError as exc:
            return FetchResult(url, error=_describe(exc))

    async def _get(self, url: str, headers: dict[str, str]) -> FetchResult:
        async with self._client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status == 304:
                return FetchResult(url, status, etag=response.headers.get("etag"),
                                   last_modified=response.headers.get("last-modified"))
            if status >= 400:
                return FetchResult(url, status, error=f"HTTP {status} {response.reason_phrase}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                return FetchResult(url, status, error=self._too_big())
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():  # decoded bytes
                size += len(chunk)
                if size > self.max_body_bytes:
                    return FetchResult(url, status, error=self._too_big())
                chunks.append(chunk)
            return FetchResult(
                url, status, b"".join(chunks),
                headers={k.lower(): v for k, v in response.headers.items()},
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )

    def _too_big(self) -> str:
        return f"body larger than max_body_bytes ({self.max_body_bytes:,} bytes)"

    async def _check_destination(self, request: httpx.Request) -> None:
        """Refuse a request (the first or a redirect) whose host resolves to a private,
        loopback, link-local or reserved address outside the allowed networks."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise FeedError(f"refused: only http and https URLs are fetched, not {url.scheme}")
        host = url.host
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, url.port or 443, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise FeedError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
            addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        for addr in addresses:
            if _is_public(addr) or any(addr in net for net in self.allowed):
                continue
            raise FeedError(
                f"refused: {host} resolves to {addr}, a private or reserved address; "
                "allow it with [fetch] allow_private_networks"
            )


def _is_public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_reserved
                or addr.is_multicast or addr.is_unspecified)


def _describe(exc: httpx.HTTPError) -> str:
    kinds: dict[type[Exception], str] = {
        httpx.ConnectError: "connection failed",
        httpx.ConnectTimeout: "connection timed out",
        httpx.ReadTimeout: "read timed out",
        httpx.RemoteProtocolError: "protocol error",
        httpx.UnsupportedProtocol: "unsupported URL",
        httpx.DecodingError: "could not decode the body",
    }
    kind = kinds.get(type(exc), type(exc).__name__)
    detail = str(exc)
    return f"{kind}: {detail}"[:500] if detail else kind

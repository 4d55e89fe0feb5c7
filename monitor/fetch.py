"""Fetching feeds with httpx: conditional GET, a total deadline, a body cap counted on
decoded bytes, a per-host limit, and a refusal of private addresses unless the settings
allow them, checked on the address the connection is made to (``netguard.py``).

Bodies are decoded here, not by httpx: gzip and deflate are inflated in bounded steps,
so a compression bomb is refused after ``max_body_bytes`` of output, never inflated
whole; stacked or unknown encodings are refused.

``Fetcher.fetch`` never raises for a feed's own failure: it returns a ``FetchResult``
whose ``error`` says what went wrong, so one broken feed never stops the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import ssl
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import httpx

from .errors import FeedError
from .netguard import Guard, GuardedTransport, Network, Resolver, system_resolver

__all__ = ["FeedAuth", "FetchResult", "Fetcher"]


@dataclass(frozen=True)
class FetchResult:
    url: str
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    moved_to: str | None = None
    """The final URL when every redirect on the way was permanent (301, 308)."""
    elapsed: float = 0.0
    """Seconds from the request to the end of the body (or the error), queueing excluded."""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class FeedAuth:
    """Extra request headers and basic auth for one feed (paywalled or intranet)."""

    headers: tuple[tuple[str, str], ...] = ()
    basic_auth: tuple[str, str] | None = None


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
        per_host: int = 4,
        max_redirects: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``transport`` replaces the network (tests); ``resolver`` the DNS lookups and
        ``ssl_context`` the trusted certificates of the real one."""
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.guard = Guard(allow_private_networks, resolver)
        limits = httpx.Limits(max_connections=concurrency)
        self._limit = asyncio.Semaphore(concurrency)
        self._per_host = per_host
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            max_redirects=max_redirects,
            headers={"User-Agent": user_agent,
                     "Accept": "application/rss+xml, application/atom+xml, "
                               "application/feed+json, application/xml;q=0.9, "
                               "text/xml;q=0.9, */*;q=0.5",
                     "Accept-Encoding": "gzip, deflate"},
            limits=limits,
            event_hooks={"request": [self._check_destination]},
            transport=transport or GuardedTransport(self.guard, limits, ssl_context),
            trust_env=False,
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._client.aclose()

    async def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None,
                    auth: FeedAuth | None = None) -> FetchResult:
        headers = dict(auth.headers) if auth else {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        host = httpx.URL(url).host
        per_host = self._hosts.setdefault(host, asyncio.Semaphore(self._per_host))
        async with self._limit, per_host:
            started = time.monotonic()
            result = await self._attempt(url, headers, auth)
            return dataclasses.replace(result, elapsed=time.monotonic() - started)

    async def post_form(self, url: str, form: Mapping[str, str]) -> tuple[int | None,
                                                                        str | None]:
        """POST a form (a WebSub hub request) under the same deadline and address checks
        as a fetch, redirects not followed: (status, None), or (status or None, why it
        failed). Up to 500 bytes of an error answer are kept in the reason."""
        try:
            async with asyncio.timeout(self.timeout):
                async with self._client.stream("POST", url, data=dict(form),
                                               follow_redirects=False) as response:
                    if response.is_success:
                        return response.status_code, None
                    text = b""
                    async for chunk in response.aiter_bytes():
                        text += chunk
                        if len(text) >= 500:
                            break
                    detail = text[:500].decode("utf-8", "replace").strip()
                    return response.status_code, (f"HTTP {response.status_code} "
                                                  f"{response.reason_phrase}"
                                                  + (f": {detail}" if detail else ""))
        except TimeoutError:
            return None, f"timed out after {self.timeout:g}s"
        except FeedError as exc:
            return None, str(exc)
        except httpx.HTTPError as exc:
            return None, _describe(exc)

    async def _attempt(self, url: str, headers: dict[str, str],
                       auth: FeedAuth | None) -> FetchResult:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._get(url, headers, auth)
        except TimeoutError:
            return FetchResult(url, error=f"timed out after {self.timeout:g}s")
        except FeedError as exc:
            return FetchResult(url, error=str(exc))
        except httpx.TooManyRedirects:
            return FetchResult(url, error="too many redirects")
        except httpx.HTTPError as exc:
            return FetchResult(url, error=_describe(exc))
        except zlib.error as exc:
            return FetchResult(url, error=f"could not decode the body: {exc}")

    async def _get(self, url: str, headers: dict[str, str],
                   auth: FeedAuth | None) -> FetchResult:
        basic = httpx.BasicAuth(*auth.basic_auth) if auth and auth.basic_auth else None
        async with self._client.stream("GET", url, headers=headers,
                                       auth=basic or httpx.USE_CLIENT_DEFAULT) as response:
            status = response.status_code
            got = {k.lower(): v for k, v in response.headers.items()}
            moved = _moved_to(response)
            etag, modified = got.get("etag"), got.get("last-modified")
            if status == 304:
                return FetchResult(url, status, headers=got, etag=etag, last_modified=modified,
                                   moved_to=moved)
            if status >= 400:
                return FetchResult(url, status, headers=got, moved_to=moved,
                                   error=f"HTTP {status} {response.reason_phrase}")
            body = await self._read(response)
            if body is None:
                return FetchResult(url, status, headers=got, error=self._too_big())
            return FetchResult(url, status, body, headers=got, etag=etag,
                               last_modified=modified, moved_to=moved)

    async def _read(self, response: httpx.Response) -> bytes | None:
        """The decoded body, or None when it is larger than the cap."""
        encodings = [e.strip().lower() for e in
                     response.headers.get("content-encoding", "").split(",") if e.strip()]
        encodings = [e for e in encodings if e != "identity"]
        if len(encodings) > 1:
            raise FeedError(f"refused: stacked content encodings ({', '.join(encodings)})")
        if encodings and encodings[0] not in ("gzip", "x-gzip", "deflate"):
            raise FeedError(f"refused: unsupported content encoding {encodings[0]!r}")
        declared = response.headers.get("content-length", "")
        if not encodings and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        inflater = _Inflater(encodings[0] if encodings else None, self.max_body_bytes)
        async for raw in response.aiter_raw():
            if not inflater.feed(raw):
                return None
        return inflater.finish()

    def _too_big(self) -> str:
        return f"body larger than max_body_bytes ({self.max_body_bytes:,} bytes)"

    async def _check_destination(self, request: httpx.Request) -> None:
        """Refuse a request (the first or a redirect) for a scheme other than http(s), or
        for an address outside the allowed ones. A host name is checked where the
        connection is made (``netguard.GuardedBackend``), on the address connected to."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise FeedError(f"refused: only http and https URLs are fetched, not {url.scheme}")
        try:
            addr = ipaddress.ip_address(url.host)
        except ValueError:
            return
        self.guard.check(url.host, addr)


class _Inflater:
    """Decodes gzip or deflate in steps that never produce more than the cap."""

    def __init__(self, encoding: str | None, cap: int) -> None:
        self.cap = cap
        self.size = 0
        self.chunks: list[bytes] = []
        self.encoding = encoding
        self._z: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()  # zlib-wrapped; raw deflate is tried on error
        self._first = True

    def _take(self, data: bytes) -> bool:
        self.size += len(data)
        if self.size > self.cap:
            return False
        self.chunks.append(data)
        return True

    def feed(self, raw: bytes) -> bool:
        if self._z is None:
            return self._take(raw)
        if self._first and self.encoding == "deflate" and raw[:1] and raw[0] & 0x0F != 8:
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # a raw deflate stream
        self._first = False
        data = raw
        while data:
            out = self._z.decompress(data, self.cap - self.size + 1)
            if not self._take(out):
                return False
            data = self._z.unconsumed_tail
            if self._z.eof:
                break
        return True

    def finish(self) -> bytes | None:
        if self._z is not None and not self._take(self._z.flush(self.cap - self.size + 1)):
            return None
        if self._z is not None and not self._z.eof:
            raise FeedError("could not decode the body: the compressed stream is truncated")
        return b"".join(self.chunks)


def _moved_to(response: httpx.Response) -> str | None:
    """The final URL if every hop was a permanent redirect."""
    if response.history and all(r.status_code in (301, 308) for r in response.history):
        return str(response.url)
    return None


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

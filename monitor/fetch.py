"""Fetching feeds with aiohttp: conditional GET, a total deadline, a body cap counted on
decoded bytes, a per-host limit, and a refusal of private addresses unless the settings
allow them, checked on the address the connection is made to (``netguard.py``).

Redirects are followed here, hop by hop, so that every hop's URL passes the same checks
(scheme, address) before anything is sent. Bodies are decoded here, not by aiohttp:
gzip and deflate are inflated in bounded steps, so a compression bomb is refused after
``max_body_bytes`` of output, never inflated whole; stacked or unknown encodings are
refused.

``Fetcher.fetch`` never raises for a feed's own failure: it returns a ``FetchResult``
whose ``error`` says what went wrong, so one broken feed never stops the others.

aiohttp rather than httpx's own pool: on loopback it answers several times the requests
a second for the CPU (docs/performance.md, ``bench.fetch_rate``). An httpx transport can
still stand in for the network (``transport=``, the tests' ``httpx.MockTransport``): the
same hops, checks and decoding run over it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlencode

import aiohttp
import httpx
from yarl import URL

from .errors import FeedError
from .netguard import Guard, Network, Resolver, guarded_session, system_resolver

__all__ = ["FeedAuth", "FetchResult", "Fetcher"]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
          "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
KEEPALIVE = 5.0
"""Seconds an idle connection is kept for the next request to its host."""


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


@dataclass
class _Answer:
    """One hop's response: status, headers (lower-case names, a repeated header's values
    joined with ", "), and the body as it came (content encoding not undone)."""

    status: int
    reason: str
    headers: dict[str, str]
    raw: Callable[[], AsyncIterator[bytes]]


Send = Callable[[str, URL, dict[str, str], bytes | None],
                AbstractAsyncContextManager[_Answer]]


def _joined(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in items:
        k = k.lower()
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


class Fetcher:
    """An aiohttp session shared by every fetch of a poll cycle. Use as an async context."""

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
        self.max_redirects = max_redirects
        self.guard = Guard(allow_private_networks, resolver)
        self._limit = asyncio.Semaphore(concurrency)
        self._per_host = per_host
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._headers = {"User-Agent": user_agent, "Accept": ACCEPT,
                         "Accept-Encoding": "gzip, deflate"}
        self._concurrency = concurrency
        self._ssl_context = ssl_context
        self._transport = transport
        self._session: aiohttp.ClientSession | None = None
        self._send: Send = self._send_httpx if transport is not None else self._send_aiohttp

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
        if self._transport is not None:
            await self._transport.aclose()

    async def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None,
                    auth: FeedAuth | None = None) -> FetchResult:
        headers = dict(self._headers)
        if auth:
            for name, value in auth.headers:
                if not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n\0"):
                    # the value may be a secret: it is not repeated in the error
                    return FetchResult(url, error=f"refused: the feed's header {name!r} is "
                                                  "not a valid HTTP header")
                _put(headers, name, value)
            if auth.basic_auth:
                user, password = auth.basic_auth
                token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
                _put(headers, "Authorization", f"Basic {token}")
        if etag:
            _put(headers, "If-None-Match", etag)
        if last_modified:
            _put(headers, "If-Modified-Since", last_modified)
        try:
            target = URL(url)
        except (ValueError, TypeError) as exc:
            return FetchResult(url, error=f"unsupported URL: {exc}"[:500])
        host = target.raw_host or ""
        per_host = self._hosts.get(host)
        if per_host is None:
            per_host = self._hosts[host] = asyncio.Semaphore(self._per_host)
        async with self._limit, per_host:
            started = time.monotonic()
            result = await self._attempt(url, target, headers)
            return dataclasses.replace(result, elapsed=time.monotonic() - started)

    async def post_form(self, url: str, form: Mapping[str, str]) -> tuple[int | None,
                                                                        str | None]:
        """POST a form (a WebSub hub request) under the same deadline and address checks
        as a fetch, redirects not followed: (status, None), or (status or None, why it
        failed). Up to 500 bytes of an error answer are kept in the reason."""
        headers = dict(self._headers)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            async with asyncio.timeout(self.timeout):
                target = self._checked(URL(url))
                async with self._send("POST", target, headers,
                                      urlencode(dict(form)).encode()) as answer:
                    if 200 <= answer.status < 300:
                        return answer.status, None
                    encodings = _encodings(answer.headers)
                    inflater = _Inflater(encodings[0] if len(encodings) == 1
                                         and encodings[0] in DECODED else None, 500)
                    try:
                        async for raw in answer.raw():
                            if not inflater.feed(raw):
                                break
                    except zlib.error:
                        pass
                    detail = b"".join(inflater.chunks)[:500].decode("utf-8", "replace").strip()
                    return answer.status, (f"HTTP {answer.status} {answer.reason}"
                                           + (f": {detail}" if detail else ""))
        except TimeoutError:
            return None, f"timed out after {self.timeout:g}s"
        except FeedError as exc:
            return None, str(exc)
        except (ValueError, TypeError) as exc:
            return None, f"unsupported URL: {exc}"[:500]
        except (aiohttp.ClientError, httpx.HTTPError) as exc:
            return None, _describe(exc)

    async def _attempt(self, url: str, target: URL, headers: dict[str, str]) -> FetchResult:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._get(url, target, headers)
        except TimeoutError:
            return FetchResult(url, error=f"timed out after {self.timeout:g}s")
        except FeedError as exc:
            return FetchResult(url, error=str(exc))
        except (aiohttp.ClientError, httpx.HTTPError) as exc:
            return FetchResult(url, error=_describe(exc))
        except ValueError as exc:  # what aiohttp refuses to send, found before any I/O
            return FetchResult(url, error=f"invalid request: {exc}"[:500])
        except zlib.error as exc:
            return FetchResult(url, error=f"could not decode the body: {exc}")

    async def _get(self, url: str, target: URL, headers: dict[str, str]) -> FetchResult:
        """Follows redirects (GET stays GET), each hop checked before it is sent; the
        Authorization header goes only to the first URL's origin, as httpx did."""
        statuses: list[int] = []
        while True:
            self._checked(target)
            async with self._send("GET", target, headers, None) as answer:
                status, got = answer.status, answer.headers
                location = got.get("location") if status in REDIRECTS else None
                if location is not None:
                    if len(statuses) >= self.max_redirects:
                        raise FeedError("too many redirects")
                    statuses.append(status)
                    try:
                        following = target.join(URL(location))
                    except (ValueError, TypeError) as exc:
                        raise FeedError(f"protocol error: invalid URL in the Location "
                                        f"header: {exc}") from exc
                    if not _same_origin(target, following) and not _upgrade(target, following):
                        _put(headers, "Authorization", None)
                    target = following
                    continue
                moved = str(target) if statuses and all(s in (301, 308)
                                                        for s in statuses) else None
                etag, modified = got.get("etag"), got.get("last-modified")
                if status == 304:
                    return FetchResult(url, status, headers=got, etag=etag,
                                       last_modified=modified, moved_to=moved)
                if status >= 400:
                    return FetchResult(url, status, headers=got, moved_to=moved,
                                       error=f"HTTP {status} {answer.reason}")
                body = await self._read(answer)
                if body is None:
                    return FetchResult(url, status, headers=got, error=self._too_big())
                return FetchResult(url, status, body, headers=got, etag=etag,
                                   last_modified=modified, moved_to=moved)

    def _checked(self, target: URL) -> URL:
        """Refuse a URL (the first or a redirect) for a scheme other than http(s), or for
        an address outside the allowed ones. A host name is checked where the connection
        is made (``netguard.GuardedResolver``), on the address connected to."""
        if target.scheme not in ("http", "https"):
            raise FeedError("refused: only http and https URLs are fetched, not "
                            f"{target.scheme or 'a relative URL'}")
        if not target.raw_host:
            raise FeedError(f"unsupported URL: {str(target)[:200]!r} has no host")
        self.guard.check_host(target.raw_host)
        return target

    @asynccontextmanager
    async def _send_aiohttp(self, method: str, target: URL, headers: dict[str, str],
                            body: bytes | None) -> AsyncIterator[_Answer]:
        if self._session is None:
            self._session = guarded_session(self.guard, limit=self._concurrency,
                                            keepalive=KEEPALIVE, ssl_context=self._ssl_context)
        async with self._session.request(method, target, headers=headers, data=body,
                                         allow_redirects=False) as response:
            yield _Answer(response.status, response.reason or "",
                          _joined(response.headers.items()), response.content.iter_any)

    @asynccontextmanager
    async def _send_httpx(self, method: str, target: URL, headers: dict[str, str],
                          body: bytes | None) -> AsyncIterator[_Answer]:
        assert self._transport is not None
        request = httpx.Request(method, str(target), headers=headers, content=body)
        response = await self._transport.handle_async_request(request)
        try:
            yield _Answer(response.status_code, response.reason_phrase,
                          _joined(response.headers.multi_items()), response.aiter_raw)
        finally:
            await response.aclose()

    async def _read(self, answer: _Answer) -> bytes | None:
        """The decoded body, or None when it is larger than the cap."""
        encodings = _encodings(answer.headers)
        if len(encodings) > 1:
            raise FeedError(f"refused: stacked content encodings ({', '.join(encodings)})")
        if encodings and encodings[0] not in DECODED:
            raise FeedError(f"refused: unsupported content encoding {encodings[0]!r}")
        declared = answer.headers.get("content-length", "")
        if not encodings and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        inflater = _Inflater(encodings[0] if encodings else None, self.max_body_bytes)
        async for raw in answer.raw():
            if not inflater.feed(raw):
                return None
        return inflater.finish()

    def _too_big(self) -> str:
        return f"body larger than max_body_bytes ({self.max_body_bytes:,} bytes)"


DECODED = ("gzip", "x-gzip", "deflate")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP header name (RFC 9110 token)."""


def _encodings(headers: Mapping[str, str]) -> list[str]:
    encodings = [e.strip().lower() for e in headers.get("content-encoding", "").split(",")
                 if e.strip()]
    return [e for e in encodings if e != "identity"]


def _put(headers: dict[str, str], name: str, value: str | None) -> None:
    """Set (or with None remove) a header, whatever the case of the name already there."""
    for key in [k for k in headers if k.lower() == name.lower()]:
        del headers[key]
    if value is not None:
        headers[name] = value


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.raw_host, url.port


def _same_origin(a: URL, b: URL) -> bool:
    return _origin(a) == _origin(b)


def _upgrade(a: URL, b: URL) -> bool:
    """http to https on the same host and default ports (httpx kept the credentials)."""
    return (a.scheme == "http" and b.scheme == "https" and a.raw_host == b.raw_host
            and a.port == 80 and b.port == 443)


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


def _describe(exc: aiohttp.ClientError | httpx.HTTPError) -> str:
    """What went wrong with the connection or the protocol, in the same words whichever
    of aiohttp and an httpx transport (the tests) raised it."""
    kinds: list[tuple[type[Exception], str]] = [
        (aiohttp.ClientConnectorError, "connection failed"),
        (aiohttp.ServerDisconnectedError, "protocol error"),
        (aiohttp.ClientResponseError, "protocol error"),
        (aiohttp.ClientPayloadError, "protocol error"),
        (aiohttp.InvalidURL, "unsupported URL"),
        (aiohttp.NonHttpUrlClientError, "unsupported URL"),
        (aiohttp.ClientOSError, "network error"),
        (httpx.ConnectError, "connection failed"),
        (httpx.ConnectTimeout, "connection timed out"),
        (httpx.ReadTimeout, "read timed out"),
        (httpx.RemoteProtocolError, "protocol error"),
        (httpx.UnsupportedProtocol, "unsupported URL"),
        (httpx.DecodingError, "could not decode the body"),
    ]
    kind = next((k for t, k in kinds if isinstance(exc, t)), type(exc).__name__)
    detail = str(exc)
    return f"{kind}: {detail}"[:500] if detail else kind

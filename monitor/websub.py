"""WebSub (W3C Recommendation, https://www.w3.org/TR/websub/), the subscriber's side.

Where a feed advertises a hub (a ``Link`` header or ``<link rel="hub">`` in the feed,
with ``rel="self"`` naming the topic) and ``[websub] enabled``, the feed is subscribed
to at its hub with a callback under ``[websub] callback_base`` and a secret of its own.
The hub's verification GET is answered only for a subscription we asked for, pending,
with the right topic. Pushed content must carry ``X-Hub-Signature`` (an HMAC of the
body with the subscription's secret); it then goes through the same parse → match →
store → outbox path as a poll, at once. Polling goes on as the safety net.

The HTTP side is ``Endpoint.handle(method, path, query, headers, body)``: a plain
function of the request, so any web framework can mount it (``web/server.py`` does,
under ``PREFIX``). The secret is never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qs, urljoin, urlsplit

from .errors import StoreError
from .store import SubscriptionRow

__all__ = ["PREFIX", "Advert", "Endpoint", "Push", "Reply", "Subscriber", "callback_url",
           "discover", "link_header", "renew_time", "retry_time", "sign", "signature_ok"]

log = logging.getLogger(__name__)

PREFIX = "/websub/"
"""The callbacks' path: ``{callback_base}/websub/{token}``."""
ALGORITHMS: dict[str, Callable[..., Any]] = {
    "sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
    "sha512": hashlib.sha512}
"""The signature methods the recommendation names (``X-Hub-Signature: method=hex``)."""
VERIFY_WAIT = timedelta(hours=1)
"""A request the hub has not verified after this long is made again."""
MAX_LEASE = timedelta(days=365)

Reply = tuple[int, list[tuple[str, str]], bytes]
"""(status, headers, body) of an HTTP answer."""


# ---------------------------------------------------------------- pure protocol


@dataclass(frozen=True)
class Advert:
    """What a feed advertises: its hub, and the topic the hub knows it by."""

    hub: str
    topic: str


_LINK_RE = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]*)*)')
_REL_RE = re.compile(r';\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))', re.IGNORECASE)


def link_header(value: str) -> dict[str, str]:
    """rel -> the first URL a ``Link`` header gives it (RFC 8288; rel may list several)."""
    out: dict[str, str] = {}
    for m in _LINK_RE.finditer(value):
        rel = _REL_RE.search(m.group(2))
        if rel is None:
            continue
        for name in (rel.group(1) or rel.group(2) or "").lower().split():
            out.setdefault(name, m.group(1).strip())
    return out


def discover(hub: str | None, self_link: str | None, headers: Mapping[str, str],
             url: str) -> Advert | None:
    """The hub and topic of a feed fetched from ``url``: the ``Link`` header first (as the
    recommendation asks), else the feed's own links; the topic defaults to ``url``.
    None unless the hub and topic are well-formed http(s) URLs."""
    links = link_header(next((v for k, v in headers.items() if k.lower() == "link"), ""))
    if "hub" in links:
        hub, self_link = links["hub"], links.get("self", self_link)
    if not hub:
        return None
    try:  # the feed's (untrusted) links: a malformed URL or port is no advert
        hub, topic = urljoin(url, hub), urljoin(url, self_link) if self_link else url
        if not all(_http_url(u) for u in (hub, topic)):
            return None
    except ValueError:
        return None
    return Advert(hub, topic)


def _http_url(url: str) -> bool:
    """An http(s) URL with a host and a valid port; ValueError if malformed."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and (
        parts.port is None or parts.port > 0)


def sign(secret: str, body: bytes, method: str = "sha256") -> str:
    """The ``X-Hub-Signature`` value a hub sends with ``body``."""
    return f"{method}={hmac.new(secret.encode(), body, ALGORITHMS[method]).hexdigest()}"


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``method=hex``) is the HMAC of ``body`` with ``secret``."""
    if not header:
        return False
    method, _, given = header.strip().partition("=")
    algorithm = ALGORITHMS.get(method.strip().lower())
    if algorithm is None or not given:
        return False
    expected = hmac.new(secret.encode(), body, algorithm).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def callback_url(base: str, token: str) -> str:
    return base.rstrip("/") + PREFIX + token


def renew_time(now: datetime, lease: timedelta) -> datetime:
    """When to subscribe again: a tenth of the lease (at most a day) before it ends."""
    margin: timedelta = min(lease / 10, timedelta(days=1))
    return now + lease - margin


def retry_time(now: datetime, failures: int) -> datetime:
    """When to try a refused or unanswered request again: an hour, doubling, at most a day."""
    return now + min(VERIFY_WAIT * (1 << min(failures, 10)), timedelta(days=1))


def _lease(value: str | None, requested: timedelta) -> timedelta:
    try:
        seconds = int(value or "")
    except ValueError:
        return requested
    if seconds <= 0:
        return requested
    # capped before it becomes a timedelta: a huge number from the hub would overflow
    return timedelta(seconds=min(seconds, int(MAX_LEASE.total_seconds())))


# ---------------------------------------------------------------- the callback endpoint


class SubscriptionStore(Protocol):
    def subscription(self, *, feed_id: int | None = None,
                     token: str | None = None) -> SubscriptionRow | None: ...

    def verify_subscription(self, token: str, topic: str, lease: timedelta, now: datetime,
                            renew_at: datetime) -> bool: ...

    def subscription_failed(self, token: str, error: str, retry_at: datetime, *,
                            state: str = "failed") -> None: ...

    def subscription_pushed(self, token: str, now: datetime) -> None: ...


@dataclass(frozen=True)
class Push:
    """Signed content a hub pushed for a subscription's feed."""

    feed_id: int
    feed_url: str
    body: bytes
    headers: dict[str, str]
    at: datetime


class Endpoint:
    """Answers the hubs at ``{callback_base}/websub/{token}``.

    ``store`` and ``clock`` are called at each request (the daemon's configuration in
    force may change on a reload); ``deliver`` hands a verified push to the daemon and
    says whether it was taken (False: 503, the hub will try again).
    """

    def __init__(self, store: Callable[[], SubscriptionStore], deliver: Callable[[Push], bool],
                 clock: Callable[[], datetime], *, lease: timedelta,
                 max_body_bytes: int, enabled: Callable[[], bool] = lambda: True) -> None:
        self.enabled = enabled
        """Read at each request: WebSub turned off by a reload answers nothing."""
        self.store = store
        self.deliver = deliver
        self.clock = clock
        self.lease = lease
        self.max_body_bytes = max_body_bytes

    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str],
               body: bytes) -> Reply:
        """One request to a callback: the hub's verification (GET) or a push (POST)."""
        token = path[len(PREFIX):] if path.startswith(PREFIX) else ""
        if not token or "/" in token or not self.enabled():
            return _text(404, "no such subscription")
        try:
            if method == "GET":
                return self._verify(token, parse_qs(query, keep_blank_values=True))
            if method == "POST":
                return self._push(token, {k.lower(): v for k, v in headers.items()}, body)
        except StoreError as exc:
            log.error("WebSub callback: %s", exc)
            return _text(503, "database unavailable; try again")
        return _text(405, "GET or POST", [("Allow", "GET, POST")])

    def _verify(self, token: str, query: dict[str, list[str]]) -> Reply:
        def arg(name: str) -> str | None:
            return query[name][0] if query.get(name) else None

        mode, topic, challenge = arg("hub.mode"), arg("hub.topic"), arg("hub.challenge")
        store, now = self.store(), self.clock()
        sub = store.subscription(token=token)
        if sub is None or topic != sub.topic:
            log.warning("WebSub: refused a %s verification for an unknown subscription or "
                        "topic (%s)", mode, topic)
            return _text(404, "no such subscription")
        if mode == "denied":
            reason = (arg("hub.reason") or "no reason given")[:200]
            store.subscription_failed(token, f"the hub denied the subscription: {reason}",
                                      now + timedelta(days=1), state="denied")
            log.warning("WebSub: %s denied the subscription to %s: %s", sub.hub, topic, reason)
            return _text(200, "")
        if mode != "subscribe" or challenge is None:  # we never ask to unsubscribe
            return _text(404, "no such request")
        lease = _lease(arg("hub.lease_seconds"), self.lease)
        if not store.verify_subscription(token, sub.topic, lease, now, renew_time(now, lease)):
            log.warning("WebSub: refused a verification of %s: no request pending", topic)
            return _text(404, "no subscription request pending")
        log.info("WebSub: subscribed to %s at %s for %s", topic, sub.hub, lease)
        return _text(200, challenge)

    def _push(self, token: str, headers: dict[str, str], body: bytes) -> Reply:
        if len(body) > self.max_body_bytes:
            return _text(413, "body too large")
        store = self.store()
        sub = store.subscription(token=token)
        if sub is None or not sub.feed_active:
            return _text(410, "no such subscription")
        if sub.verified_at is None:
            return _text(403, "subscription not verified")
        signature = headers.get("x-hub-signature")
        if not signature_ok(sub.secret, body, signature):
            why = "unsigned" if not signature else "badly signed"
            log.warning("WebSub: ignored %s content pushed for %s", why, sub.feed_url)
            return _text(403, f"{why} content ignored")
        now = self.clock()
        kept = {k: v for k, v in headers.items() if k in ("content-type", "link")}
        if not self.deliver(Push(sub.feed_id, sub.feed_url, body, kept, now)):
            return _text(503, "not ready; try again")
        try:  # taken: the hub must not send it again for want of this record
            store.subscription_pushed(token, now)
        except StoreError as exc:
            log.warning("WebSub: %s", exc)
        return _text(202, "")


def _text(status: int, text: str, extra: list[tuple[str, str]] | None = None) -> Reply:
    body = text.encode()
    return status, [("Content-Type", "text/plain; charset=utf-8"),
                    ("Cache-Control", "no-store"), *(extra or [])], body


# ---------------------------------------------------------------- subscribing


class HubClient(Protocol):
    async def post_form(self, url: str, form: Mapping[str, str]) -> tuple[int | None,
                                                                        str | None]: ...


class SubscriberStore(SubscriptionStore, Protocol):
    def request_subscription(self, feed_id: int, hub: str, topic: str, now: datetime,
                             retry_at: datetime) -> SubscriptionRow: ...

    def due_subscriptions(self, now: datetime, limit: int = 100) -> list[SubscriptionRow]: ...


class Subscriber:
    """Asks hubs for subscriptions: for a feed that advertises a new hub or topic
    (``consider``, after each poll that parsed the feed), and again before a lease ends
    or after a request failed (``renew_due``, from a recurring job)."""

    def __init__(self, store: SubscriberStore, client: HubClient, *, callback_base: str,
                 lease: timedelta) -> None:
        self.store = store
        self.client = client
        self.callback_base = callback_base
        self.lease = lease

    async def consider(self, feed_id: int, advert: Advert | None, now: datetime) -> None:
        if advert is None:
            return
        current = await asyncio.to_thread(self.store.subscription, feed_id=feed_id)
        if current is not None and (current.hub, current.topic) == (advert.hub, advert.topic):
            return  # renew_due takes care of it
        await self.subscribe(feed_id, advert, now)

    async def renew_due(self, now: datetime) -> int:
        due = await asyncio.to_thread(self.store.due_subscriptions, now)
        for sub in due:
            await self.subscribe(sub.feed_id, Advert(sub.hub, sub.topic), now)
        return len(due)

    async def subscribe(self, feed_id: int, advert: Advert, now: datetime) -> bool:
        """Ask the hub; True if it accepted the request (it verifies separately)."""
        sub = await asyncio.to_thread(self.store.request_subscription, feed_id, advert.hub,
                                      advert.topic, now, now + VERIFY_WAIT)
        status, error = await self.client.post_form(advert.hub, {
            "hub.mode": "subscribe", "hub.topic": advert.topic,
            "hub.callback": callback_url(self.callback_base, sub.token),
            "hub.secret": sub.secret,
            "hub.lease_seconds": str(int(self.lease.total_seconds())),
        })
        if error is None and status is not None and 200 <= status < 300:
            log.info("WebSub: asked %s for %s (HTTP %d)", advert.hub, advert.topic, status)
            return True
        reason = (error or f"HTTP {status}").replace(sub.secret, "***")
        log.warning("WebSub: %s refused the subscription to %s: %s", advert.hub,
                    advert.topic, reason)
        await asyncio.to_thread(self.store.subscription_failed, sub.token, reason,
                                retry_time(now, sub.failures))
        return False

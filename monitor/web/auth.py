"""Signing in, sessions and CSRF tokens. No HTTP here: the routes call these.

A session is a random token in an HttpOnly, SameSite=Lax cookie; the database keeps
only its SHA-256 (``store.Accounts``), with the session's CSRF token and expiry. Every
unsafe request must carry the CSRF token (a form field or the ``X-CSRF-Token`` header).
Failed sign-ins are counted per name and per client address: past ``max_failures`` for
a name (four times that for an address) in ``window`` the sign-in is refused without
checking the password, and each failure is logged with the name and address, never the
password.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..store import Accounts, SessionInfo, UserRow
from .passwords import dummy_hash, hash_password, needs_rehash, verify_password

__all__ = ["Auth", "SignIn", "SignInLimiter", "csrf_ok", "token_hash"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


ADDRESS_FACTOR = 4


class SignInLimiter:
    """Failures per key within a sliding window; bounded in memory (``max_keys``)."""

    def __init__(self, max_failures: int = 5, window: timedelta = timedelta(minutes=15),
                 max_keys: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[datetime]] = {}

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def limit(self, key: str) -> int:
        """An address may fail more often than a name: several people share one."""
        return self.max_failures * (ADDRESS_FACTOR if key.startswith("addr:") else 1)

    def blocked(self, keys: tuple[str, ...], now: datetime) -> bool:
        return any(len(self._recent(k, now)) >= self.limit(k) for k in keys)

    def failed(self, keys: tuple[str, ...], now: datetime) -> None:
        if len(self._failures) >= self.max_keys:  # forget the stalest keys first
            for stale in sorted(self._failures, key=lambda k: self._failures[k][-1])[
                    : self.max_keys // 10 or 1]:
                del self._failures[stale]
        for k in keys:
            times = self._failures.setdefault(k, deque(maxlen=self.limit(k)))
            times.append(now)

    def succeeded(self, name_key: str) -> None:
        self._failures.pop(name_key, None)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: a session (token for the cookie) or a refusal."""

    token: str | None = None
    session: SessionInfo | None = None
    refused: str | None = None
    """Why not: "invalid" (name or password) or "throttled" (too many failures)."""


class Auth:
    def __init__(self, accounts: Accounts, clock: Clock, *,
                 lifetime: timedelta = timedelta(hours=12),
                 limiter: SignInLimiter | None = None) -> None:
        self.accounts = accounts
        self.clock = clock
        self.lifetime = lifetime
        self.limiter = limiter or SignInLimiter()

    def sign_in(self, name: str, password: str, client: str) -> SignIn:
        now = self.clock()
        keys = (f"name:{name.casefold()}", f"addr:{client}")
        if self.limiter.blocked(keys, now):
            log.warning("sign-in refused: too many failures for user %r from %s", name, client)
            return SignIn(refused="throttled")
        user = self.accounts.user(name)
        ok = verify_password(user.password_hash if user else dummy_hash(), password)
        if user is None or not ok:
            self.limiter.failed(keys, now)
            log.warning("sign-in failed for user %r from %s", name, client)
            return SignIn(refused="invalid")
        self.limiter.succeeded(keys[0])
        if needs_rehash(user.password_hash):
            self.accounts.set_password(user.name, hash_password(password))
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now + self.lifetime
        self.accounts.open_session(user.id, token_hash(token), csrf, now, expires)
        log.info("user %r signed in from %s", user.name, client)
        return SignIn(token, SessionInfo(_public(user), csrf, expires))

    def session(self, token: str | None) -> SessionInfo | None:
        if not token:
            return None
        return self.accounts.session(token_hash(token), self.clock())

    def sign_out(self, token: str | None) -> None:
        if token:
            self.accounts.close_session(token_hash(token))


def _public(user: UserRow) -> UserRow:
    return UserRow(user.id, user.name, user.role, user.created_at)

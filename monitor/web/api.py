"""The console's JSON API under /api/: the same sign-in, roles and CSRF as the pages.

Sign in with ``POST /api/session`` (JSON name and password): the answer sets the
session cookie and carries the ``csrf`` token to send as ``X-CSRF-Token`` on every
POST, PUT and DELETE. Analysts read; edits need the admin role (403).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from ..errors import ConfigError, MonitorError, QueryError
from ..store import SessionInfo, recent_matches
from .console import COOKIE, client_of, console_of, require_admin, require_csrf, session_of
from .pages import channel_rows, day, set_session_cookie, test_channel
from .preview import MAX_DAYS, Preview, preview
from .views import audit_diff, editor_errors, feed_status

__all__ = ["public", "router"]


def api_session(request: Request) -> SessionInfo:
    """The signed-in user (401 without); the X-CSRF-Token header checked on unsafe
    methods (403)."""
    session = session_of(request)
    if session is None:
        raise HTTPException(401, "sign in first: POST /api/session",
                            headers={"WWW-Authenticate": 'Cookie realm="monitor"'})
    require_csrf(request, session, request.headers.get("x-csrf-token"))
    return session


def api_admin(session: Annotated[SessionInfo, Depends(api_session)]) -> SessionInfo:
    require_admin(session)
    return session


User = Annotated[SessionInfo, Depends(api_session)]
Admin = Annotated[SessionInfo, Depends(api_admin)]

public = APIRouter(prefix="/api", tags=["session"])
router = APIRouter(prefix="/api", dependencies=[Depends(api_session)])


# ------------------------------------------------------------ schemas


@dataclass
class SignInBody:
    name: str
    password: str


@dataclass
class SessionOut:
    user: str
    role: str
    csrf: str
    expires_at: datetime


@dataclass
class SourceOut:
    feed: str | None
    feed_url: str
    link: str | None


@dataclass
class MatchOut:
    id: int
    watchlist: str
    item_id: int
    title: str
    link: str | None
    feed: str | None
    feed_url: str
    published_at: datetime | None
    matched_at: datetime
    rules: list[dict[str, Any]]
    snippet: str
    marks: list[list[int]]
    """(start, end) offsets of the matched words in ``snippet``."""
    also: list[SourceOut] = field(default_factory=list)


@dataclass
class FeedOut:
    url: str
    title: str | None
    active: bool
    status: str
    interval_seconds: int
    last_status: int | None
    last_success_at: datetime | None
    last_error: str | None
    next_check_at: datetime | None
    consecutive_failures: int


@dataclass
class FeedAddBody:
    url: str
    """A feed's URL, or a page that links to its feed (autodiscovery)."""
    title: str | None = None


@dataclass
class FeedUrlBody:
    url: str


@dataclass
class FeedAdded:
    url: str
    title: str | None
    note: str | None


@dataclass
class ChannelOut:
    name: str
    url: str
    """In apprise's privacy form: secrets masked."""
    mode: str
    watchlists: list[str]
    problem: str | None


@dataclass
class TestAlertOut:
    channel: str
    sent: bool
    error: str | None


@dataclass
class AuditOut:
    id: int
    at: datetime
    actor: str
    action: str
    kind: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    diff: list[str]


@dataclass
class PreviewBody:
    definition: dict[str, Any]
    days: int = 7


@dataclass
class EditorErrorOut:
    box: str
    line: int | None
    column: int | None
    message: str


# ------------------------------------------------------------ session


@public.post("/session", response_model=SessionOut,
             responses={401: {"description": "wrong name or password"},
                        429: {"description": "too many failed sign-ins"}})
def sign_in(request: Request, body: SignInBody) -> Response:
    console = console_of(request)
    result = console.auth.sign_in(body.name, body.password, client_of(request))
    if result.token is None or result.session is None:
        if result.refused == "throttled":
            return JSONResponse({"detail": "too many failed sign-ins; wait"}, 429)
        return JSONResponse({"detail": "wrong name or password"}, 401)
    s = result.session
    response = JSONResponse({"user": s.user.name, "role": s.user.role, "csrf": s.csrf,
                             "expires_at": s.expires_at.isoformat()})
    set_session_cookie(response, result.token, console.auth.lifetime, console.secure_cookie)
    return response


@router.get("/session", response_model=SessionOut, tags=["session"])
def whoami(session: User) -> SessionOut:
    return SessionOut(session.user.name, session.user.role, session.csrf, session.expires_at)


@router.delete("/session", status_code=204, tags=["session"])
def sign_out(request: Request) -> Response:
    console_of(request).auth.sign_out(request.cookies.get(COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


# ------------------------------------------------------------ matches


@router.get("/matches", response_model=list[MatchOut], tags=["matches"])
def matches(request: Request, watchlist: str | None = None, feed: str | None = None,
            since: Annotated[str | None, Query(description="YYYY-MM-DD, inclusive")] = None,
            until: Annotated[str | None, Query(description="YYYY-MM-DD, inclusive")] = None,
            limit: Annotated[int, Query(ge=1, le=500)] = 50,
            offset: Annotated[int, Query(ge=0)] = 0
            ) -> list[MatchOut]:
    end = day(until)
    rows = recent_matches(console_of(request).app.store.engine, watchlist=watchlist,
                          feed=feed, since=day(since),
                          until=end + timedelta(days=1) if end else None,
                          limit=limit, offset=offset)
    return [MatchOut(r.id, r.watchlist, r.item_id, r.title, r.link, r.feed_title, r.feed_url,
                     r.published_at, r.created_at, r.rules, r.snippet, r.marks,
                     [SourceOut(a.feed_title, a.feed_url, a.link) for a in r.also])
            for r in rows]


# ------------------------------------------------------------ watchlists


def _not_found(exc: MonitorError) -> HTTPException:
    return HTTPException(404, str(exc))


def _invalid(definition: dict[str, Any], exc: MonitorError | None = None) -> JSONResponse:
    errors = [asdict(e) for e in editor_errors(definition)]
    if not errors and isinstance(exc, ConfigError):
        errors = [{"box": "", "line": None, "column": None, "message": str(p)}
                  for p in exc.problems]
    elif not errors and exc is not None:
        errors = [{"box": "", "line": None, "column": None, "message": str(exc)}]
    return JSONResponse({"detail": "the watchlist is not valid", "errors": errors}, 422)


@router.get("/watchlists", tags=["watchlists"])
def watchlists(request: Request) -> list[dict[str, Any]]:
    """Every watchlist's definition (the watchlists.yaml form), by name."""
    return console_of(request).catalog().watchlists()


@router.get("/watchlists/{name}", tags=["watchlists"])
def watchlist(request: Request, name: str) -> dict[str, Any]:
    try:
        return console_of(request).catalog().watchlist(name)
    except MonitorError as exc:
        raise _not_found(exc) from exc


@router.put("/watchlists/{name}", response_model=AuditOut, tags=["watchlists"],
            responses={422: {"description": "invalid: errors with rule line and column"}})
def save_watchlist(request: Request, name: str, definition: Annotated[dict[str, Any], Body()],
                   session: Admin) -> Any:
    """Create or replace the watchlist (audited, published to every running worker)."""
    definition = {**definition, "name": name}
    if editor_errors(definition):
        return _invalid(definition)
    try:
        entry = console_of(request).catalog().save_watchlist(definition, session.user.name)
    except ConfigError as exc:
        return _invalid(definition, exc)
    return _audit_out(entry)


@router.delete("/watchlists/{name}", response_model=AuditOut, tags=["watchlists"])
def delete_watchlist(request: Request, name: str,
                     session: Admin) -> Any:
    try:
        return _audit_out(console_of(request).catalog().delete_watchlist(name,
                                                                         session.user.name))
    except MonitorError as exc:
        raise _not_found(exc) from exc


@router.post("/watchlists/{name}/preview", response_model=Preview, tags=["watchlists"],
             responses={422: {"description": "invalid: errors with rule line and column"}})
def preview_watchlist(request: Request, name: str, body: PreviewBody,
                      session: Admin) -> Any:
    """What the edited watchlist would add and drop against the saved one over the
    items of the last ``days`` days (at most 90); nothing is saved."""
    definition = {**body.definition, "name": name}
    console = console_of(request)
    catalog = console.catalog()
    if editor_errors(definition):
        return _invalid(definition)
    try:
        catalog.check_watchlist(definition)
    except (ConfigError, QueryError) as exc:
        return _invalid(definition, exc)
    try:
        saved: dict[str, Any] | None = catalog.watchlist(name)
    except MonitorError:
        saved = None
    return preview(console.app.store, definition, saved, console.now(),
                   min(max(body.days, 1), MAX_DAYS))


# ------------------------------------------------------------ feeds


@router.get("/feeds", response_model=list[FeedOut], tags=["feeds"])
def feeds(request: Request) -> list[FeedOut]:
    console = console_of(request)
    now = console.now()
    return [FeedOut(f.url, f.title, f.active, feed_status(f, now),
                    int(f.interval.total_seconds()), f.last_status, f.last_success_at,
                    f.last_error, f.next_check_at, f.consecutive_failures)
            for f in console.catalog().feeds()]


@router.post("/feeds", response_model=FeedAdded, status_code=201, tags=["feeds"],
             responses={422: {"description": "no feed at that URL"}})
async def add_feed(request: Request, body: FeedAddBody,
                   session: Admin) -> Any:
    """Add a feed: the URL of a feed, or of a page whose <link rel=alternate> names it."""
    console = console_of(request)
    try:
        async with console.app.fetcher() as fetcher:
            found = await console.discover(fetcher, body.url)
        await run_in_threadpool(console.catalog().add_feed, found.url, session.user.name,
                                title=body.title or found.title)
    except MonitorError as exc:
        return JSONResponse({"detail": str(exc)}, 422)
    return FeedAdded(found.url, body.title or found.title, found.note)


def _feed_edit(request: Request, url: str, session: SessionInfo, action: str) -> AuditOut:
    catalog = console_of(request).catalog()
    try:
        if action == "remove":
            entry = catalog.remove_feed(url, session.user.name)
        else:
            entry = catalog.set_feed_active(url, action == "resume", session.user.name)
    except MonitorError as exc:
        raise _not_found(exc) from exc
    return _audit_out(entry)


@router.post("/feeds/pause", response_model=AuditOut, tags=["feeds"])
def pause_feed(request: Request, body: FeedUrlBody,
               session: Admin) -> AuditOut:
    return _feed_edit(request, body.url, session, "pause")


@router.post("/feeds/resume", response_model=AuditOut, tags=["feeds"])
def resume_feed(request: Request, body: FeedUrlBody,
                session: Admin) -> AuditOut:
    return _feed_edit(request, body.url, session, "resume")


@router.delete("/feeds", response_model=AuditOut, tags=["feeds"])
def remove_feed(request: Request, url: str, session: Admin
                ) -> AuditOut:
    return _feed_edit(request, url, session, "remove")


# ------------------------------------------------------------ channels


@router.get("/channels", response_model=list[ChannelOut], tags=["channels"])
def channels(request: Request) -> list[dict[str, Any]]:
    return channel_rows(request)


@router.post("/channels/{name}/test", response_model=TestAlertOut, tags=["channels"])
async def channel_test(request: Request, name: str,
                       session: Admin) -> TestAlertOut:
    """Send a test alert through the channel (what ``monitor test-alert`` does)."""
    error = await test_channel(request, name)
    return TestAlertOut(name, error is None, error)


# ------------------------------------------------------------ audit


def _audit_out(e: Any) -> AuditOut:
    return AuditOut(e.id, e.at, e.actor, e.action, e.kind, e.target, e.before, e.after,
                    audit_diff(e.before, e.after))


@router.get("/audit", response_model=list[AuditOut], tags=["audit"])
def audit(request: Request, kind: str | None = None, target: str | None = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditOut]:
    """Who changed what and when, newest first, with each edit's before and after."""
    return [_audit_out(e) for e in console_of(request).catalog().audit(
        limit=limit, kind=kind, target=target)]

"""The console's pages: server-rendered, one form per action, no JavaScript needed."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from ..alerts import load_channel, send_test
from ..errors import ConfigError, MonitorError, QueryError
from ..store import SessionInfo, recent_matches, watchlist_names
from .auth import csrf_ok
from .console import (
    COOKIE,
    LOGIN_COOKIE,
    UNSAFE,
    SignInRequired,
    client_of,
    console_of,
    form_of,
    html,
    require_admin,
    require_csrf,
    session_of,
)
from .preview import preview
from .views import (
    EditorError,
    actors_text,
    audit_diff,
    definition_from_form,
    editor_errors,
    feed_status,
    rules_text,
    segments,
)

__all__ = ["router"]

PAGE = 50


async def page_session(request: Request) -> SessionInfo:
    """The signed-in user of a page; on unsafe methods, the form's CSRF token checked."""
    session = session_of(request)
    if session is None:
        if request.method in UNSAFE:
            raise HTTPException(401, "sign in first")
        raise SignInRequired(request.url.path)
    if request.method in UNSAFE:
        require_csrf(request, session, (await form_of(request)).get("csrf"))
    return session


PageUser = Annotated[SessionInfo, Depends(page_session)]
router = APIRouter(include_in_schema=False)
guarded = APIRouter(dependencies=[Depends(page_session)])


# ------------------------------------------------------------ signing in


def _local(path: str | None) -> str:
    """Only a path on this site to go to after signing in (no open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/matches"
    return path


@router.get("/login")
def login_page(request: Request, next: str = "/matches") -> Response:
    token = secrets.token_urlsafe(24)
    response = html(request, "login.html", next=_local(next), login_csrf=token, error=None)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=console_of(request).secure_cookie)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await form_of(request)
    console = console_of(request)
    if not csrf_ok(request.cookies.get(LOGIN_COOKIE, ""), form.get("login_csrf")):
        raise HTTPException(403, "the sign-in form expired; reload the page")
    result = await run_in_threadpool(console.auth.sign_in, form.get("name", ""),
                                     form.get("password", ""), client_of(request))
    if result.token is None:
        token = secrets.token_urlsafe(24)
        message = ("Too many failed sign-ins: wait a few minutes."
                   if result.refused == "throttled" else "Wrong name or password.")
        response = html(request, "login.html", status=401 if result.refused == "invalid"
                        else 429, next=_local(form.get("next")), login_csrf=token,
                        error=message)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                            secure=console.secure_cookie)
        return response
    done = RedirectResponse(_local(form.get("next")), status_code=303)
    set_session_cookie(done, result.token, console.auth.lifetime, console.secure_cookie)
    done.delete_cookie(LOGIN_COOKIE)
    return done


def set_session_cookie(response: Response, token: str, lifetime: timedelta,
                       secure: bool) -> None:
    response.set_cookie(COOKIE, token, max_age=int(lifetime.total_seconds()), httponly=True,
                        samesite="lax", secure=secure, path="/")


@guarded.post("/logout")
def logout(request: Request) -> Response:
    console_of(request).auth.sign_out(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@guarded.get("/")
def home() -> Response:
    return RedirectResponse("/matches", status_code=303)


# ------------------------------------------------------------ matches


def day(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        d = date.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(400, f"not a date (YYYY-MM-DD): {value!r}") from exc
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


@guarded.get("/matches")
def matches_page(request: Request, watchlist: str = "", feed: str = "", since: str = "",
                 until: str = "", page: int = 1) -> Response:
    console = console_of(request)
    store = console.app.store
    end = day(until)
    page = max(1, page)
    rows = recent_matches(store.engine, watchlist=watchlist or None, feed=feed or None,
                          since=day(since), until=end + timedelta(days=1) if end else None,
                          limit=PAGE + 1, offset=(page - 1) * PAGE)
    return html(request, "matches.html", rows=rows[:PAGE], more=len(rows) > PAGE, page=page,
                segments=segments, watchlists=watchlist_names(store.engine),
                feeds=[f.url for f in store.feeds(active_only=False, counts=False)],
                filters={"watchlist": watchlist, "feed": feed, "since": since,
                         "until": until})


# ------------------------------------------------------------ watchlists


@guarded.get("/watchlists")
def watchlists_page(request: Request) -> Response:
    return html(request, "watchlists.html", watchlists=console_of(request).catalog().watchlists())


def _editor(request: Request, definition: dict[str, Any], *, new: bool,
            errors: list[EditorError] | None = None, status: int = 200, days: int = 7,
            result: Any = None, saved: bool = False) -> Response:
    return html(request, "watchlist.html", status=status, definition=definition, new=new,
                rules=rules_text(definition.get("rules", [])),
                actors=actors_text(definition.get("actors", [])), errors=errors or [],
                days=days, preview=result, saved=saved)


@guarded.get("/new-watchlist")
def new_watchlist(request: Request, session: PageUser) -> Response:
    require_admin(session)
    return _editor(request, {"name": "", "rules": [], "actors": []}, new=True)


@guarded.get("/watchlists/{name}")
def watchlist_page(request: Request, name: str, saved: int = 0) -> Response:
    try:
        definition = console_of(request).catalog().watchlist(name)
    except MonitorError as exc:
        raise HTTPException(404, f"no watchlist named {name!r}") from exc
    return _editor(request, definition, new=False, saved=bool(saved))


@guarded.post("/watchlists")
async def edit_watchlist(request: Request,
                         session: PageUser) -> Response:
    require_admin(session)
    form = await form_of(request)
    console = console_of(request)
    catalog = console.catalog()
    new = form.get("new") == "1"
    definition = definition_from_form(form.get("name", ""), form.get("description", ""),
                                      form.get("rules", ""), form.get("actors", ""))
    try:
        days = int(form.get("days") or 7)
    except ValueError:
        days = 7
    errors = editor_errors(definition)
    if errors:
        return _editor(request, definition, new=new, errors=errors, status=422, days=days)
    saved_def: dict[str, Any] | None = None
    try:
        saved_def = catalog.watchlist(definition["name"])
    except MonitorError:
        saved_def = None
    if new and saved_def is not None:
        return _editor(request, definition, new=new, status=409, days=days, errors=[
            EditorError("", None, None, f"a watchlist named {definition['name']!r} exists")])
    if form.get("action") == "save":
        try:
            await run_in_threadpool(catalog.save_watchlist, definition, session.user.name)
        except ConfigError as exc:
            return _editor(request, definition, new=new, status=422, days=days,
                           errors=[EditorError("", None, None, str(p)) for p in exc.problems])
        return RedirectResponse(f"/watchlists/{definition['name']}?saved=1", status_code=303)
    try:
        catalog.check_watchlist(definition)
        result = await run_in_threadpool(preview, console.app.store, definition, saved_def,
                                         console.now(), days)
    except (ConfigError, QueryError) as exc:
        problems = exc.problems if isinstance(exc, ConfigError) else [exc]
        return _editor(request, definition, new=new, status=422, days=days,
                       errors=[EditorError("", None, None, str(p)) for p in problems])
    return _editor(request, definition, new=new, days=days, result=result)


@guarded.post("/watchlists/{name}/delete")
def delete_watchlist(request: Request, name: str,
                     session: PageUser) -> Response:
    require_admin(session)
    try:
        console_of(request).catalog().delete_watchlist(name, session.user.name)
    except MonitorError as exc:
        raise HTTPException(404, str(exc)) from exc
    return RedirectResponse("/watchlists", status_code=303)


# ------------------------------------------------------------ feeds


def _feeds(request: Request, status: int = 200, message: str | None = None,
           error: str | None = None) -> Response:
    console = console_of(request)
    now = console.now()
    rows = console.catalog().feeds()
    return html(request, "feeds.html", status=status, feeds=rows, now=now,
                status_of=lambda f: feed_status(f, now), message=message, error=error)


@guarded.get("/feeds")
def feeds_page(request: Request) -> Response:
    return _feeds(request)


@guarded.post("/feeds/add")
async def add_feed(request: Request, session: PageUser) -> Response:
    require_admin(session)
    url = (await form_of(request)).get("url", "").strip()
    console = console_of(request)
    try:
        async with console.app.fetcher() as fetcher:
            found = await console.discover(fetcher, url)
        await run_in_threadpool(console.catalog().add_feed, found.url, session.user.name,
                                title=found.title)
    except MonitorError as exc:  # FeedError (nothing there), ConfigError (not a URL)
        return _feeds(request, status=422, error=f"cannot add {url}: {exc}")
    return _feeds(request, message=found.note or f"added {found.url}")


@guarded.post("/feeds/{action}")
async def feed_action(request: Request, action: str,
                      session: PageUser) -> Response:
    require_admin(session)
    if action not in ("pause", "resume", "remove"):
        raise HTTPException(404, "no such action")
    url = (await form_of(request)).get("url", "")
    catalog = console_of(request).catalog()
    try:
        if action == "remove":
            catalog.remove_feed(url, session.user.name)
        else:
            catalog.set_feed_active(url, action == "resume", session.user.name)
    except MonitorError as exc:
        return _feeds(request, status=404, error=str(exc))
    return RedirectResponse("/feeds", status_code=303)


# ------------------------------------------------------------ channels


def channel_rows(request: Request) -> list[dict[str, Any]]:
    """Each channel with its URL in apprise's privacy form (secrets masked)."""
    out = []
    for ch in console_of(request).app.config.channels:
        try:
            shown = load_channel(ch.name, ch.url.get_secret_value()).display_url
            problem = None
        except MonitorError as exc:
            shown, problem = "(not a valid channel URL)", str(exc)
        out.append({"name": ch.name, "url": shown, "mode": ch.mode,
                    "watchlists": list(ch.watchlists), "problem": problem})
    return out


async def test_channel(request: Request, name: str) -> str | None:
    """Send a test alert through the channel, as ``monitor test-alert`` does; the error,
    or None."""
    console = console_of(request)
    found = {c.name: c for c in console.app.config.channels}
    if name not in found:
        raise HTTPException(404, f"no channel named {name!r}")
    channel = load_channel(name, found[name].url.get_secret_value())
    return await send_test(channel, console.now())


@guarded.get("/channels")
def channels_page(request: Request) -> Response:
    return html(request, "channels.html", channels=channel_rows(request), result=None)


@guarded.post("/channels/test")
async def channels_test(request: Request,
                        session: PageUser) -> Response:
    require_admin(session)
    name = (await form_of(request)).get("name", "")
    error = await test_channel(request, name)
    result = {"name": name, "error": error}
    return html(request, "channels.html", channels=channel_rows(request), result=result,
                status=200 if error is None else 502)


# ------------------------------------------------------------ audit


@guarded.get("/audit")
def audit_page(request: Request, kind: str = "", target: str = "") -> Response:
    entries = console_of(request).catalog().audit(limit=200, kind=kind or None,
                                                  target=target or None)
    return html(request, "audit.html", entries=entries, diff=audit_diff,
                filters={"kind": kind, "target": target})


router.include_router(guarded)

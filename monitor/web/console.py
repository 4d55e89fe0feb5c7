"""The web console: a FastAPI application with server-rendered pages (``pages``) and a
JSON API under /api/ (``api``), behind one sign-in (``auth``).

Every request reads the App in force through ``Console.current`` (the daemon swaps it on
SIGHUP), and edits go through the catalog, which audits them and publishes watchlists to
every running worker. Feed text is untrusted: the templates autoescape everything.

Access: pages redirect to /login without a session, the API answers 401. Every unsafe
method (POST, PUT, PATCH, DELETE) needs the session's CSRF token — the ``csrf`` form
field on pages, the ``X-CSRF-Token`` header on the API — else 403; the two sign-in
routes are the only exceptions (they make the session). Edits need the admin role, else
403. The OpenAPI description is at /api/openapi.json.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..daemon import App
from ..fetch import Fetcher
from ..store import FeedRow, SessionInfo
from .auth import Auth, csrf_ok

__all__ = ["COOKIE", "CatalogAPI", "Console", "console_app"]

COOKIE = "monitor_session"
LOGIN_COOKIE = "monitor_login"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HERE = Path(__file__).resolve().parent


class AuditLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def before(self) -> dict[str, Any] | None: ...
    @property
    def after(self) -> dict[str, Any] | None: ...


class DiscoveredLike(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def note(self) -> str | None: ...


class CatalogAPI(Protocol):
    """What the console uses of ``monitor.catalog.Catalog`` (docs in that module)."""

    def watchlists(self) -> list[dict[str, Any]]: ...
    def watchlist(self, name: str) -> dict[str, Any]: ...
    def check_watchlist(self, definition: dict[str, Any]) -> None: ...
    def save_watchlist(self, definition: dict[str, Any], actor: str) -> Any: ...
    def delete_watchlist(self, name: str, actor: str) -> Any: ...
    def feeds(self) -> list[FeedRow]: ...
    def add_feed(self, url: str, actor: str, *, title: str | None = None,
                 interval: timedelta | None = None) -> Any: ...
    def set_feed_active(self, url: str, active: bool, actor: str) -> Any: ...
    def remove_feed(self, url: str, actor: str) -> Any: ...
    def audit(self, *, limit: int = 100, kind: str | None = None,
              target: str | None = None) -> list[Any]: ...


Discover = Callable[[Fetcher, str], Awaitable[DiscoveredLike]]


@dataclass
class Console:
    """What the console needs: the App in force, the catalog over its store, feed
    discovery, and sign-in."""

    current: Callable[[], App]
    catalog_of: Callable[[App], CatalogAPI]
    discover: Discover
    auth: Auth
    secure_cookie: bool = False
    """Mark the session cookie Secure (serve behind HTTPS)."""

    @property
    def app(self) -> App:
        return self.current()

    def catalog(self) -> CatalogAPI:
        return self.catalog_of(self.current())

    def now(self) -> datetime:
        return self.current().clock()


class SignInRequired(Exception):
    """A page asked for without a session: redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,  # every template, whatever its name: feed text is untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda t: t.strftime("%Y-%m-%d %H:%M") if t else "–"
    return env


_TITLES = {400: "Bad request", 401: "Sign in first", 403: "Not allowed", 404: "Not found",
           405: "Not allowed", 413: "Too large", 422: "Not valid"}

_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


MAX_BODY = 1_000_000
"""The largest request body read (a form, a watchlist): far past any real one."""


def _small_body(request: Request) -> bool:
    """A body announced with a Content-Length of at most MAX_BODY (or none at all):
    the sign-in form is open to anyone, and its body is read whole."""
    length = request.headers.get("content-length")
    if length is None:
        return "transfer-encoding" not in request.headers
    return length.isdigit() and int(length) <= MAX_BODY


def console_app(console: Console) -> FastAPI:
    from . import api, pages  # the routes use the helpers above

    app = FastAPI(title="monitor console API", version="1",
                  description="The JSON API of the monitor web console. Sign in with "
                  "POST /api/session; send the returned csrf token as X-CSRF-Token on "
                  "every POST, PUT and DELETE.",
                  openapi_url="/api/openapi.json", docs_url=None, redoc_url=None)
    app.state.console = console
    app.state.templates = templates()

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                       ) -> Response:
        if request.method in UNSAFE and not _small_body(request):
            response: Response = JSONResponse(
                {"detail": f"a request body is at most {MAX_BODY:,} bytes, with a "
                 "Content-Length"}, status_code=413)
        else:
            response = await call_next(request)
        for k, v in _SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(SignInRequired)
    async def _to_login(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"/login?next={exc.next_path}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/") or request.url.path.startswith("/static/"):
            return await http_exception_handler(request, exc)
        return html(request, "error.html", status=exc.status_code, status_code=exc.status_code,
                    title=_TITLES.get(exc.status_code, "Error"), detail=exc.detail,
                    headers=dict(exc.headers or {}))

    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    app.include_router(api.public)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description, with the sign-in it takes: the session cookie on every
    route but the sign-in, and the CSRF header on every unsafe one too."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        schema.setdefault("components", {})["securitySchemes"] = {
            "session": {"type": "apiKey", "in": "cookie", "name": COOKIE},
            "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"}}
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                if (path, method) == ("/api/session", "post"):
                    continue
                operation["security"] = [{"session": [], "csrf": []}
                                         if method.upper() in UNSAFE else {"session": []}]
        app.openapi_schema = schema
    return app.openapi_schema


# ------------------------------------------------------------ request helpers


def console_of(request: Request) -> Console:
    c: Console = request.app.state.console
    return c


def session_of(request: Request) -> SessionInfo | None:
    cached: SessionInfo | None = getattr(request.state, "session", None)
    if cached is None:
        cached = console_of(request).auth.session(request.cookies.get(COOKIE))
        request.state.session = cached
    return cached


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def form_of(request: Request) -> dict[str, str]:
    """The urlencoded form of the request (the pages post nothing else), last value of
    each field."""
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def require_csrf(request: Request, session: SessionInfo, given: str | None) -> None:
    if request.method in UNSAFE and not csrf_ok(session.csrf, given):
        raise HTTPException(403, "missing or wrong CSRF token")


def require_admin(session: SessionInfo) -> None:
    if session.user.role != "admin":
        raise HTTPException(403, "this needs the admin role")


def json_error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


def html(request: Request, template: str, status: int = 200,
         headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    env: jinja2.Environment = request.app.state.templates
    session = session_of(request)
    body = env.get_template(template).render(request=request, session=session,
                                             path=request.url.path, **context)
    return HTMLResponse(body, status_code=status, headers=headers)

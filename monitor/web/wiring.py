"""The console wired to the App in force: its catalog, sign-in and feed discovery."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from ..catalog import discover_feed
from ..daemon import App
from ..store import Accounts
from .auth import Auth
from .console import CatalogAPI, Console, console_app

__all__ = ["console_for"]


def _catalog(app: App) -> CatalogAPI:
    return app.catalog()


def console_for(current: Callable[[], App]) -> FastAPI:
    """The console's ASGI app; ``current`` gives the App in force at each request (the
    daemon swaps it on SIGHUP). Sign-in settings are read once, here."""
    app = current()
    web = app.config.settings.web
    auth = Auth(Accounts(app.store.engine), app.clock, lifetime=web.session_lifetime)
    return console_app(Console(current, _catalog, discover_feed, auth,
                               secure_cookie=web.secure_cookie))

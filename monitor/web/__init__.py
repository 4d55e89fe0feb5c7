"""The daemon's HTTP side: /metrics and /healthz (``server``), and the web console with
its JSON API (``console``, served by ``serve``; docs/web.md)."""

from .server import WebServer, wsgi_app

__all__ = ["WebServer", "wsgi_app"]

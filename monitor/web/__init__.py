"""The daemon's HTTP side: /metrics and /healthz (admin pages will live here too)."""

from .server import WebServer, wsgi_app

__all__ = ["WebServer", "wsgi_app"]

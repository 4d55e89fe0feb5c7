"""The default templates shipped in the package, and a channel's own."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources

from ..store import PendingAlert
from .render import Format, Message, Renderer

__all__ = ["default_templates", "render", "renderer"]


@functools.cache
def default_templates() -> dict[str, str]:
    """``subject``, ``text``, ``html`` and ``slack``: the templates in alerts/templates/."""
    folder = resources.files(__package__).joinpath("templates")
    return {name: folder.joinpath(f"{name}.j2").read_text(encoding="utf-8")
            for name in ("subject", "text", "html", "slack")}


def renderer(fmt: Format, overrides: Mapping[str, str] | None = None) -> Renderer:
    """The renderer for ``fmt`` with a channel's own templates over the defaults."""
    return Renderer(fmt, {**default_templates(), **(overrides or {})})


def render(alert: PendingAlert, fmt: Format = "text") -> Message:
    """One alert with the default templates."""
    return renderer(fmt).render([alert])

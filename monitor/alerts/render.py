"""Alert messages: a title and a plain-text body that say why the alert fired. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..match import Snippet
from ..store import PendingAlert

__all__ = ["Message", "render"]

_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\u2028\u2029\x85]+")
_TITLE_MAX = 200


@dataclass(frozen=True)
class Message:
    title: str
    body: str


def one_line(text: str, limit: int = _TITLE_MAX) -> str:
    """Text safe for a subject line: no line breaks, at most ``limit`` characters."""
    flat = _LINE_BREAKS.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def render(alert: PendingAlert) -> Message:
    """The message for one outbox row: watchlist, rules, terms, title, feed, link, date."""
    title = one_line(f"[{alert.watchlist}] {alert.title or '(untitled)'}")
    terms = list(dict.fromkeys(t["text"] for r in alert.rules for t in r["terms"]))
    lines = [one_line(alert.title or "(untitled)", 1000), ""]
    lines.append(f"Watchlist: {alert.watchlist}")
    for r in alert.rules:
        lines.append(f"Rule: {r['rule']}")
    lines.append(f"Matched: {', '.join(terms)}")
    feed = one_line(alert.feed_title or "", 200)
    lines.append(f"Feed: {feed} <{alert.feed_url}>" if feed else f"Feed: {alert.feed_url}")
    if alert.published_at:
        lines.append(f"Published: {alert.published_at:%Y-%m-%d %H:%M} UTC")
    if alert.link:
        lines.append(f"Link: {alert.link}")
    if alert.snippet:
        marks = tuple((int(a), int(b)) for a, b in alert.marks)
        lines += ["", Snippet(alert.snippet, marks).render("**", "**")]
    return Message(title, "\n".join(lines) + "\n")

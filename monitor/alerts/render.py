"""Alert messages from Jinja2 templates, one set per format. Pure: the templates are
given as text (``templates.py`` reads the defaults shipped in the package).

Formats: ``text`` (anything), ``html`` (email; apprise adds the plain-text part),
``slack`` (CommonMark, which apprise turns into Slack mrkdwn). Each format has a body
template and all share a ``subject`` template. Templates see ``kind`` (``alert``,
``digest`` or ``summary``), ``story`` (an alert) or ``groups`` (watchlists, each with
its stories), ``count``, ``channel`` and ``limit``.

Feed text is untrusted. In HTML every value is escaped (autoescape). In Slack every
value is escaped for CommonMark, so ``<!channel>``, ``<url|label>`` and ``[label](url)``
in a feed arrive as text; apprise then entity-escapes ``&``, ``<`` and ``>``. The
subject is flattened to one line after rendering, so no template can put a line break
(an e-mail header) into it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jinja2
from markupsafe import Markup

from ..store import PendingAlert

__all__ = ["FORMATS", "Format", "Kind", "Message", "Renderer", "one_line", "slack_escape",
           "web_link"]

Format = Literal["text", "html", "slack"]
Kind = Literal["alert", "digest", "summary"]
FORMATS: tuple[Format, ...] = ("text", "html", "slack")

_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\u2028\u2029\x85]+")
_TITLE_MAX = 200
_SLACK_SPECIAL = re.compile(r"([\\<>\[\]`])")


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    format: Format = "text"


def one_line(text: str, limit: int = _TITLE_MAX) -> str:
    """Text safe for a subject line: no line breaks, at most ``limit`` characters."""
    flat = _LINE_BREAKS.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def slack_escape(text: str) -> str:
    """Feed text as CommonMark that apprise renders literally in Slack: no mention,
    link, or code span can be formed from it."""
    return _SLACK_SPECIAL.sub(r"\\\1", text)


def _finalize_slack(value: Any) -> Any:
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return slack_escape(value)


def _environment(fmt: Format | Literal["subject"],
                 sources: Mapping[str, str]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.DictLoader(dict(sources)),
        autoescape=fmt == "html",
        finalize=_finalize_slack if fmt == "slack" else None,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


class Renderer:
    """Compiled templates for one format; ``sources`` maps ``subject`` and the format's
    name to template text. Raises jinja2.TemplateSyntaxError on a bad template."""

    def __init__(self, fmt: Format, sources: Mapping[str, str]) -> None:
        self.format = fmt
        self._subject = _environment("subject", sources).get_template("subject")
        self._body = _environment(fmt, sources).get_template(fmt)

    def render(self, alerts: Sequence[PendingAlert], kind: Kind = "alert", *,
               channel: str = "", limit: int | None = None) -> Message:
        ctx = context(alerts, kind, channel=channel, limit=limit)
        title = one_line(self._subject.render(ctx))
        body = self._body.render(ctx)
        return Message(title, body.strip("\n") + "\n", self.format)


def context(alerts: Sequence[PendingAlert], kind: Kind, *, channel: str = "",
            limit: int | None = None) -> dict[str, Any]:
    """What the templates see."""
    groups: dict[str, dict[int, dict[str, Any]]] = {}
    for a in alerts:
        stories = groups.setdefault(a.watchlist, {})
        key = a.story_id if a.story_id is not None else -a.id
        if key in stories:
            _merge(stories[key], a)
        else:
            stories[key] = story(a)
    return {
        "kind": kind,
        "story": story(alerts[0]) if alerts else None,
        "groups": [{"watchlist": wl, "stories": list(s.values())} for wl, s in groups.items()],
        "count": len(alerts),
        "channel": channel,
        "limit": limit,
    }


def story(a: PendingAlert) -> dict[str, Any]:
    terms = list(dict.fromkeys(t["text"] for r in a.rules for t in r["terms"]))
    return {
        "title": one_line(a.title, 1000),
        "watchlist": a.watchlist,
        "rules": [r["rule"] for r in a.rules],
        "terms": terms,
        "feed": one_line(a.feed_title or ""),
        "feed_url": a.feed_url,
        "published": f"{a.published_at:%Y-%m-%d %H:%M} UTC" if a.published_at else None,
        "link": web_link(a.link),
        "snippet": _segments(a.snippet, a.marks),
        "also": [{"feed": one_line(s.feed_title or ""), "feed_url": s.feed_url,
                  "link": web_link(s.link)} for s in a.also],
    }


def web_link(link: str | None) -> str | None:
    """An item's link if it is http(s) and one line; a feed may offer ``javascript:``."""
    if not link or _LINE_BREAKS.search(link) or not re.match(r"https?://", link, re.I):
        return None
    return link


def _merge(into: dict[str, Any], a: PendingAlert) -> None:
    """Another alert of the same story in one digest: one more source."""
    known = {o["feed_url"] for o in into["also"]} | {into["feed_url"]}
    for src in ({"feed": one_line(a.feed_title or ""), "feed_url": a.feed_url,
                 "link": web_link(a.link)},
                *({"feed": one_line(s.feed_title or ""), "feed_url": s.feed_url,
                   "link": web_link(s.link)} for s in a.also)):
        if src["feed_url"] not in known:
            into["also"].append(src)
            known.add(src["feed_url"])


def _segments(text: str, marks: Sequence[Sequence[int]]) -> list[tuple[str, bool]]:
    out, last = [], 0
    for start, end in sorted((int(a), int(b)) for a, b in marks):
        if start < last:
            continue
        out += [(text[last:start], False), (text[start:end], True)]
        last = end
    out.append((text[last:], False))
    return [(t, m) for t, m in out if t]

"""Feed bytes -> entries, with feedparser. Pure: no I/O, never a URL.

feedparser is handed the bytes we fetched and the response headers (for the charset);
it never fetches anything itself. Titles, summaries and contents come out as plain
text: markup is stripped here, once, so what is stored is what is matched.
"""

from __future__ import annotations

import calendar
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser

from .errors import FeedError
from .text import html_to_text

__all__ = ["Entry", "ParsedFeed", "parse_feed"]

_MAX_FIELD = 100_000  # characters kept of any one text field


@dataclass(frozen=True)
class Entry:
    """One item of a feed, as plain text."""

    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str
    author: str
    published: datetime | None


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    link: str | None
    entries: tuple[Entry, ...]
    warning: str | None = None
    """Set when feedparser had to recover from malformed input (``bozo``)."""


def parse_feed(body: bytes, headers: Mapping[str, str] | None = None) -> ParsedFeed:
    """Parse RSS, Atom or RDF bytes. Raises FeedError if nothing feed-like is found."""
    response_headers = {k.lower(): v for k, v in (headers or {}).items()
                        if k.lower() in ("content-type", "content-location", "content-language")}
    result = feedparser.parse(
        io.BytesIO(body), response_headers=response_headers, sanitize_html=False,
        resolve_relative_uris=False,
    )
    bozo = result.get("bozo_exception")
    if not result.get("version") and not result.entries:
        reason = f": {_describe(bozo)}" if bozo else ""
        if body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
            raise FeedError("not a feed: the URL returned an HTML page")
        raise FeedError(f"not a feed{reason}" if body.strip() else "not a feed: empty body")
    entries = tuple(_entry(e) for e in result.entries)
    feed = result.feed
    return ParsedFeed(
        title=html_to_text(feed.get("title", ""))[:1000],
        link=feed.get("link"),
        entries=entries,
        warning=_describe(bozo) if bozo else None,
    )


def _describe(exc: Any) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _entry(e: Any) -> Entry:
    summary = html_to_text(e.get("summary", "") or "")
    content = html_to_text("\n".join(c.get("value", "") for c in e.get("content", []) or []))
    if content == summary:
        content = ""  # feedparser copies Atom content into summary
    author = e.get("author") or ""
    return Entry(
        guid=(e.get("id") or "").strip() or None,
        link=(e.get("link") or "").strip() or None,
        title=html_to_text(e.get("title", "") or "")[:_MAX_FIELD],
        summary=summary[:_MAX_FIELD],
        content=content[:_MAX_FIELD],
        author=html_to_text(author)[:1000],
        published=_date(e.get("published_parsed") or e.get("updated_parsed")),
    )


def _date(parsed: Any) -> datetime | None:
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError):
        return None

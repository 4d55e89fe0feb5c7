"""Feed bytes -> entries: RSS, Atom and RDF with feedparser, JSON Feed 1.x by hand.
Pure: no I/O, never a URL.

feedparser is handed the bytes we fetched and the response headers (for the charset);
it never fetches anything itself. Titles, summaries and contents come out as plain
text: markup is stripped here, once, so what is stored is what is matched.
"""

from __future__ import annotations

import calendar
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

from .errors import FeedError
from .fastfeed import fast_parse
from .text import html_to_text
from .xmlguard import refuse_entities

__all__ = ["Entry", "ParsedFeed", "parse_feed", "refuse_entities"]

_MAX_FIELD = 100_000  # characters kept of any one text field
MAX_ENTRIES = 1000
"""Entries read of one feed by default: a feed of 20,000 items is an archive, or an attack,
and storing them in one transaction held the database for minutes."""


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
    ttl: timedelta | None = None
    """RSS ``<ttl>``: how long the feed may be cached."""
    hub: str | None = None
    """The WebSub hub the feed advertises (``<link rel="hub">``, JSON Feed ``hubs``),
    as written (maybe relative)."""
    self_link: str | None = None
    """The feed's own URL as it states it (``rel="self"``, JSON Feed ``feed_url``)."""


def parse_feed(body: bytes, headers: Mapping[str, str] | None = None,
               url: str | None = None, *, max_entries: int = MAX_ENTRIES,
               fast: bool = True) -> ParsedFeed:
    """Parse RSS, Atom, RDF or JSON Feed bytes. Raises FeedError if nothing feed-like is
    found; for an HTML page, the error names the feeds the page advertises (``url``
    resolves their relative links). Only the first ``max_entries`` entries are kept
    (feeds list the newest first); the warning says how many were left.

    A plain, well-formed feed is read by ``fastfeed`` (the same result, several times
    faster); anything else, or everything with ``fast=False``, by feedparser."""
    content_type = next((v for k, v in (headers or {}).items()
                         if k.lower() == "content-type"), "")
    if "json" in content_type.lower() or body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        return _capped(parse_json_feed(body), max_entries)
    refuse_entities(body)
    if b"&#" in body:
        body = _BAD_CHARREF_RE.sub(_replace_charref, body)
    quick = fast_parse(body, headers or {}) if fast else None
    if quick is not None:
        for e in quick["entries"]:
            e[_READ_DATE] = _entry_date(e.get("published"), e.get("updated"))
        return _result(quick["feed"], quick["entries"], None, max_entries)
    response_headers = {k.lower(): v for k, v in (headers or {}).items()
                        if k.lower() in ("content-type", "content-location", "content-language")}
    import feedparser  # here: a parse worker whose feeds fastfeed reads never loads it

    try:
        result = feedparser.parse(
            io.BytesIO(body), response_headers=response_headers, sanitize_html=False,
            resolve_relative_uris=False,
        )
    except (UnicodeError, ValueError, OverflowError) as exc:  # feedparser's chr() on a ref
        raise FeedError(f"not a feed: feedparser could not read it ({_describe(exc)})") from exc
    bozo = result.get("bozo_exception")
    if not result.get("version") and not result.entries:
        reason = f": {_describe(bozo)}" if bozo else ""
        if body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
            found = discover(body, url)
            hint = f"; it advertises {', '.join(found)} (use that URL)" if found else ""
            raise FeedError(f"not a feed: the URL returned an HTML page{hint}")
        raise FeedError(f"not a feed{reason}" if body.strip() else "not a feed: empty body")
    return _result(result.feed, result.entries, bozo, max_entries)


def _result(feed: Any, raw_entries: Sequence[Any], bozo: Any, max_entries: int) -> ParsedFeed:
    """A ParsedFeed of feedparser's ``feed`` and ``entries`` (or fastfeed's, alike)."""
    entries = tuple(_entry(e) for e in raw_entries[:max_entries + 1])
    return _capped(ParsedFeed(
        title=_plain(feed.get("title", ""), 1000),
        link=_str(feed.get("link")),
        entries=entries,
        warning=_describe(bozo) if bozo else None,
        ttl=_ttl(feed.get("ttl")),
        hub=_link(feed, "hub"),
        self_link=_link(feed, "self"),
    ), max_entries, len(raw_entries))


def _link(feed: Any, rel: str) -> str | None:
    """The first ``<link rel=…>`` (Atom, or atom:link in RSS) of the feed."""
    for link in feed.get("links", ()) if hasattr(feed, "get") else ():
        if isinstance(link, dict) and link.get("rel") == rel:
            return _str(link.get("href"))
    return None


def _capped(parsed: ParsedFeed, limit: int, total: int | None = None) -> ParsedFeed:
    total = len(parsed.entries) if total is None else total
    if total <= limit:
        return parsed
    note = (f"the feed has {total:,} entries; only the first {limit:,} are read "
            "([parse] max_entries)")
    return replace(parsed, entries=parsed.entries[:limit],
                   warning=f"{note}; {parsed.warning}" if parsed.warning else note)


# Character references to what is not a character (a surrogate, past U+10FFFF): feedparser
# encodes them and fails. Replaced by U+FFFD before it sees them (ASCII-compatible bodies;
# in UTF-16 or UTF-32 feedparser's failure becomes the feed's error).
_BAD_CHARREF_RE = re.compile(rb"&#(?:[xX]0*([0-9a-fA-F]{1,16})|0*([0-9]{1,20}));")


def _replace_charref(m: re.Match[bytes]) -> bytes:
    code = int(m.group(1), 16) if m.group(1) else int(m.group(2))
    return b"&#xFFFD;" if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else m.group(0)


# What a reader never sees and a store or a terminal should never get: C0 and C1 controls
# but tab and newline, DEL, lone surrogates (from JSON's \ud800 escapes), and the bidi
# embeddings, overrides and isolates that make "gnp.exe" display as "exe.png".
_CONTROLS_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff"
                          "\u202a-\u202e\u2066-\u2069]")


_PRINTABLE_ASCII = bytes([0x09, 0x0A, *range(0x20, 0x7F)])
"""What ``_CONTROLS_RE`` leaves of ASCII: tab, newline and the printable characters."""


def _scrub(text: str) -> str:
    # Most text has nothing to remove: ASCII is checked by deleting what is allowed from
    # its bytes (C, one pass) and anything else by ``isprintable`` (every character the
    # expression removes is unprintable), faster than letting the expression look.
    if text.isascii():
        if not text.encode("ascii").translate(None, _PRINTABLE_ASCII):
            return text
    elif text.isprintable():
        return text
    return _CONTROLS_RE.sub("", text)


_PLAIN_ASCII = bytes(c for c in range(0x20, 0x7F) if c not in b"<&")
"""What ``_plain`` leaves as it is in ASCII text: printable characters but ``<``, ``&``."""


def _plain(markup: str, limit: int = _MAX_FIELD) -> str:
    """Plain text of a feed field: markup stripped, controls removed, length capped."""
    if not markup:  # most entries have no author, and an RSS item no content
        return ""
    # Most text has no markup, reference, control, or blank but lone spaces: only its
    # ends are stripped. ASCII is checked by one deletion (C); other text by
    # ``isprintable``, false for every control and blank but the space.
    if markup.isascii():
        if not markup.encode("ascii").translate(None, _PLAIN_ASCII) and "  " not in markup:
            return markup.strip()[:limit]
    elif (markup.isprintable() and "<" not in markup and "&" not in markup
          and "  " not in markup):
        return markup.strip()[:limit]
    text = html_to_text(_scrub(markup))
    # Again where a reference may decode to a control (&#27; to ESC): tags and blanks
    # removed leave none.
    return (_scrub(text) if "&" in markup else text)[:limit]


def _ttl(value: Any) -> timedelta | None:
    text = str(value or "").strip()
    return timedelta(minutes=int(text)) if text.isdigit() and 0 < int(text) < 10**6 else None


_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json",
               "application/json", "application/rdf+xml")


class _LinkFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if (tag == "link" and "alternate" in a.get("rel", "").lower().split()
                and a.get("type", "").lower() in _FEED_TYPES and a.get("href")):
            self.links.append(a["href"])


def discover(html: bytes, base: str | None = None) -> list[str]:
    """The feed URLs an HTML page advertises with ``<link rel="alternate">``."""
    finder = _LinkFinder()
    finder.feed(html[:500_000].decode("utf-8", "replace"))
    links = [urljoin(base, h) if base else h for h in finder.links]
    return [u for u in dict.fromkeys(links) if u.startswith(("http://", "https://"))][:5]


def parse_json_feed(body: bytes) -> ParsedFeed:
    """JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1)."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedError(f"not a feed: invalid JSON ({exc})") from exc
    except RecursionError as exc:
        raise FeedError("not a feed: JSON nested too deeply") from exc
    except ValueError as exc:  # a number longer than int() takes (sys.int_info)
        raise FeedError(f"not a feed: unreadable JSON ({_describe(exc)})") from exc
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(
            "https://jsonfeed.org/version/"):
        raise FeedError("not a feed: JSON without a jsonfeed.org version")
    items = doc.get("items")
    entries = tuple(_json_entry(i) for i in (items if isinstance(items, list) else [])
                    if isinstance(i, dict))
    hubs = doc.get("hubs")
    hub = next((_str(h.get("url")) for h in (hubs if isinstance(hubs, list) else [])
                if isinstance(h, dict) and str(h.get("type", "")).lower() == "websub"), None)
    return ParsedFeed(title=_text(doc.get("title"))[:1000], link=_str(doc.get("home_page_url")),
                      entries=entries, hub=hub, self_link=_str(doc.get("feed_url")))


def _str(value: Any) -> str | None:
    return _scrub(value).strip() or None if isinstance(value, str) else None


def _text(value: Any) -> str:
    return _plain(value) if isinstance(value, str) else ""


def _json_entry(i: dict[str, Any]) -> Entry:
    authors = i.get("authors") or ([i["author"]] if isinstance(i.get("author"), dict) else [])
    author = next((a.get("name") for a in authors if isinstance(a, dict) and a.get("name")), "")
    content = _text(i.get("content_html")) or _text(i.get("content_text"))
    summary = _text(i.get("summary"))
    guid = i.get("id")
    return Entry(
        guid=_scrub(str(guid)).strip() or None if guid is not None else None,
        link=_str(i.get("url")),
        title=_text(i.get("title"))[:_MAX_FIELD],
        summary=summary[:_MAX_FIELD],
        content=("" if content == summary else content)[:_MAX_FIELD],
        author=_text(author)[:1000],
        published=_iso_date(i.get("date_published") or i.get("date_modified")),
    )


def _iso_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _describe(exc: Any) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _entry(e: Any) -> Entry:
    raw_summary = e.get("summary", "") or ""
    raw_content = "\n".join(c.get("value", "") for c in e.get("content", []) or [])
    summary = _plain(raw_summary)
    # feedparser copies Atom content into summary: the same markup is read once
    content = "" if raw_content == raw_summary else _plain(raw_content)
    if content == summary:
        content = ""
    entry: Entry = object.__new__(Entry)  # a frozen dataclass's __init__ sets each field
    entry.__dict__.update(  # through object.__setattr__: twice the cost, for every entry
        guid=_scrub(e.get("id") or "").strip() or None,
        link=_scrub(e.get("link") or "").strip() or None,
        title=_plain(e.get("title", "") or ""),
        summary=summary,
        content=content,
        author=_plain(e.get("author") or "", 1000),
        published=(e[_READ_DATE] if _READ_DATE in e  # fastfeed's, read already
                   else _date(e.get("published_parsed") or e.get("updated_parsed"))),
    )
    return entry


_READ_DATE = "published (read)"
"""Where a fast-read entry keeps its date, read already: a key no feed element can
make (feedparser keeps an unknown element, ``<published_at>`` say, under its name)."""
_MONTHS = {m: f"{n:02}" for n, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
# The two forms nearly every feed writes, to the second, in years 1900-2999: RFC 822
# (RSS) and W3C-DTF (Atom), with the offset as feedparser reads it (a zone name: UTC).
_YEAR = "(19[0-9]{2}|2[0-9]{3})"
_RFC822_RE = re.compile(rf"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?([0-9]{{1,2}}) "
                        rf"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {_YEAR} "
                        r"([0-9]{2}):([0-9]{2}):([0-9]{2}) "
                        r"(?:GMT|UTC|UT|Z|([+-])([0-9]{2})([0-9]{2}))")
_W3DTF_RE = re.compile(rf"{_YEAR}-([0-9]{{2}})-([0-9]{{2}})T([0-9]{{2}}):([0-9]{{2}}):"
                       r"([0-9]{2})(?:Z|([+-])([0-9]{2}):([0-9]{2}))")


def _entry_date(published: str | None, updated: str | None) -> datetime | None:
    """``_entry``'s date of fastfeed's strings: ``_date`` of the first one that
    feedparser's ``_parse_date`` reads, found directly for the common forms."""
    for text in (published, updated):
        if text:
            stamp = _common_date(text)
            if stamp is not None:
                return stamp
            from feedparser.datetimes import _parse_date  # see parse_feed

            parsed = _parse_date(text)
            if parsed:
                return _date(parsed)
    return None


def _common_date(text: str) -> datetime | None:
    """``_date(_parse_date(text))`` for a date in one of the two forms nearly every feed
    writes (feedparser tries up to nine parsers in Python, each splitting the string);
    None for any other form (a test compares the two)."""
    found = _RFC822_RE.fullmatch(text)
    if found is not None:
        day, month, year, hour, minute, second, sign, tz_hours, tz_minutes = found.groups()
        month = _MONTHS[month]
    else:
        found = _W3DTF_RE.fullmatch(text)
        if found is None:
            return None
        year, month, day, hour, minute, second, sign, tz_hours, tz_minutes = found.groups()
    try:
        stamp = datetime(int(year), int(month), int(day), int(hour), int(minute),
                         int(second), tzinfo=UTC)
    except ValueError:  # 31 February: feedparser's other parsers have their say
        return None
    if sign is not None:
        offset = timedelta(hours=int(tz_hours), minutes=int(tz_minutes))
        stamp = stamp - offset if sign == "+" else stamp + offset
    return stamp


def _date(parsed: Any) -> datetime | None:
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError):
        return None

"""OPML: the feed list format every feed reader exports. Pure: bytes in, feeds out."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .errors import FeedError

__all__ = ["OpmlFeed", "parse_opml"]


@dataclass(frozen=True)
class OpmlFeed:
    url: str
    title: str | None


def parse_opml(data: bytes) -> list[OpmlFeed]:
    """Every ``<outline xmlUrl=…>`` in document order, nested folders included.

    Raises FeedError naming the line when the document is not well-formed OPML.
    """
    if b"<!DOCTYPE" in data[:4096].upper() or b"<!ENTITY" in data.upper():
        raise FeedError("OPML with a DOCTYPE or entities is refused")
    parser = ET.XMLPullParser(events=("start",))
    feeds: list[OpmlFeed] = []
    root_seen = False
    try:
        parser.feed(data)
        parser.close()
        for _event, elem in parser.read_events():
            if not root_seen:
                root_seen = True
                if elem.tag != "opml":
                    raise FeedError(f"not OPML: the root element is <{elem.tag}>, not <opml>")
            url = elem.get("xmlUrl") if elem.tag == "outline" else None
            if url:
                title = elem.get("title") or elem.get("text")
                feeds.append(OpmlFeed(url.strip(), title))
    except ET.ParseError as exc:
        line, col = exc.position
        raise FeedError(f"line {line}, column {col + 1}: not well-formed XML") from exc
    if not root_seen:
        raise FeedError("empty document")
    return feeds

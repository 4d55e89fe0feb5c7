"""OPML: the feed list format every feed reader exports. Pure: bytes in, feeds out."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .errors import FeedError
from .xmlguard import refuse_entities

__all__ = ["OpmlFeed", "parse_opml"]


@dataclass(frozen=True)
class OpmlFeed:
    url: str
    title: str | None


def parse_opml(data: bytes) -> list[OpmlFeed]:
    """Every ``<outline xmlUrl=…>`` in document order, nested folders included.

    Raises FeedError naming the line when the document is not well-formed OPML.
    """
    if b"<!DOCTYPE" in data[:4096].upper():
        raise FeedError("OPML with a DOCTYPE or entities is refused")
    try:
        refuse_entities(data)  # in UTF-16 and UTF-32 too: ElementTree would expand them
    except FeedError as exc:
        raise FeedError("OPML with a DOCTYPE or entities is refused") from exc
    if not data.strip():
        raise FeedError("empty document")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line, col = exc.position
        raise FeedError(f"line {line}, column {col + 1}: not well-formed XML") from exc
    if root.tag != "opml":
        raise FeedError(f"not OPML: the root element is <{root.tag}>, not <opml>")
    return [
        OpmlFeed(url.strip(), o.get("title") or o.get("text"))
        for o in root.iter("outline")
        if (url := o.get("xmlUrl"))
    ]

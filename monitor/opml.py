"""OPML: the feed list format every feed reader exports. Pure: bytes in, feeds out."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .errors import FeedError
from .xmlguard import refuse_entities

__all__ = ["OpmlFeed", "parse_opml", "write_opml"]


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


def write_opml(feeds: list[OpmlFeed], title: str = "feeds") -> bytes:
    """An OPML 2.0 document listing ``feeds``; ``parse_opml`` reads it back unchanged."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for f in feeds:
        attrs = {"type": "rss", "xmlUrl": f.url}
        if f.title:
            attrs["text"] = attrs["title"] = f.title
        else:
            attrs["text"] = f.url
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"

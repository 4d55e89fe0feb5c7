"""A fast reader for the common, well-formed feed: plain RSS 2.0, Atom 1.0 and RSS 1.0
(RDF) made only of the elements listed here. Pure: no I/O.

feedparser takes about 13 ms for a feed of 20 items; most of it is its lenient,
pure-Python machinery, which a well-formed feed does not need. This reader builds the
tree with expat (C, via ElementTree) and reads the few elements monitor uses, into the
same shape feedparser returns (``feed`` and ``entries`` mappings with the same keys),
so ``parse.py`` turns both into entries the same way.

It answers only for documents it fully understands, and ``None`` for anything else,
which feedparser then parses as before: any element, namespace or attribute not
listed below, a DOCTYPE, an encoding other than UTF-8, a content type feedparser would
warn about, a relative or unusual link, XHTML content, authors. Its
output is checked equal to feedparser's on the test corpora (tests/test_fastfeed.py).
``refuse_entities`` has run before it, as before feedparser; it runs in the same parse
worker, under the same deadline and memory cap.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

__all__ = ["fast_parse"]

_ATOM = "{http://www.w3.org/2005/Atom}"
_RSS1 = "{http://purl.org/rss/1.0/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"

# Content types feedparser reads without a warning (its NonXMLContentType "bozo").
_XML_TYPES = frozenset({"", "application/xml", "text/xml", "application/rss+xml",
                        "application/atom+xml", "application/rdf+xml"})
_DECL_RE = re.compile(rb"""\A<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_ABSOLUTE_RE = re.compile(r"\Ahttps?://[!#-;=?-~]+\Z")  # printable ASCII, no space, <, >
_RELATIVE_RE = re.compile(r"\A[A-Za-z0-9_~-][A-Za-z0-9._~/-]*\Z")  # a path, no scheme
_TEXT_TYPES = {None: "text", "text": "text", "html": "html"}

_RSS_CHANNEL = frozenset({"title", "link", "description", "ttl", "language",
                          "lastBuildDate", "pubDate", "generator", "item"})
_RSS_ITEM = frozenset({"title", "link", "guid", "description", "pubDate"})
_ATOM_FEED = frozenset({"title", "id", "updated", "link", "subtitle", "entry"})
_ATOM_ENTRY = frozenset({"id", "title", "link", "updated", "published", "content",
                         "summary"})
_RSS1_CHANNEL = frozenset({"title", "link", "description"})
_RSS1_ITEM = frozenset({"title", "link", "description"})
# The same, as ElementTree writes the tags: with their namespace.
_ATOM_FEED_TAGS = frozenset(_ATOM + t for t in _ATOM_FEED)
_ATOM_ENTRY_TAGS = frozenset(_ATOM + t for t in _ATOM_ENTRY)
_RSS1_CHANNEL_TAGS = frozenset(_RSS1 + t for t in _RSS1_CHANNEL)
_RSS1_ITEM_TAGS = frozenset(_RSS1 + t for t in _RSS1_ITEM)


class _Unusual(Exception):
    """The document has something this reader does not handle: feedparser's turn."""


def fast_parse(body: bytes, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """``{"feed": {...}, "entries": [{...}, ...]}`` with feedparser's keys (dates as
    strings under ``published``/``updated``), or None when feedparser must parse it."""
    if not _plain_utf8_xml(body, headers):
        return None
    try:
        root = ET.fromstring(body)
        if root.tag == "rss" and set(root.attrib) <= {"version"}:
            return _rss(root)
        if root.tag == _ATOM + "feed":
            return _atom(root)
        if root.tag == _RDF + "RDF" and not root.attrib:
            return _rdf(root)
    except (ET.ParseError, _Unusual, ValueError):
        return None
    return None


def _plain_utf8_xml(body: bytes, headers: Mapping[str, str]) -> bool:
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    mime, _, params = content_type.partition(";")
    if mime.strip().lower() not in _XML_TYPES:
        return False
    charset = params.strip().lower()
    if charset and charset.replace(" ", "") not in ("charset=utf-8", 'charset="utf-8"'):
        return False
    if not body.startswith(b"<") or b"<!DOCTYPE" in body or b"<!doctype" in body:
        return False
    if body.startswith(b"<?xml"):
        found = _DECL_RE.match(body)
        if found is not None and found.group(1).lower() not in (b"utf-8", b"utf8"):
            return False
    # Bytes that are not UTF-8 anywhere (text, attribute, comment, CDATA) are expat's
    # ParseError: feedparser's turn, as when this checked them by decoding the body.
    return True


def _text(el: ET.Element) -> str:
    """The text of an element that must hold text only."""
    if len(el) or (el.attrib and set(el.attrib) - {"type"}):
        raise _Unusual
    return el.text or ""


def _only(el: ET.Element, allowed: frozenset[str], once: bool = False) -> None:
    """``el``'s children are all of ``allowed`` (tags with their namespace); with
    ``once``, no two alike."""
    tags = {child.tag for child in el}
    if not tags <= allowed or (once and len(tags) != len(el)):
        raise _Unusual


def _absolute(url: str) -> str:
    url = url.strip()
    if not _ABSOLUTE_RE.match(url):
        raise _Unusual
    return url


def _once(el: ET.Element, tag: str) -> ET.Element | None:
    found = el.findall(tag)
    if len(found) > 1:
        raise _Unusual
    return found[0] if found else None


def _rss(root: ET.Element) -> dict[str, Any]:
    if len(root) != 1 or root[0].tag != "channel" or root[0].attrib:
        raise _Unusual
    channel = root[0]
    _only(channel, _RSS_CHANNEL)  # no namespace: a namespaced tag starts with "{"
    feed: dict[str, Any] = {}
    for child in channel:
        if child.tag in ("title", "link", "ttl") and child.tag in feed:
            raise _Unusual
        if child.tag == "title":
            feed["title"] = _text(child).strip()
        elif child.tag == "link":
            feed["link"] = _absolute(_text(child))
        elif child.tag == "ttl":
            feed["ttl"] = _text(child).strip()
        elif child.tag != "item":
            _text(child)
    entries = []
    for item in channel.iter("item"):
        if item.attrib:
            raise _Unusual
        _only(item, _RSS_ITEM, once=True)
        entry: dict[str, Any] = {}
        for child in item:
            if child.tag == "guid":
                permalink = child.attrib.get("isPermaLink", "true")
                if set(child.attrib) - {"isPermaLink"} or len(child) or permalink not in (
                        "true", "false"):
                    raise _Unusual
                entry["id"] = (child.text or "").strip()
                if permalink == "true":  # feedparser: the link, unless <link> gives one
                    entry["permalink"] = _absolute(entry["id"])
            elif child.tag == "link":
                entry["link"] = _absolute(_text(child))
            elif child.tag == "description":
                entry["summary"] = _text(child)
            elif child.tag == "pubDate":
                entry["published"] = _text(child).strip()
            else:
                entry["title"] = _text(child)
        permalink = entry.pop("permalink", None)
        if permalink is not None and "link" not in entry:
            entry["link"] = permalink
        entries.append(entry)
    return {"feed": feed, "entries": entries, "version": "rss20"}


def _atom_text(el: ET.Element) -> str:
    if len(el) or set(el.attrib) - {"type"} or el.get("type") not in _TEXT_TYPES:
        raise _Unusual
    return el.text or ""


def _atom_link(el: ET.Element, base: str | None) -> tuple[str, str]:
    if len(el) or el.text or set(el.attrib) - {"rel", "href", "type"}:
        raise _Unusual
    href = el.get("href", "").strip()
    if not href:
        raise _Unusual
    if not href.startswith(("http://", "https://")):
        if (base is None or not _RELATIVE_RE.match(href)
                or any(part in (".", "..") for part in href.split("/"))):
            raise _Unusual  # only simple relative paths under an absolute xml:base
        href = base + href
    return el.get("rel", "alternate"), _absolute(href)


def _atom_base(el: ET.Element, inherited: str | None) -> str | None:
    base = el.get(_XML_BASE)
    if base is None:
        return inherited
    if inherited is not None or not base.endswith("/"):
        raise _Unusual  # nested or file-like bases: feedparser's urljoin rules
    return _absolute(base)


def _atom(root: ET.Element) -> dict[str, Any]:
    if set(root.attrib) - {_XML_BASE}:
        raise _Unusual
    base = _atom_base(root, None)
    _only(root, _ATOM_FEED_TAGS)
    feed: dict[str, Any] = {}
    links: list[dict[str, str]] = []
    entries = []
    for child in root:
        tag = child.tag[len(_ATOM):]
        if tag in ("title", "id") and tag in feed:
            raise _Unusual
        if tag == "title":
            feed["title"] = _atom_text(child).strip()
        elif tag == "id":
            feed["id"] = _text(child).strip()
        elif tag == "link":
            rel, href = _atom_link(child, base)
            if rel not in ("alternate", "self", "hub") or (rel == "alternate" and "link" in feed):
                raise _Unusual
            links.append({"rel": rel, "href": href})
            if rel == "alternate":
                feed["link"] = href
        elif tag == "entry":
            entries.append(_atom_entry(child, base))
        elif tag == "subtitle":
            _atom_text(child)
        else:
            _text(child)
    if links:
        feed["links"] = links
    if "link" not in feed and "id" in feed:
        feed["link"] = feed["id"]  # feedparser: an id stands for the missing link
    return {"feed": feed, "entries": entries, "version": "atom10"}


def _atom_entry(el: ET.Element, inherited: str | None) -> dict[str, Any]:
    if set(el.attrib) - {_XML_BASE}:
        raise _Unusual
    base = _atom_base(el, inherited)
    _only(el, _ATOM_ENTRY_TAGS, once=True)
    entry: dict[str, Any] = {}
    for child in el:
        tag = child.tag[len(_ATOM):]
        if tag == "id":
            entry["id"] = _text(child).strip()
        elif tag == "link":
            rel, href = _atom_link(child, base)
            if rel != "alternate" or "link" in entry:
                raise _Unusual
            entry["link"] = href
        elif tag == "title":
            entry["title"] = _atom_text(child)
        elif tag in ("updated", "published"):
            entry[tag] = _text(child).strip()
        elif tag == "summary":
            entry["summary"] = _atom_text(child)
        else:
            entry["content"] = [{"value": _atom_text(child)}]
    if "summary" in entry and "content" in entry:
        raise _Unusual
    if "content" in entry:
        entry["summary"] = entry["content"][0]["value"]  # feedparser copies it
    if "link" not in entry and "id" in entry:
        entry["link"] = entry["id"]
    return entry


def _rdf(root: ET.Element) -> dict[str, Any]:
    feed: dict[str, Any] = {}
    entries = []
    for child in root:
        if child.tag == _RSS1 + "channel":
            if feed or set(child.attrib) - {_RDF + "about"}:
                raise _Unusual
            _only(child, _RSS1_CHANNEL_TAGS, once=True)
            for part in child:
                if part.tag == _RSS1 + "title":
                    feed["title"] = _text(part).strip()
                elif part.tag == _RSS1 + "link":
                    feed["link"] = _absolute(_text(part))
                else:
                    _text(part)
        elif child.tag == _RSS1 + "item":
            if set(child.attrib) != {_RDF + "about"}:
                raise _Unusual
            _only(child, _RSS1_ITEM_TAGS, once=True)
            entry: dict[str, Any] = {"id": _absolute(child.attrib[_RDF + "about"])}
            for part in child:
                tag = part.tag[len(_RSS1):]
                key = "summary" if tag == "description" else tag
                entry[key] = _absolute(_text(part)) if tag == "link" else _text(part)
            entries.append(entry)
        else:
            raise _Unusual
    if not feed:
        raise _Unusual
    return {"feed": feed, "entries": entries, "version": "rss10"}

"""Item identity. Pure.

An item is stored once per feed. Its identity is its guid, else its link, else a hash
of its content; the stored key is a SHA-256 of that, so keys have one length.
"""

from __future__ import annotations

import hashlib

from .parse import Entry

__all__ = ["content_hash", "identity"]


def content_hash(entry: Entry) -> str:
    """A hash of what a reader sees: title, summary and content."""
    h = hashlib.sha256()
    for part in (entry.title, entry.summary, entry.content):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def identity(entry: Entry) -> str:
    """The key an item is known by within its feed."""
    if entry.guid:
        basis = "guid:" + entry.guid
    elif entry.link:
        basis = "link:" + entry.link
    else:
        basis = "hash:" + content_hash(entry)
    return hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()

"""Snippets: a short window of an item's text around the words that fired. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .engine import Document
from .watchlist import TermHit

__all__ = ["Snippet", "snippet"]

_PREFERRED = ("summary", "content", "title")


@dataclass(frozen=True)
class Snippet:
    """Text with ``marks``: (start, end) offsets of the matched words within it."""

    text: str
    marks: tuple[tuple[int, int], ...]

    def render(self, open_mark: str = "**", close_mark: str = "**") -> str:
        """The snippet with each mark wrapped, e.g. in ``**bold**``."""
        out, last = [], 0
        for start, end in self.marks:
            out += [self.text[last:start], open_mark, self.text[start:end], close_mark]
            last = end
        out.append(self.text[last:])
        return "".join(out)


def snippet(doc: Document, hits: Iterable[TermHit], width: int = 220) -> Snippet:
    """A window of about ``width`` characters around the first hit in the body
    (summary, then content, then title), with every hit inside it marked."""
    hits = list(hits)
    for name in _PREFERRED:
        in_field = sorted((h for h in hits if h.field == name), key=lambda h: h.start)
        if in_field and name in doc.fields:
            return _window(doc.fields[name].text, in_field, width)
    return Snippet("", ())


def _window(text: str, hits: list[TermHit], width: int) -> Snippet:
    first = hits[0]
    start = max(0, first.start - width // 3)
    end = min(len(text), start + width)
    if start > 0:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < first.start else start
    if end < len(text):
        space = text.rfind(" ", first.end, end)
        end = space if space > 0 else end
    body = text[start:end].replace("\n", " ")
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    shift = len(prefix) - start
    marks: list[tuple[int, int]] = []
    for h in hits:
        if h.start < start or h.end > end:
            continue
        if marks and h.start + shift <= marks[-1][1]:
            marks[-1] = (marks[-1][0], max(marks[-1][1], h.end + shift))
        else:
            marks.append((h.start + shift, h.end + shift))
    return Snippet(prefix + body + suffix, tuple(marks))

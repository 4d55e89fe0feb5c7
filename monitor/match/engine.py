"""Evaluate a parsed rule against a document. Pure; no I/O.

A rule evaluates to ``None`` (no match) or to the list of spans that made it true
(empty only for a satisfied ``NOT``). Spans are token ranges within one field, so an
alert can say exactly which words fired.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from ..text import (
    Token,
    WordOffsets,
    cased_sequence,
    clean,
    clitic_forms,
    joined_keys,
    key_of,
    tokenize,
)
from .query import ActorRef, And, Near, Node, Not, Or, Term
from .scan import RunOffsets, latin1_fold, squeeze_fold

__all__ = ["DEFAULT_FIELDS", "Document", "FieldText", "Span", "evaluate"]

DEFAULT_FIELDS: tuple[str, ...] = ("title", "summary", "content")
"""The fields a term without a scope looks in."""


@dataclass(frozen=True, slots=True)
class Span:
    """Tokens ``start`` (inclusive) to ``end`` (exclusive) of one field."""

    field: str
    start: int
    end: int


_T = TypeVar("_T")


class _lazy(Generic[_T]):
    """``functools.cached_property`` without its lock (Python 3.12 dropped it too): the
    first read computes the value into the instance ``__dict__``, which answers every
    later read. Each field reads four or five of these once per item, and the lock
    cost more than some of the values."""

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    @overload
    def __get__(self, obj: None, owner: type) -> _lazy[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> _T: ...
    def __get__(self, obj: object, owner: type) -> _T | _lazy[_T]:
        if obj is None:
            return self
        value: _T = self.func(obj)
        obj.__dict__[self.name] = value
        return value


@dataclass(frozen=True)
class FieldText:
    """One field's cleaned text, read on demand.

    ``scan`` is the field's folded words joined by single spaces: the prefilter scans
    it, and a word or phrase is found in it as the substring ``" w1 w2 "``; the number
    of spaces before it is its word position. So most items are matched without ever
    building a list of their words. Offsets into ``text`` are found only for the words
    that fired. (``_lazy`` writes the instance ``__dict__`` directly, so it works on a
    frozen dataclass.)
    """

    text: str

    @classmethod
    def of(cls, text: str) -> FieldText:
        """From plain text: ``clean`` it. A Latin-1 text without a soft hyphen is clean
        already, and its fold, which says so, is kept for the scan."""
        folded = latin1_fold(text)
        if folded is None or "\u00ad" in text:
            return cls(clean(text))
        ft = cls(text)
        ft.__dict__["_latin1"] = folded
        return ft

    @_lazy
    def _latin1(self) -> bytes | None:
        """The text folded in one piece (match/scan.py), or None for the general path."""
        return latin1_fold(self.text)

    @_lazy
    def _squeezed(self) -> bytes | None:
        """``scan`` as Latin-1 bytes, on the fast path; None on the general path."""
        folded = self._latin1
        return None if folded is None else squeeze_fold(folded)

    @_lazy
    def scan(self) -> str:
        """The folded words, separated by single spaces."""
        keys = self._squeezed
        return joined_keys(self.text) if keys is None else keys.decode("latin-1")

    @_lazy
    def padded(self) -> str:
        """``scan`` between two spaces: every word is " key " in it."""
        return f" {self.scan} "

    @_lazy
    def padded_bytes(self) -> tuple[bool, bytes]:
        """``padded`` encoded for the prefilter: (True, Latin-1 bytes) on the fast path,
        (False, UTF-8 bytes) on the general one."""
        keys = self._squeezed
        if keys is None:
            return False, self.padded.encode("utf-8")
        return True, b" " + keys + b" "

    @_lazy
    def cased_seq(self) -> tuple[str, ...]:
        """The cased form of each word, in order (``tokens[i].cased``)."""
        return cased_sequence(self.text)

    @_lazy
    def offsets(self) -> WordOffsets | RunOffsets:
        """``offsets[i]``: the (start, end) of word i, to report the words that fired."""
        folded = self._latin1
        return WordOffsets(self.text) if folded is None else RunOffsets(folded)

    @property
    def tokens(self) -> tuple[Token, ...]:
        """Every word with its offsets and folded forms (for tools; matching does
        without)."""
        return tuple(tokenize(self.text))

    @_lazy
    def _found(self) -> dict[tuple[tuple[str, ...], bool, bool], tuple[int, ...]]:
        return {}

    def positions(self, words: tuple[str, ...], cased: bool = False,
                  prefix: bool = False) -> tuple[int, ...]:
        """Word positions where ``words`` occur in a row: keys, or the cased forms if
        ``cased``; with ``prefix``, the last word need only begin a word."""
        found = self._found.get((words, cased, prefix))
        if found is None and not cased and not _latin1(words[0]) and self._squeezed:
            # A field on the fast path is scanned as Latin-1: a key with another letter
            # (an Arabic word, and so each of its clitic forms) is in none of its words.
            found = self._found[words, cased, prefix] = ()
        if found is None:
            found = self._positions(words, cased, prefix)
            forms = clitic_forms(words[0])
            if forms:  # an Arabic first word, perhaps with a joined و, ب, ال …
                found = tuple(sorted({*found, *(
                    i for form in forms
                    for i in self._positions((form, *words[1:]), cased, prefix))}))
            self._found[words, cased, prefix] = found
        return found

    def _positions(self, words: tuple[str, ...], cased: bool,
                   prefix: bool) -> tuple[int, ...]:
        if cased:
            return _cased_positions(self, words)
        return _substring_positions(self.padded, " " + " ".join(words)
                                    + ("" if prefix else " "))


def _latin1(word: str) -> bool:
    return word.isascii() or max(word) <= "\xff"


def _substring_positions(padded: str, needle: str) -> tuple[int, ...]:
    """Word positions of ``needle`` (which starts with a space) in ``padded``."""
    out = []
    at = padded.find(needle)
    counted, spaces = 0, 0
    while at >= 0:
        spaces += padded.count(" ", counted, at)
        counted = at
        out.append(spaces)
        at = padded.find(needle, at + 1)  # phrases may overlap: "a a" in "a a a"
    return tuple(out)


def _cased_positions(ft: FieldText, words: tuple[str, ...]) -> tuple[int, ...]:
    if f" {' '.join(key_of(w) for w in words)} " not in ft.padded:
        return ()
    seq, n = ft.cased_seq, len(words)
    return tuple(i for i in range(len(seq) - n + 1) if seq[i : i + n] == words)


@dataclass(frozen=True)
class Document:
    """The plain-text fields of an item, ready to match. Build with ``Document.of``."""

    fields: Mapping[str, FieldText] = field(default_factory=dict)

    @classmethod
    def of(cls, **texts: str | None) -> Document:
        """From plain text per field (markup already stripped); empty fields are skipped."""
        return cls({name: FieldText.of(t) for name, t in texts.items() if t})


def _term_spans(term: Term, doc: Document, actor_field: str | None) -> list[Span]:
    scope = term.field or actor_field
    names: Iterable[str] = (scope,) if scope else DEFAULT_FIELDS
    spans: list[Span] = []
    for name in names:
        ft = doc.fields.get(name)
        if ft is None:
            continue
        n = len(term.words)
        spans.extend(Span(name, i, i + n)
                     for i in ft.positions(term.words, term.case_sensitive, term.prefix))
    return spans


def _near(left: list[Span], right: list[Span], distance: int, ordered: bool) -> list[Span]:
    """Spans of ``left`` and ``right`` with at most ``distance`` words between them
    (``left`` first if ``ordered``). Sorted positions and bisection: a long item with a
    common word on each side costs n log n, not n × m."""
    out: dict[Span, None] = {}
    right_starts = _sorted_by_field(right, "start")
    right_ends = _sorted_by_field(right, "end")
    left_starts = _sorted_by_field(left, "start")
    left_ends = _sorted_by_field(left, "end")
    for a in left:  # a right span starts within distance after a, or ends before it
        if (_any_in(right_starts.get(a.field), a.end, a.end + distance)
                or (not ordered
                    and _any_in(right_ends.get(a.field), a.start - distance, a.start))):
            out[a] = None
    for b in right:  # a left span ends within distance before b, or starts after it
        if (_any_in(left_ends.get(b.field), b.start - distance, b.start)
                or (not ordered
                    and _any_in(left_starts.get(b.field), b.end, b.end + distance))):
            out[b] = None
    return list(out)


def _sorted_by_field(spans: list[Span], attr: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for sp in spans:
        out.setdefault(sp.field, []).append(getattr(sp, attr))
    for values in out.values():
        values.sort()
    return out


def _any_in(values: list[int] | None, low: int, high: int) -> bool:
    """Whether sorted ``values`` hold one in [low, high]."""
    if not values:
        return False
    i = bisect_left(values, low)
    return i < len(values) and values[i] <= high


def evaluate(
    node: Node,
    doc: Document,
    actors: Mapping[str, tuple[Term, ...]],
    actor_field: str | None = None,
) -> list[Span] | None:
    """The spans that make ``node`` true in ``doc``, or None if it is false.

    ``actors`` maps an actor's slug to the terms of its name and aliases.
    """
    if isinstance(node, Term):
        return _term_spans(node, doc, actor_field) or None
    if isinstance(node, ActorRef):
        spans = [
            s for t in actors[node.slug] for s in _term_spans(t, doc, node.field or actor_field)
        ]
        return spans or None
    if isinstance(node, Not):
        return [] if evaluate(node.operand, doc, actors, actor_field) is None else None
    if isinstance(node, And):
        spans = []
        for o in node.operands:
            got = evaluate(o, doc, actors, actor_field)
            if got is None:
                return None
            spans.extend(got)
        return spans
    if isinstance(node, Or):
        spans = []
        hit = False
        for o in node.operands:
            got = evaluate(o, doc, actors, actor_field)
            if got is not None:
                hit = True
                spans.extend(got)
        return spans if hit else None
    if isinstance(node, Near):
        left = evaluate(node.left, doc, actors, actor_field)
        right = evaluate(node.right, doc, actors, actor_field) if left else None
        if not left or not right:
            return None
        return _near(left, right, node.distance, node.ordered) or None
    raise TypeError(f"not a query node: {node!r}")

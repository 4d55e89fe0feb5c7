"""Evaluate a parsed rule against a document. Pure; no I/O.

A rule evaluates to ``None`` (no match) or to the list of spans that made it true
(empty only for a satisfied ``NOT``). Spans are token ranges within one field, so an
alert can say exactly which words fired.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from ..text import (
    Token,
    WordOffsets,
    cased_sequence,
    clean,
    joined_keys,
    key_of,
    key_sequence,
    tokenize,
)
from .query import ActorRef, And, Near, Node, Not, Or, Term

__all__ = ["DEFAULT_FIELDS", "Document", "FieldText", "Span", "evaluate"]

DEFAULT_FIELDS: tuple[str, ...] = ("title", "summary", "content")
"""The fields a term without a scope looks in."""


@dataclass(frozen=True, slots=True)
class Span:
    """Tokens ``start`` (inclusive) to ``end`` (exclusive) of one field."""

    field: str
    start: int
    end: int


@dataclass(frozen=True)
class FieldText:
    """One field's cleaned text; its tokens and indexes are computed on first use.

    A prefilter asks only for ``keys`` (the set of folded words, cheap); tokens with
    offsets and the position indexes are built only for an item a rule may match.
    (``cached_property`` writes the instance ``__dict__`` directly, so it works on a
    frozen dataclass.)
    """

    text: str

    @classmethod
    def of(cls, text: str) -> FieldText:
        return cls(clean(text))

    @cached_property
    def scan(self) -> str:
        """The folded words, space-separated: what the prefilter scans."""
        return joined_keys(self.text)

    @cached_property
    def keys(self) -> frozenset[str]:
        """Every distinct folded word of the field."""
        return frozenset(self.scan.split())

    @cached_property
    def seq(self) -> tuple[str, ...]:
        """The folded key of each word, in order (``tokens[i].key``)."""
        return key_sequence(self.text)

    @cached_property
    def cased_seq(self) -> tuple[str, ...]:
        """The cased form of each word, in order (``tokens[i].cased``)."""
        return cased_sequence(self.text)

    @cached_property
    def offsets(self) -> WordOffsets:
        """``offsets[i]``: the (start, end) of word i, to report the words that fired."""
        return WordOffsets(self.text)

    @property
    def tokens(self) -> tuple[Token, ...]:
        """Every word with its offsets and folded forms (for tools; matching does
        without)."""
        return tuple(tokenize(self.text))

    @cached_property
    def _found(self) -> dict[tuple[str, bool], tuple[int, ...]]:
        return {}

    def positions(self, word: str, cased: bool = False) -> tuple[int, ...]:
        """Positions of the words whose key (or, if ``cased``, cased form) is ``word``."""
        found = self._found.get((word, cased))
        if found is None:
            found = ()
            if (key_of(word) if cased else word) in self.keys:
                found = _indexes(self.cased_seq if cased else self.seq, word)
            self._found[word, cased] = found
        return found

    def prefixed(self, prefix: str) -> tuple[int, ...]:
        """Positions of the words whose key begins with ``prefix``."""
        if not any(k.startswith(prefix) for k in self.keys):
            return ()
        return tuple(i for i, k in enumerate(self.seq) if k.startswith(prefix))


def _indexes(seq: tuple[str, ...], word: str) -> tuple[int, ...]:
    out, i = [], -1
    try:
        while True:
            i = seq.index(word, i + 1)
            out.append(i)
    except ValueError:
        return tuple(out)


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
    first, rest = term.words[0], term.words[1:]
    for name in names:
        ft = doc.fields.get(name)
        if ft is None:
            continue
        starts = ft.prefixed(first) if term.prefix else ft.positions(first, term.case_sensitive)
        for i in starts:
            if rest and not _follows(ft.cased_seq if term.case_sensitive else ft.seq, i, rest):
                continue
            spans.append(Span(name, i, i + len(term.words)))
    return spans


def _follows(seq: tuple[str, ...], i: int, rest: tuple[str, ...]) -> bool:
    return seq[i + 1 : i + 1 + len(rest)] == rest


def _near(left: list[Span], right: list[Span], distance: int, ordered: bool) -> list[Span]:
    """Spans of ``left`` and ``right`` with at most ``distance`` words between them."""
    out: dict[Span, None] = {}
    for a in left:
        for b in right:
            if a.field != b.field or a == b:
                continue
            if a.end <= b.start:
                gap = b.start - a.end
            elif not ordered and b.end <= a.start:
                gap = a.start - b.end
            else:
                continue
            if gap <= distance:
                out[a] = None
                out[b] = None
    return list(out)


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

"""Evaluate a parsed rule against a document. Pure; no I/O.

A rule evaluates to ``None`` (no match) or to the list of spans that made it true
(empty only for a satisfied ``NOT``). Spans are token ranges within one field, so an
alert can say exactly which words fired.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from ..text import Token, clean, tokenize, word_forms, words
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
    def keys(self) -> frozenset[str]:
        """Every distinct folded word of the field."""
        forms = map(word_forms, set(words(self.text)))
        return frozenset(key for key, cased in forms if cased)

    @cached_property
    def tokens(self) -> tuple[Token, ...]:
        return tuple(tokenize(self.text))

    @cached_property
    def index(self) -> Mapping[str, tuple[int, ...]]:
        """Folded key -> positions of its tokens."""
        return _positions(t.key for t in self.tokens)

    @cached_property
    def cased_index(self) -> Mapping[str, tuple[int, ...]]:
        """Folded but cased form -> positions of its tokens."""
        return _positions(t.cased for t in self.tokens)


def _positions(keys: Iterable[str]) -> dict[str, tuple[int, ...]]:
    index: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        index.setdefault(key, []).append(i)
    return {k: tuple(v) for k, v in index.items()}


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
        if term.prefix:
            starts: Iterable[int] = (
                i for i, tok in enumerate(ft.tokens) if tok.key.startswith(first)
            )
        else:
            starts = (ft.cased_index if term.case_sensitive else ft.index).get(first, ())
        for i in starts:
            if rest and not _follows(ft.tokens, i, rest, term.case_sensitive):
                continue
            spans.append(Span(name, i, i + len(term.words)))
    return spans


def _follows(tokens: tuple[Token, ...], i: int, rest: tuple[str, ...], cased: bool) -> bool:
    if i + len(rest) >= len(tokens):
        return False
    return all(
        (tokens[i + 1 + j].cased if cased else tokens[i + 1 + j].key) == word
        for j, word in enumerate(rest)
    )


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

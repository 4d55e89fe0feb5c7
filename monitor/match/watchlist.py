"""Watchlists: actors with aliases and rules, compiled once, matched many times. Pure.

A watchlist matches an item when any of its rules does; the match records every rule
that fired and the exact words that made it fire.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import QueryError
from .engine import Document, Span, evaluate
from .query import Node, Term, actors_in, make_term, parse

__all__ = [
    "EVERY",
    "ActorSpec",
    "AliasSpec",
    "Rule",
    "RuleHit",
    "TermHit",
    "Watchlist",
    "WatchlistMatch",
    "WatchlistSpec",
    "compile_watchlist",
    "slugify",
]

EVERY = "*"
"""In a channel's ``watchlists``: every watchlist in force, those made in the console or
with the CLI included."""


@dataclass(frozen=True)
class AliasSpec:
    text: str
    case_sensitive: bool = False


@dataclass(frozen=True)
class ActorSpec:
    name: str
    slug: str
    aliases: tuple[AliasSpec, ...] = ()


@dataclass(frozen=True)
class WatchlistSpec:
    """A watchlist as written in the YAML file, before compilation."""

    name: str
    rules: tuple[str, ...]
    actors: tuple[ActorSpec, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class TermHit:
    """Words that fired: the field, character offsets in its cleaned text, and the text."""

    field: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class RuleHit:
    index: int
    rule: str
    terms: tuple[TermHit, ...]


@dataclass(frozen=True)
class WatchlistMatch:
    watchlist: str
    rules: tuple[RuleHit, ...]

    @property
    def terms(self) -> tuple[TermHit, ...]:
        """Every distinct hit of every rule, in field and text order."""
        seen = {t for r in self.rules for t in r.terms}
        return tuple(sorted(seen, key=lambda t: (t.field, t.start, t.end)))


_SLUG_RE = re.compile(r"[^\w]+")


def slugify(name: str) -> str:
    """``Khalifa Haftar`` -> ``khalifa-haftar``."""
    return _SLUG_RE.sub("-", name.casefold()).strip("-")


@dataclass(frozen=True)
class Rule:
    """One compiled rule: its place in the watchlist, its text and its tree."""

    index: int
    text: str
    node: Node


@dataclass(frozen=True)
class Watchlist:
    """A compiled watchlist. Build with ``compile_watchlist``."""

    spec: WatchlistSpec
    actors: Mapping[str, tuple[Term, ...]]
    rules: tuple[Rule, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    def match(self, doc: Document) -> WatchlistMatch | None:
        """Evaluate every rule: the plain path, and the reference for ``Matcher``."""
        return self.match_rules(doc, self.rules)

    def match_rules(self, doc: Document, rules: Iterable[Rule]) -> WatchlistMatch | None:
        """Evaluate only ``rules`` (some of this watchlist's, in order)."""
        hits = []
        for rule in rules:
            spans = evaluate(rule.node, doc, self.actors)
            if spans is not None:
                hits.append(RuleHit(rule.index, rule.text, _term_hits(doc, spans)))
        return WatchlistMatch(self.name, tuple(hits)) if hits else None


def _term_hits(doc: Document, spans: list[Span]) -> tuple[TermHit, ...]:
    out: dict[TermHit, None] = {}
    for s in spans:
        ft = doc.fields[s.field]
        start, end = ft.offsets[s.start][0], ft.offsets[s.end - 1][1]
        out[TermHit(s.field, start, end, ft.text[start:end])] = None
    return tuple(sorted(out, key=lambda t: (t.field, t.start)))


class WatchlistError(QueryError):
    """A rule or alias that does not compile; ``where`` is its path in the watchlist."""

    def __init__(self, where: str, error: QueryError) -> None:
        self.where = where
        super().__init__(error.reason, error.column)


def compile_watchlist(spec: WatchlistSpec) -> Watchlist:
    """Compile every actor and rule, or raise WatchlistError for the first bad one.

    Use ``compile_errors`` to collect every error at once.
    """
    errors = compile_errors(spec)
    if errors:
        raise errors[0]
    return _compile(spec)


def compile_errors(spec: WatchlistSpec) -> list[WatchlistError]:
    """Every error in ``spec``, each with its path (``rules[2]``, ``actors[0].aliases[1]``)."""
    errors: list[WatchlistError] = []
    slugs: dict[str, int] = {}
    for i, actor in enumerate(spec.actors):
        if actor.slug in slugs:
            reason = f"actor slug '{actor.slug}' is used twice (also actors[{slugs[actor.slug]}])"
            errors.append(WatchlistError(f"actors[{i}].slug", QueryError(reason, 1)))
        slugs.setdefault(actor.slug, i)
        for j, alias in enumerate(_alias_list(actor)):
            try:
                make_term(alias.text, phrase=True, case_sensitive=alias.case_sensitive)
            except QueryError as exc:
                where = f"actors[{i}].name" if j == 0 else f"actors[{i}].aliases[{j - 1}]"
                errors.append(WatchlistError(where, exc))
    if not spec.rules:
        errors.append(WatchlistError("rules", QueryError("a watchlist needs at least one rule", 1)))
    for i, text in enumerate(spec.rules):
        try:
            node = parse(text)
            for ref in actors_in(node):
                if ref.slug not in slugs:
                    known = ", ".join(f"@{s}" for s in slugs) or "none defined"
                    raise QueryError(f"unknown actor @{ref.slug} (actors: {known})", ref.column)
        except QueryError as exc:
            errors.append(WatchlistError(f"rules[{i}]", exc))
    return errors


def _alias_list(actor: ActorSpec) -> tuple[AliasSpec, ...]:
    return (AliasSpec(actor.name), *actor.aliases)


def _compile(spec: WatchlistSpec) -> Watchlist:
    actors = {
        a.slug: tuple(
            make_term(al.text, phrase=True, case_sensitive=al.case_sensitive)
            for al in _alias_list(a)
        )
        for a in spec.actors
    }
    rules = tuple(Rule(i, text, parse(text)) for i, text in enumerate(spec.rules))
    return Watchlist(spec, actors, rules)

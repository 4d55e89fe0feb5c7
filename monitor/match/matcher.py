"""Every watchlist compiled into one matcher, with an Aho-Corasick prefilter. Pure.

A rule can only be true if one of a few words is in the item: ``Tripoli AND NOT
Lebanon`` needs ``tripoli``; ``@haftar OR Sarraj`` needs an alias's word or
``sarraj``; ``a NEAR/5 b`` needs the rarer-looking of the two. ``needs`` computes that
set of *literals* (a folded word, or a word prefix) for each rule, and one automaton
holds the literals of every rule of every watchlist. For an item, the automaton scans
each field's folded words once and names the candidate rules; only those are evaluated,
with the same evaluator as ``Watchlist.match``, so the results are the same.

The automaton is ahocorasick_rs's, run on bytes: a field on the fast path
(match/scan.py) is scanned as its Latin-1 bytes by an automaton of the literals that
Latin-1 can spell, any other field as UTF-8 by one of every literal. The scan costs
about the same for 10 rules as for 10,000: it is linear in the item's text plus the
literals that occur in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import ahocorasick_rs

from ..text import clitic_forms, key_of
from .engine import Document
from .query import ActorRef, And, Node, Not, Or, Term
from .watchlist import (
    Rule,
    Watchlist,
    WatchlistError,
    WatchlistMatch,
    WatchlistSpec,
    compile_errors,
    compile_watchlist,
)

__all__ = ["Literal", "Matcher", "compile_matcher", "needs"]


@dataclass(frozen=True, order=True)
class Literal:
    """A folded word that must occur in the item, or (``prefix``) begin one of its words."""

    key: str
    prefix: bool = False


def _term_literals(term: Term) -> frozenset[Literal]:
    first = key_of(term.words[0])
    # An Arabic first word may carry a joined conjunction or preposition.
    firsts = {Literal(f, term.prefix) for f in (first, *clitic_forms(first))}
    if term.prefix:
        return frozenset(firsts)
    # Every word of a phrase must be present; the longest is the likeliest to be rare.
    word = max(term.words, key=len)
    if word == term.words[0]:
        return frozenset(firsts)
    return frozenset({Literal(key_of(word) if term.case_sensitive else word)})


def _rarity(lits: frozenset[Literal]) -> tuple[int, int]:
    """Higher is better: long literals are rarer, and fewer alternatives select less."""
    return (min(len(lit.key) - 2 * lit.prefix for lit in lits), -len(lits))


def needs(node: Node, actors: Mapping[str, tuple[Term, ...]]) -> frozenset[Literal] | None:
    """Literals one of which must occur for ``node`` to be true; None if none must."""
    if isinstance(node, Term):
        return _term_literals(node)
    if isinstance(node, ActorRef):
        return frozenset().union(*(_term_literals(t) for t in actors[node.slug]))
    if isinstance(node, Not):
        return None
    if isinstance(node, Or):
        parts = [needs(o, actors) for o in node.operands]
        if any(p is None for p in parts):
            return None
        return frozenset().union(*(p for p in parts if p is not None))
    operands: Iterable[Node] = (
        node.operands if isinstance(node, And) else (node.left, node.right))
    known = [p for p in (needs(o, actors) for o in operands) if p is not None]
    return max(known, key=_rarity) if known else None


@dataclass(frozen=True, eq=False)
class Matcher:
    """Every watchlist's rules behind one prefilter. Build with ``Matcher.of``."""

    watchlists: tuple[Watchlist, ...]
    rules: tuple[tuple[int, Rule], ...]
    """Every rule of every watchlist as (watchlist position, rule); an id is a position."""
    always: frozenset[int]
    """Rules the prefilter cannot select (none today: a rule needs a present term)."""
    latin1: _Scanner | None
    """The literals Latin-1 can spell, for the fields on the fast path."""
    utf8: _Scanner | None
    """Every literal, for the other fields."""

    @classmethod
    def of(cls, watchlists: Sequence[Watchlist]) -> Matcher:
        rules: list[tuple[int, Rule]] = []
        selects: dict[Literal, list[int]] = {}
        always: set[int] = set()
        for w, wl in enumerate(watchlists):
            for rule in wl.rules:
                rule_id = len(rules)
                rules.append((w, rule))
                lits = needs(rule.node, wl.actors)
                if lits is None:
                    always.add(rule_id)
                    continue
                for lit in lits:
                    selects.setdefault(lit, []).append(rule_id)
        # Keys are scanned as " key1 key2 … ": a word is " key ", a prefix " key".
        keys = {(f" {lit.key}" if lit.prefix else f" {lit.key} "): tuple(ids)
                for lit, ids in selects.items()}
        latin1 = {k.encode("latin-1"): ids for k, ids in keys.items() if _latin1(k)}
        utf8 = {k.encode("utf-8"): ids for k, ids in keys.items()}
        return cls(tuple(watchlists), tuple(rules), frozenset(always),
                   _Scanner.of(latin1), _Scanner.of(utf8))

    def candidates(self, doc: Document) -> set[int]:
        """Ids of the rules that may match ``doc`` (a superset of those that do)."""
        found = set(self.always)
        for ft in doc.fields.values():  # a literal is one word: it never spans two fields
            latin1, data = ft.padded_bytes
            scanner = self.latin1 if latin1 else self.utf8
            if scanner is not None:
                ids = scanner.ids
                for index, _start, _end in scanner.automaton.find_matches_as_indexes(
                        data, overlapping=True):
                    found.update(ids[index])
        return found

    def match(self, doc: Document) -> list[WatchlistMatch]:
        """Every watchlist that matches ``doc``, in order; each as ``Watchlist.match``
        would report it."""
        by_watchlist: dict[int, list[Rule]] = {}
        for rule_id in sorted(self.candidates(doc)):
            w, rule = self.rules[rule_id]
            by_watchlist.setdefault(w, []).append(rule)
        out = []
        for w, rules in by_watchlist.items():
            m = self.watchlists[w].match_rules(doc, rules)
            if m is not None:
                out.append(m)
        return out


def _latin1(key: str) -> bool:
    try:
        key.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class _Scanner:
    """An automaton of byte keys, and the rules each key selects (by its index)."""

    automaton: ahocorasick_rs.BytesAhoCorasick
    ids: tuple[tuple[int, ...], ...]
    keys: tuple[bytes, ...]

    @classmethod
    def of(cls, keys: Mapping[bytes, tuple[int, ...]]) -> _Scanner | None:
        if not keys:
            return None
        # Standard semantics: with overlapping=True every key found, even inside another.
        return cls(ahocorasick_rs.BytesAhoCorasick(
            list(keys), matchkind=ahocorasick_rs.MatchKind.Standard),
            tuple(keys.values()), tuple(keys))

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as its keys (the automaton itself cannot be): a matcher can be sent
        to another process."""
        return _Scanner.of, (dict(zip(self.keys, self.ids, strict=True)),)


def compile_matcher(specs: Sequence[WatchlistSpec]) -> Matcher:
    """Compile every watchlist, or raise the first error and compile nothing.

    The caller swaps the returned matcher in whole, so a bad edit never half-applies:
    the matcher already in use stays until a new one compiles completely.
    """
    for spec in specs:
        errors: list[WatchlistError] = compile_errors(spec)
        if errors:
            raise errors[0]
    return Matcher.of([compile_watchlist(spec) for spec in specs])

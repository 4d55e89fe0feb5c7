"""Every watchlist compiled into one matcher, with an Aho-Corasick prefilter. Pure.

A rule can only be true if one of a few words is in the item: ``Tripoli AND NOT
Lebanon`` needs ``tripoli``; ``@haftar OR Sarraj`` needs an alias's word or
``sarraj``; ``a NEAR/5 b`` needs the rarer-looking of the two. ``needs`` computes that
set of *literals* (a folded word, or a word prefix) for each rule. ``requirements``
goes further for ``AND`` and ``NEAR``: each side's set, all of which must occur
(``"Berlin conference" AND (Liby* OR Tripoli)`` needs ``conference`` and one of
``liby…``, ``tripoli``), so a common word on one side does not select the rule. One
automaton holds the literals of every rule of every watchlist. For an item, the
automaton scans its folded words once and names the candidate rules: those whose every
set had a literal in the item. Only those are evaluated, with the same evaluator as
``Watchlist.match``, so the results are the same.

The automaton is ahocorasick_rs's, run on bytes: a field on the fast path
(match/scan.py) is scanned as its Latin-1 bytes by an automaton of the literals that
Latin-1 can spell, any other field as UTF-8 by one of every literal. The scan costs
about the same for 10 rules as for 10,000: it is linear in the item's text plus the
literals that occur in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import ahocorasick_rs

from ..text import clitic_forms, key_of
from .engine import DEFAULT_FIELDS, Document
from .query import ActorRef, And, Near, Node, Not, Or, Term
from .scan import drop_possessives, latin1_fold
from .watchlist import (
    Rule,
    Watchlist,
    WatchlistError,
    WatchlistMatch,
    WatchlistSpec,
    compile_errors,
    compile_watchlist,
)

__all__ = ["Literal", "Matcher", "compile_matcher", "fields", "needs", "requirements"]


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


def requirements(node: Node, actors: Mapping[str, tuple[Term, ...]]
                 ) -> tuple[frozenset[Literal], ...]:
    """Sets of literals each of which must have one occur for ``node`` to be true: the
    sets of both sides of an ``AND`` or a ``NEAR``, ``needs`` for anything else; none
    if nothing must occur."""
    if isinstance(node, And):
        parts: Iterable[Node] = node.operands
    elif isinstance(node, Near):
        parts = (node.left, node.right)
    else:
        one = needs(node, actors)
        return () if one is None else (one,)
    return tuple(dict.fromkeys(g for part in parts for g in requirements(part, actors)))


def fields(node: Node, actors: Mapping[str, tuple[Term, ...]],
           scope: str | None = None) -> frozenset[str]:
    """The fields ``node`` can look at: a term's own field or its actor's, else
    ``DEFAULT_FIELDS``."""
    if isinstance(node, Term):
        where = node.field or scope
        return frozenset((where,) if where else DEFAULT_FIELDS)
    if isinstance(node, ActorRef):
        return frozenset().union(*(fields(t, actors, node.field or scope)
                                   for t in actors[node.slug]))
    if isinstance(node, Not):
        return fields(node.operand, actors, scope)
    parts = node.operands if isinstance(node, (And, Or)) else (node.left, node.right)
    return frozenset().union(*(fields(p, actors, scope) for p in parts))


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
    selects: tuple[tuple[tuple[int, ...], tuple[tuple[int, int], ...]], ...] = ()
    """Per literal: the rules it selects alone, and the (rule, set) pairs of the rules
    that need several sets (candidates once each of their sets had a literal)."""
    sets: Mapping[int, int] = field(default_factory=dict)
    """How many sets of literals a rule that needs several must see."""
    scanned: tuple[str, ...] = DEFAULT_FIELDS
    """The fields some rule looks at: the only ones the prefilter scans (a literal in
    the link or the feed's title selects nothing unless a rule looks there)."""

    @classmethod
    def of(cls, watchlists: Sequence[Watchlist]) -> Matcher:
        rules: list[tuple[int, Rule]] = []
        selects: dict[Literal, tuple[list[int], list[tuple[int, int]]]] = {}
        always: set[int] = set()
        sets: dict[int, int] = {}
        scanned: set[str] = set()
        for w, wl in enumerate(watchlists):
            for rule in wl.rules:
                rule_id = len(rules)
                rules.append((w, rule))
                scanned |= fields(rule.node, wl.actors)
                required = requirements(rule.node, wl.actors)
                if not required:
                    always.add(rule_id)
                    continue
                if len(required) > 1:
                    sets[rule_id] = len(required)
                for n, lits in enumerate(required):
                    for lit in lits:
                        alone, several = selects.setdefault(lit, ([], []))
                        if len(required) == 1:
                            alone.append(rule_id)
                        else:
                            several.append((rule_id, n))
        # Keys are scanned as " key1 key2 … ": a word is " key ", a prefix " key";
        # each names its literal's position in ``selects``.
        keys = [(f" {lit.key}" if lit.prefix else f" {lit.key} ", n)
                for n, lit in enumerate(selects)]
        latin1 = {k.encode("latin-1"): n for k, n in keys if _latin1(k)}
        utf8 = {k.encode("utf-8"): n for k, n in keys}
        return cls(tuple(watchlists), tuple(rules), frozenset(always),
                   _Scanner.of(latin1), _Scanner.of(utf8),
                   tuple((tuple(alone), tuple(several)) for alone, several in selects.values()),
                   sets, tuple(sorted(scanned)))

    def candidates(self, doc: Document) -> set[int]:
        """Ids of the rules that may match ``doc`` (a superset of those that do)."""
        found = set(self.always)
        if not doc.fields:
            return found
        present: set[int] = set()  # each literal once, however often it occurs
        for name in self.scanned:  # a literal is one word: it never spans two fields
            ft = doc.fields.get(name)
            if ft is None:
                continue
            latin1, data = ft.padded_bytes
            scanner = self.latin1 if latin1 else self.utf8
            if scanner is not None:
                hits = scanner.automaton.find_matches_as_indexes(data, overlapping=True)
                present.update(map(scanner.literals.__getitem__, map(_pattern, hits)))
        return found | self._selected(present)

    def _selected(self, present: Iterable[int]) -> set[int]:
        """The rules the literals ``present`` (by position) select: those one of them
        selects alone, and those each of whose sets has one."""
        found: set[int] = set()
        seen: dict[int, set[int]] = {}
        for lit in present:
            alone, several = self.selects[lit]
            found.update(alone)
            for rule_id, n in several:
                seen.setdefault(rule_id, set()).add(n)
        found.update(rule_id for rule_id, hit in seen.items()
                     if len(hit) == self.sets[rule_id])
        return found

    def excludes(self, texts: Mapping[str, str | None]) -> bool:
        """Whether no rule can match an item of these plain-text fields (``Document.of``'s
        arguments): ``candidates`` of their ``Document`` would be empty. The fields a
        rule reads (``scanned``) are folded, joined by a space and scanned as one,
        without building the document: a literal is one word, so it occurs in the
        joined folds exactly when it occurs in a field's. Only when all of them take
        the fast path (match/scan.py); False otherwise, and the document decides."""
        if self.always:
            return False
        folds = []
        for name in self.scanned:
            text = texts.get(name)
            if text:
                if "\u00ad" in text:  # FieldText.of cleans such a text first
                    return False
                fold = latin1_fold(text)  # one field at a time: ASCII ones stay fast
                if fold is None:
                    return False
                # Unsqueezed: a key, " word " or " prefix", finds the same words in runs
                # of spaces as in single ones; only the possessives must go.
                folds.append(drop_possessives(fold) if b"'" in fold else fold)
        if self.latin1 is None:
            return True
        hits = self.latin1.automaton.find_matches_as_indexes(
            b" " + b" ".join(folds) + b" ", overlapping=True)
        return not self._selected(set(map(self.latin1.literals.__getitem__,
                                          map(_pattern, hits))))

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


_pattern = itemgetter(0)
"""The key of an automaton hit, (key's index, start, end)."""


@dataclass(frozen=True)
class _Scanner:
    """An automaton of byte keys, and the literal each key stands for (by its index)."""

    automaton: ahocorasick_rs.BytesAhoCorasick
    literals: tuple[int, ...]
    keys: tuple[bytes, ...]

    @classmethod
    def of(cls, keys: Mapping[bytes, int]) -> _Scanner | None:
        if not keys:
            return None
        # Standard semantics: with overlapping=True every key found, even inside another.
        return cls(ahocorasick_rs.BytesAhoCorasick(
            list(keys), matchkind=ahocorasick_rs.MatchKind.Standard),
            tuple(keys.values()), tuple(keys))

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as its keys (the automaton itself cannot be): a matcher can be sent
        to another process."""
        return _Scanner.of, (dict(zip(self.keys, self.literals, strict=True)),)


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

"""Why a rule did not match an item: the operands that failed, and the closest miss.

Pure; no I/O. ``misses`` walks a false rule down to the operands that made it false:
every failing operand of an AND, the nearest branch of an OR (the one with the fewest
failures), the side of a NEAR that is absent or, if both are present, how far apart
they are. ``closest_miss`` picks, among a watchlist's rules, the one that came
nearest to firing: a rule writer's first question when an item they expected is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .engine import DEFAULT_FIELDS, Document, Span, evaluate
from .query import ActorRef, And, Near, Node, Not, Or, Term
from .watchlist import Rule, Watchlist

__all__ = ["Miss", "RuleMiss", "closest_miss", "misses"]


@dataclass(frozen=True)
class Miss:
    """One operand that failed: as written in the rule, and why."""

    operand: str
    reason: str

    def __str__(self) -> str:
        return f"{self.operand}: {self.reason}"


@dataclass(frozen=True)
class RuleMiss:
    rule: Rule
    misses: tuple[Miss, ...]


def _where(field: str | None) -> str:
    return field if field else " or ".join(DEFAULT_FIELDS)


def _found(spans: list[Span], doc: Document) -> str:
    s = spans[0]
    ft = doc.fields[s.field]
    start, end = ft.offsets[s.start][0], ft.offsets[s.end - 1][1]
    return f"'{ft.text[start:end]}' in {s.field}"


def misses(node: Node, doc: Document, actors: Mapping[str, tuple[Term, ...]],
           actor_field: str | None = None) -> list[Miss]:
    """Why ``node`` is false in ``doc``; empty if it is true."""
    if evaluate(node, doc, actors, actor_field) is not None:
        return []
    if isinstance(node, Term):
        return [Miss(str(node), f"not in the {_where(node.field or actor_field)}")]
    if isinstance(node, ActorRef):
        names = ", ".join(t.text for t in actors[node.slug])
        return [Miss(str(node), f"none of its names in the "
                                f"{_where(node.field or actor_field)} ({names})")]
    if isinstance(node, Not):
        spans = evaluate(node.operand, doc, actors, actor_field) or []
        found = f" ({_found(spans, doc)})" if spans else ""
        return [Miss(str(node), f"{node.operand} is present{found}")]
    if isinstance(node, And):
        return [m for o in node.operands for m in misses(o, doc, actors, actor_field)]
    if isinstance(node, Or):
        if all(isinstance(o, (Term, ActorRef)) for o in node.operands):
            return [Miss(f"({node})", "none of these is present")]
        branches = [misses(o, doc, actors, actor_field) for o in node.operands]
        return min(branches, key=len)
    assert isinstance(node, Near)
    left = misses(node.left, doc, actors, actor_field)
    right = misses(node.right, doc, actors, actor_field)
    if left or right:
        return left + right
    return [Miss(str(node), _near_reason(node, doc, actors, actor_field))]


def _near_reason(node: Near, doc: Document, actors: Mapping[str, tuple[Term, ...]],
                 actor_field: str | None) -> str:
    left = evaluate(node.left, doc, actors, actor_field) or []
    right = evaluate(node.right, doc, actors, actor_field) or []
    gaps = [
        (b.start - a.end) if a.end <= b.start else (a.start - b.end)
        for a in left for b in right
        if a.field == b.field and (a.end <= b.start or (not node.ordered and b.end <= a.start))
    ]
    order = " in this order" if node.ordered else ""
    if not gaps:
        return f"both present, but never in one field{order}"
    return (f"both present, but never within {node.distance} words{order} "
            f"(closest: {min(gaps)} words between)")


def _present(node: Node, doc: Document, actors: Mapping[str, tuple[Term, ...]]) -> int:
    """How many of the node's words and actors occur in the item, anywhere."""
    if isinstance(node, (Term, ActorRef)):
        return evaluate(node, doc, actors) is not None
    if isinstance(node, Not):
        return 0
    operands = node.operands if isinstance(node, (And, Or)) else (node.left, node.right)
    return sum(_present(o, doc, actors) for o in operands)


def closest_miss(watchlist: Watchlist, doc: Document) -> RuleMiss | None:
    """The rule with the fewest failing operands (then the most words present), or None
    if a rule matches."""
    best: tuple[tuple[int, int], RuleMiss] | None = None
    for rule in watchlist.rules:
        found = misses(rule.node, doc, watchlist.actors)
        if not found:
            return None
        score = (len(found), -_present(rule.node, doc, watchlist.actors))
        if best is None or score < best[0]:
            best = (score, RuleMiss(rule, tuple(found)))
    return best[1] if best else None

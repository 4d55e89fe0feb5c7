"""The query language: rule text -> AST. Pure; no I/O.

Grammar, loosest binding first (operators are upper-case; lower-case ``and`` is a word)::

    query   := or
    or      := and ("OR" and)*
    and     := unary ("AND" unary)*
    unary   := "NOT" unary | near
    near    := primary (("NEAR/n" | "ONEAR/n") primary)*
    primary := WORD | WORD* | "a phrase" | @actor | FIELD:primary | "(" or ")"

So ``A OR B AND NOT C`` reads ``A OR (B AND (NOT C))``. Two terms side by side with no
operator are an error, not a silent AND: write ``"two words"`` for a phrase.
A rule must be able to match on something present: ``NOT x`` alone is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field

from ..errors import QueryError
from ..text import clean, tokenize

__all__ = [
    "FIELDS",
    "ActorRef",
    "And",
    "Near",
    "Node",
    "Not",
    "Or",
    "Term",
    "actors_in",
    "parse",
]

FIELDS = frozenset({"title", "summary", "content", "author", "feed", "url"})


@dataclass(frozen=True)
class Term:
    """A word or phrase: the folded keys of its words, in order."""

    words: tuple[str, ...]
    prefix: bool = False
    field: str | None = None
    case_sensitive: bool = False
    text: str = ""

    def __str__(self) -> str:
        body = f'"{self.text}"' if len(self.words) > 1 else self.text + ("*" if self.prefix else "")
        return f"{self.field}:{body}" if self.field else body


@dataclass(frozen=True)
class ActorRef:
    slug: str
    field: str | None = None
    column: int = dc_field(default=1, compare=False)

    def __str__(self) -> str:
        return f"{self.field}:@{self.slug}" if self.field else f"@{self.slug}"


@dataclass(frozen=True)
class Not:
    operand: Node

    def __str__(self) -> str:
        return f"NOT {_wrap(self.operand)}"


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]

    def __str__(self) -> str:
        return " AND ".join(_wrap(o) for o in self.operands)


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]

    def __str__(self) -> str:
        return " OR ".join(_wrap(o) for o in self.operands)


@dataclass(frozen=True)
class Near:
    left: Node
    right: Node
    distance: int
    ordered: bool = False

    def __str__(self) -> str:
        op = "ONEAR" if self.ordered else "NEAR"
        return f"{_wrap(self.left)} {op}/{self.distance} {_wrap(self.right)}"


Node = Term | ActorRef | Not | And | Or | Near


def _wrap(node: Node) -> str:
    return f"({node})" if isinstance(node, (And, Or, Near)) else str(node)


# ---------------------------------------------------------------- lexer

@dataclass(frozen=True)
class _Tok:
    kind: str  # WORD PHRASE ACTOR FIELD AND OR NOT NEAR LPAREN RPAREN END
    text: str
    column: int  # 1-based
    distance: int = 0
    ordered: bool = False


_LEX_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<phrase>"[^"]*"?)
  | (?P<near>O?NEAR/\S*)
  | (?P<actor>@[^\s()"]*)
  | (?P<field>[A-Za-z]+:)
  | (?P<word>[^\s()"]+)
    """,
    re.VERBOSE,
)


def _lex(rule: str) -> Iterator[_Tok]:
    for m in _LEX_RE.finditer(rule):
        kind = m.lastgroup
        text = m.group()
        col = m.start() + 1
        if kind == "space":
            continue
        if kind == "phrase":
            if len(text) < 2 or not text.endswith('"'):
                raise QueryError("unterminated phrase (missing closing \")", col)
            yield _Tok("PHRASE", text[1:-1], col)
        elif kind == "near":
            ordered = text.startswith("O")
            n = text.split("/", 1)[1]
            if not n.isdigit() or not 1 <= int(n) <= 100:
                op = text.split("/")[0]
                raise QueryError(f"{op} needs a distance from 1 to 100, like {op}/5", col)
            yield _Tok("NEAR", text, col, distance=int(n), ordered=ordered)
        elif kind == "actor":
            if len(text) < 2:
                raise QueryError("'@' must be followed by an actor's slug", col)
            yield _Tok("ACTOR", text[1:], col)
        elif kind == "field":
            name = text[:-1].lower()
            if name not in FIELDS:
                raise QueryError(
                    f"unknown field '{text[:-1]}' (fields: {', '.join(sorted(FIELDS))})", col
                )
            yield _Tok("FIELD", name, col)
        elif kind in ("lparen", "rparen"):
            yield _Tok(kind.upper(), text, col)
        elif text in ("AND", "OR", "NOT"):
            yield _Tok(text, text, col)
        else:
            yield _Tok("WORD", text, col)
    yield _Tok("END", "", len(rule) + 1)


# ---------------------------------------------------------------- parser

class _Parser:
    def __init__(self, rule: str) -> None:
        self.toks = list(_lex(rule))
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise QueryError("empty rule", 1)
        node = self.or_()
        tok = self.tok
        if tok.kind == "RPAREN":
            raise QueryError("unbalanced parenthesis: ')' without '('", tok.column)
        if tok.kind != "END":
            hint = " (operators are upper-case)" if tok.text.upper() in {"AND", "OR", "NOT"} else ""
            raise QueryError(
                f"expected AND, OR or NEAR/n before '{tok.text}'{hint} "
                '(write "two words" for a phrase)',
                tok.column,
            )
        return node

    def or_(self) -> Node:
        operands = [self.and_()]
        while self.tok.kind == "OR":
            self.take()
            operands.append(self.and_())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_(self) -> Node:
        operands = [self.unary()]
        while self.tok.kind == "AND":
            self.take()
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def unary(self) -> Node:
        if self.tok.kind == "NOT":
            self.take()
            return Not(self.unary())
        return self.near()

    def near(self) -> Node:
        node = self.primary()
        while self.tok.kind == "NEAR":
            op = self.take()
            if self.tok.kind == "NOT":
                raise QueryError(f"{op.text} cannot take a NOT operand", self.tok.column)
            right = self.primary()
            for side in (node, right):
                if _negative_only(side):
                    raise QueryError(f"{op.text} cannot take a NOT operand", op.column)
            node = Near(node, right, op.distance, op.ordered)
        return node

    def primary(self, field: str | None = None) -> Node:
        tok = self.take()
        if tok.kind == "FIELD":
            if field is not None:
                raise QueryError("a field scope cannot hold another field scope", tok.column)
            return self.primary(field=tok.text)
        if tok.kind == "LPAREN":
            if field is not None:
                raise QueryError(
                    f"scope each term ({field}:word), not a group", tok.column
                )
            node = self.or_()
            close = self.tok
            if close.kind != "RPAREN":
                raise QueryError("unbalanced parenthesis: '(' is never closed", tok.column)
            self.take()
            return node
        if tok.kind == "ACTOR":
            return ActorRef(tok.text, field, tok.column)
        if tok.kind in ("WORD", "PHRASE"):
            return make_term(tok.text, tok.column, field=field, phrase=tok.kind == "PHRASE")
        if tok.kind == "END":
            raise QueryError("rule ends where a term was expected", tok.column)
        if tok.kind == "RPAREN":
            raise QueryError("unbalanced parenthesis: ')' without '('", tok.column)
        raise QueryError(f"expected a term, found {tok.text}", tok.column)


def make_term(
    text: str, column: int = 1, *, field: str | None = None, phrase: bool = False,
    case_sensitive: bool = False,
) -> Term:
    """A Term from a word, a ``prefix*`` or a phrase, folded as item text is folded."""
    prefix = not phrase and text.endswith("*")
    body = text[:-1] if prefix else text
    words = tokenize(clean(body))
    if not words:
        what = "phrase" if phrase else "term"
        raise QueryError(f"{what} '{text}' has no letters or digits to match", column)
    if not phrase and ("*" in body or (prefix and len(words) != 1)):
        raise QueryError(f"a wildcard goes at the end of one word, not '{text}'", column)
    keys = tuple(w.cased if case_sensitive else w.key for w in words)
    return Term(keys, prefix, field, case_sensitive, body)


def _negative_only(node: Node) -> bool:
    """True if the node can only be satisfied by the absence of something."""
    if isinstance(node, Not):
        return True
    if isinstance(node, And):
        return all(_negative_only(o) for o in node.operands)
    if isinstance(node, Or):
        return any(_negative_only(o) for o in node.operands)
    return False


def actors_in(node: Node) -> Iterator[ActorRef]:
    """Every actor reference in the tree, left to right."""
    if isinstance(node, ActorRef):
        yield node
    elif isinstance(node, Not):
        yield from actors_in(node.operand)
    elif isinstance(node, (And, Or)):
        for o in node.operands:
            yield from actors_in(o)
    elif isinstance(node, Near):
        yield from actors_in(node.left)
        yield from actors_in(node.right)


def parse(rule: str) -> Node:
    """Parse one rule. Raises QueryError with the column and reason."""
    node = _Parser(rule).parse()
    if _negative_only(node):
        raise QueryError(
            "the rule would match every item that lacks a term; combine NOT with "
            "a positive term (A AND NOT B)",
            1,
        )
    return node

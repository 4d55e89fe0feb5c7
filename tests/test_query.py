from __future__ import annotations

import pytest

from monitor.errors import QueryError
from monitor.match.query import ActorRef, And, Near, Not, Or, Term, parse


def test_precedence_or_is_loosest_then_and_then_not() -> None:
    node = parse("a OR b AND NOT c")
    assert isinstance(node, Or)
    assert node.operands[0] == Term(("a",), text="a")
    right = node.operands[1]
    assert isinstance(right, And) and isinstance(right.operands[1], Not)
    assert str(node) == "a OR (b AND NOT c)"


def test_parentheses_group() -> None:
    assert str(parse("(a OR b) AND c")) == "(a OR b) AND c"


def test_phrases_prefixes_actors_near_and_fields() -> None:
    node = parse('"Berlin conference" OR Liby* OR @khalifa-haftar OR x ONEAR/3 title:y')
    assert isinstance(node, Or)
    phrase, prefix, actor, near = node.operands
    assert phrase == Term(("berlin", "conference"), text="Berlin conference")
    assert isinstance(prefix, Term) and prefix.prefix and prefix.words == ("liby",)
    assert actor == ActorRef("khalifa-haftar")
    assert isinstance(near, Near) and near.ordered and near.distance == 3
    assert near.right == Term(("y",), field="title", text="y")


def test_printed_query_parses_back_to_the_same_tree() -> None:
    for rule in ['(Tripoli OR طرابلس) AND NOT (Lebanon OR Lebanese)',
                 '"Berlin conference" OR Berlin NEAR/6 conference', "@a AND title:Liby*"]:
        node = parse(rule)
        assert parse(str(node)) == node


@pytest.mark.parametrize(("rule", "reason", "column"), [
    ("Tripoli AND (Lebanon", "unbalanced parenthesis: '(' is never closed", 13),
    ("Tripoli AND Lebanon)", "unbalanced parenthesis: ')' without '('", 20),
    ("Tripoli Lebanon", "expected AND, OR or NEAR/n before 'Lebanon'", 9),
    ("tripoli and lebanon", "(operators are upper-case)", 9),
    ("NOT Lebanon", "the rule would match every item that lacks a term", 1),
    ("a OR NOT b", "the rule would match every item that lacks a term", 1),
    ("a NEAR/x b", "NEAR needs a distance from 1 to 100", 3),
    ('"Berlin conference', "unterminated phrase", 1),
    ("a AND", "rule ends where a term was expected", 6),
    ("", "empty rule", 1),
    ("colour:red", "unknown field 'colour'", 1),
    ("a NEAR/3 NOT b", "NEAR/3 cannot take a NOT operand", 10),
    ("Li*ya", "a wildcard goes at the end of one word", 1),
    ("@", "'@' must be followed by an actor's slug", 1),
    ("---", "term '---' has no letters or digits to match", 1),
])
def test_malformed_rules_say_where_and_why(rule: str, reason: str, column: int) -> None:
    with pytest.raises(QueryError) as exc:
        parse(rule)
    assert reason in exc.value.reason
    assert exc.value.column == column
    assert str(exc.value).endswith(f"at column {column}")

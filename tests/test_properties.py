"""Property tests (hypothesis) for the text and query layers."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from monitor.errors import QueryError
from monitor.match import Document, Matcher, WatchlistSpec, compile_watchlist
from monitor.match.engine import Span, _near, evaluate
from monitor.match.query import Node, parse
from monitor.parse import _CONTROLS_RE, _scrub
from monitor.text import (
    WordOffsets,
    _TextExtractor,
    cased_sequence,
    clean,
    fold,
    html_to_text,
    joined_keys,
    tokenize,
)

# Text that exercises the normalizer: letters of several scripts, accents and harakat,
# apostrophes, invisible characters, full-width forms, markup and entities.
ALPHABET = st.sampled_from(
    [*"abcLNA sS'’ʼ-_.,<>&;/\"", "é", "\u0301", "ß", "İ", "ǰ", "ﬁ", "Ｌ", "\u00ad",
     "\u200b", "\u202e", "ط", "ر", "ا", "أ", "ة", "ى", "ـ",
     "\u064e", "١", "²", "<b>", "</b>", "<p>", "&amp;",
     "&lt;", "&#x27;", "\n", "\t", "\u00a0", "ǅ", "ﷲ", "ﷺ"],
)
TEXT = st.lists(ALPHABET, max_size=40).map("".join)
ANY_TEXT = st.one_of(TEXT, st.text(max_size=60))


@given(ANY_TEXT)
@example("ǰ")
def test_clean_is_idempotent(text: str) -> None:
    assert clean(clean(text)) == clean(text)


@given(ANY_TEXT)
@example("a's's")
@example("ǰ")
def test_fold_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)


@given(ANY_TEXT)
def test_the_keys_of_a_folded_word_are_stable(text: str) -> None:
    for tok in tokenize(clean(text)):
        assert fold(tok.key) == tok.key


@given(ANY_TEXT)
def test_html_to_text_is_idempotent_where_no_markup_is_left(text: str) -> None:
    once = html_to_text(text)
    assume("<" not in once and "&" not in once)  # decoded entities may spell new markup
    assert html_to_text(once) == once


@given(ANY_TEXT)
@example("Haftar’s forces\nnear al-Sarraj's office")  # one separator between chunks
@example("  Tripoli   ﷺ x  ")
def test_the_fast_readers_find_the_same_words_as_tokenize(text: str) -> None:
    cleaned = clean(text)
    tokens = tokenize(cleaned)
    assert cased_sequence(cleaned) == tuple(t.cased for t in tokens)
    assert joined_keys(cleaned) == " ".join(t.key for t in tokens)
    offsets = WordOffsets(cleaned)
    assert [offsets[i] for i in range(len(offsets))] == [(t.start, t.end) for t in tokens]


# White space and controls in every form: what the blank and line collapsing and the
# control scrub of feed text must treat exactly as their regular expressions do.
SPACED = st.lists(st.sampled_from(
    [*"ab \n\t\r\x0b\x0c\x00\x1b\x7f\x85\u00a0\u2028\u3000\u202e\u2066\ud800", "  ",
     " \n ", "<p>", "&amp;", "é", "’"]), max_size=30).map("".join)


def reference_html_to_text(markup: str) -> str:
    """``html_to_text`` with its blanks and lines collapsed by regular expressions alone."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = re.sub(r" [ \t\r\f\v\u00a0]+|[\t\r\f\v\u00a0][ \t\r\f\v\u00a0]*", " ",
                  "".join(parser.parts))
    return re.sub(r"\s*\n\s*", "\n", text).strip()


@given(st.one_of(SPACED, ANY_TEXT))
@example(" a \n\u2028 \n b\x0b\x0b c \n")
def test_html_to_text_collapses_space_as_its_regular_expressions_do(text: str) -> None:
    assert html_to_text(text) == reference_html_to_text(text)


@given(st.one_of(SPACED, ANY_TEXT))
@example("tab\there, line\nthere")
@example("\x7f\x9f\u202e")
def test_the_control_scrub_removes_what_its_expression_finds(text: str) -> None:
    assert _scrub(text) == _CONTROLS_RE.sub("", text)


@given(ANY_TEXT)
def test_the_normalizer_never_raises(text: str) -> None:
    tokenize(clean(html_to_text(text)))
    Document.of(title=text, content=text)


@given(st.text(max_size=80))
@example("(((")
@example('"')
@example("a NEAR/999999999999999999999 b")
def test_the_parser_raises_only_query_errors(rule: str) -> None:
    with contextlib.suppress(QueryError):  # any other exception fails the test
        parse(rule)


# ---------------------------------------------------------------- rules

WORDS = st.sampled_from(["a", "b", "Tripoli", "Libya", "LNA", "Berlin", "conference", "café",
                         "O'Brien", "طرابلس", "Haftar’s", "oil", "port"])


@st.composite
def rules(draw: st.DrawFn, depth: int = 0) -> str:
    """Rule text from the grammar: terms, phrases, prefixes, fields, every operator."""
    leaf = st.one_of(
        WORDS,
        st.tuples(WORDS, WORDS).map(lambda ws: f'"{ws[0]} {ws[1]}"'),
        WORDS.map(lambda w: w[:3] + "*"),
        st.tuples(st.sampled_from(["title", "content", "summary"]), WORDS).map(
            lambda fw: f"{fw[0]}:{fw[1]}"),
    )
    if depth >= 3 or draw(st.booleans()):
        return draw(leaf)
    a, b = draw(rules(depth + 1)), draw(rules(depth + 1))
    op = draw(st.sampled_from(["AND", "OR", "AND NOT", "NEAR", "ONEAR"]))
    if op in ("NEAR", "ONEAR"):
        op = f"{op}/{draw(st.integers(1, 5))}"
    return f"({a}) {op} ({b})"


def parsed(rule: str) -> Node:
    try:
        return parse(rule)
    except QueryError:
        assume(False)  # a rule the grammar allows but the parser refuses (NOT-only)
        raise


@given(rules())
def test_a_printed_rule_parses_back_to_the_same_rule(rule: str) -> None:
    node = parsed(rule)
    assert parse(str(node)) == node


DOC_TEXT = st.lists(st.one_of(WORDS, st.sampled_from(["the", "in", ",", "Lebanon"])),
                    max_size=25).map(" ".join)


@settings(max_examples=200)
@given(rules(), rules(), DOC_TEXT, DOC_TEXT)
def test_adding_an_or_branch_never_loses_a_match(rule: str, other: str, title: str,
                                                 body: str) -> None:
    node = parsed(rule)
    wider = parsed(f"({rule}) OR ({other})")
    doc = Document.of(title=title, content=body)
    spans = evaluate(node, doc, {})
    if spans is not None:
        wide = evaluate(wider, doc, {})
        assert wide is not None
        assert set(spans) <= set(wide)
    one = compile_watchlist(WatchlistSpec("a", (rule,))).match(doc)
    two = compile_watchlist(WatchlistSpec("b", (f"({rule}) OR ({other})",))).match(doc)
    assert one is None or two is not None


@pytest.mark.parametrize("rule", ["(a) AND NOT (b)", "x NEAR/2 (y OR z)"])
def test_the_rule_strategy_produces_valid_rules(rule: str) -> None:
    assert parse(rule) is not None


@settings(max_examples=200)
@given(st.lists(rules(), min_size=1, max_size=6), DOC_TEXT, DOC_TEXT)
def test_the_prefiltered_matcher_agrees_with_plain_evaluation(
    texts: list[str], title: str, body: str
) -> None:
    valid = tuple(t for t in texts if _parses(t))
    assume(valid)
    wl = compile_watchlist(WatchlistSpec("w", valid))
    doc = Document.of(title=title, content=body)
    plain = wl.match(doc)
    assert Matcher.of([wl]).match(doc) == ([] if plain is None else [plain])


def _parses(rule: str) -> bool:
    try:
        parse(rule)
    except QueryError:
        return False
    return True


@given(ANY_TEXT, st.lists(WORDS, min_size=1, max_size=2), st.booleans())
@example("a b a b a", ["a", "b"], False)
def test_positions_found_in_the_scan_are_those_of_the_tokens(
    text: str, words: list[str], prefix: bool
) -> None:
    text = f"{text} {' '.join(words)} {text}"
    keys = tuple(fold(w) for w in words)
    assume(all(keys))
    ft = Document.of(title=text).fields["title"]
    tokens = ft.tokens
    n = len(keys)

    def at(i: int) -> bool:
        seq = [t.key for t in tokens[i : i + n]]
        if prefix:
            return seq[:-1] == list(keys[:-1]) and len(seq) == n and seq[-1].startswith(keys[-1])
        return seq == list(keys)

    assert ft.positions(keys, prefix=prefix) == tuple(i for i in range(len(tokens)) if at(i))
    cased = tuple(t.cased for t in tokenize(clean(" ".join(words))))
    assert ft.positions(cased, cased=True) == tuple(
        i for i in range(len(tokens)) if tuple(t.cased for t in tokens[i : i + len(cased)])
        == cased)


def near_reference(left: list[Span], right: list[Span], distance: int,
                   ordered: bool) -> set[Span]:
    """The definition of NEAR, pair by pair."""
    out = set()
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
                out |= {a, b}
    return out


SPANS = st.lists(st.builds(lambda f, s, n: Span(f, s, s + n), st.sampled_from(["title", "content"]),
                           st.integers(0, 30), st.integers(1, 3)), max_size=12)


@given(SPANS, SPANS, st.integers(1, 6), st.booleans())
def test_near_finds_the_pairs_its_definition_does(left: list[Span], right: list[Span],
                                                  distance: int, ordered: bool) -> None:
    assert set(_near(left, right, distance, ordered)) == near_reference(
        left, right, distance, ordered)

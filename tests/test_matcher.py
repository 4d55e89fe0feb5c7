"""The compiled matcher: the prefilter selects few rules and never changes a result."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import pytest

from monitor.config import load_watchlists
from monitor.errors import QueryError
from monitor.match import (
    ActorSpec,
    AliasSpec,
    Document,
    Matcher,
    WatchlistMatch,
    WatchlistSpec,
    compile_matcher,
    compile_watchlist,
)
from monitor.match.matcher import Literal, needs, requirements
from monitor.match.query import parse
from monitor.match.watchlist import Watchlist

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "watchlists.yaml"

VOCAB = ["Tripoli", "Libya", "Libyan", "Haftar", "Hifter's", "LNA", "lna", "Berlin",
         "conference", "Lebanon", "Sarraj", "oil", "port", "Misrata", "Sirte", "ceasefire",
         "talks", "Cairo", "Ankara", "drone", "طرابلس", "ليبيا", "حفتر", "café", "CAFE",
         "O'Brien", "Benghazi", "airport", "the", "a", "in", "of", "Trip", "بطرابلس",
         "والجيش", "الجيش", "لليبيا", "وليبيا"]


def random_rule(rng: random.Random, depth: int = 0) -> str:
    """A rule over VOCAB (so it often matches), with every operator."""
    def term() -> str:
        word = rng.choice(VOCAB)
        shape = rng.random()
        if shape < 0.15:
            return f'"{word} {rng.choice(VOCAB)}"'
        if shape < 0.25:
            return word[: max(2, len(word) - 2)] + "*"
        if shape < 0.35:
            return f"{rng.choice(['title', 'content', 'summary', 'author', 'feed', 'url'])}:{word}"
        if shape < 0.45:
            return rng.choice(["@actor", "@actor", "feed:@actor"])
        return word
    if depth >= 2:
        return term()
    op = rng.random()
    a, b = random_rule(rng, depth + 1), random_rule(rng, depth + 1)
    if op < 0.25:
        return f"({a}) AND ({b})"
    if op < 0.5:
        return f"({a}) OR ({b})"
    if op < 0.6:
        return f"({a}) AND NOT ({b})"
    if op < 0.75:
        return f"({a}) {rng.choice(['NEAR', 'ONEAR'])}/{rng.randint(1, 4)} ({b})"
    return term()


ACTOR = ActorSpec("Khalifa Haftar", "actor", (AliasSpec("Hifter"), AliasSpec("LNA", True),
                                              AliasSpec("خليفة حفتر")))


def random_doc(rng: random.Random) -> Document:
    def text(n: int) -> str:
        return " ".join(rng.choice(VOCAB) for _ in range(n))
    return Document.of(title=text(6), summary=text(rng.randint(0, 12)), content=text(40),
                       author=text(rng.randint(0, 2)), feed=text(rng.randint(0, 3)),
                       url=f"https://example.org/{'-'.join(text(3).split())}")


def plain(watchlists: list[Watchlist], doc: Document) -> list[WatchlistMatch]:
    return [m for wl in watchlists if (m := wl.match(doc)) is not None]


def test_prefiltered_matching_agrees_with_plain_evaluation(seed_article: str) -> None:
    rng = random.Random(4)
    watchlists = [compile_watchlist(spec) for spec in load_watchlists(EXAMPLE)]
    for n in range(20):
        rules = tuple(random_rule(rng) for _ in range(25))
        rules = tuple(r for r in rules if _parses(r))
        watchlists.append(compile_watchlist(WatchlistSpec(f"w{n}", rules, (ACTOR,))))
    matcher = Matcher.of(watchlists)
    docs = [random_doc(rng) for _ in range(200)]
    docs += [Document.of(title="Libya", content=seed_article),
             Document.of(title="Tripoli, Lebanon"), Document.of(title="LNA and lna"), Document()]
    matched = 0
    for doc in docs:
        expected = plain(watchlists, doc)
        assert matcher.match(doc) == expected
        matched += len(expected)
    assert matched > 200  # the corpus exercises matches, not only misses


def _parses(rule: str) -> bool:
    try:
        parse(rule)
    except QueryError:
        return False
    return True


def test_only_rules_whose_words_occur_are_candidates() -> None:
    rules = tuple(f"word{i} AND NOT other{i}" for i in range(1000))
    matcher = Matcher.of([compile_watchlist(WatchlistSpec("many", rules))])
    assert matcher.candidates(Document.of(title="nothing to see here")) == set()
    assert matcher.candidates(Document.of(title="word7 and word500, other7")) == {7, 500}
    (m,) = matcher.match(Document.of(title="word7 and word500, other7"))
    assert [r.index for r in m.rules] == [500]


def test_the_prefilter_reads_latin1_and_other_text_alike() -> None:
    """A Latin-1 field is scanned as Latin-1 bytes, any other as UTF-8: a literal is
    found either way, whatever its letters (``ø`` folds to itself)."""
    wl = compile_watchlist(WatchlistSpec("w", ("Søren", "طرابلس", "Zürich*", "Tripoli")))
    matcher = Matcher.of([wl])
    assert matcher.candidates(Document.of(title="SØREN’s café in Zurichsee")) == {0, 2}
    assert matcher.candidates(Document.of(title="Søren in طرابلس", content="tripoli")) == {
        0, 1, 3}
    assert matcher.candidates(Document.of(title="Sorensen", content="Tripolitania")) == set()


@pytest.mark.parametrize(("rule", "literals"), [
    ("Tripoli AND NOT Lebanon", {Literal("tripoli")}),
    ("Liby* OR Tripoli", {Literal("liby", prefix=True), Literal("tripoli")}),
    ('"Berlin conference"', {Literal("conference")}),
    ("Berlin NEAR/6 conference", {Literal("conference")}),
    ("@a AND ab", {Literal("hifter"), Literal("lna")}),
])
def test_each_rule_needs_one_of_a_few_literals(rule: str, literals: set[Literal]) -> None:
    wl = compile_watchlist(WatchlistSpec("t", (rule,), (
        ActorSpec("Hifter", "a", (AliasSpec("LNA", case_sensitive=True),)),)))
    assert needs(wl.rules[0].node, wl.actors) == literals


L = Literal


@pytest.mark.parametrize(("rule", "sets"), [
    ("Tripoli AND NOT Lebanon", [{L("tripoli")}]),
    ('("Berlin conference" OR Berlin NEAR/6 conference) AND (Liby* OR Tripoli)',
     [{L("conference")}, {L("liby", prefix=True), L("tripoli")}]),
    ("Haftar NEAR/3 (Tripoli AND Sirte)", [{L("haftar")}, {L("tripoli")}, {L("sirte")}]),
    ("(Tripoli AND port) OR Libya", [{L("tripoli"), L("libya")}]),
    ("Tripoli AND (Libya OR NOT Lebanon)", [{L("tripoli")}]),
])
def test_each_side_of_and_and_near_is_required(rule: str, sets: list[set[Literal]]) -> None:
    wl = compile_watchlist(WatchlistSpec("t", (rule,)))
    assert list(requirements(wl.rules[0].node, wl.actors)) == sets


def test_a_common_word_on_one_side_of_and_does_not_select_the_rule() -> None:
    rule = '("Berlin conference" OR Berlin NEAR/6 conference) AND (Liby* OR Tripoli)'
    matcher = Matcher.of([compile_watchlist(WatchlistSpec("t", (rule, "press")))])
    assert matcher.candidates(Document.of(title="A press conference in Berlin")) == {1}
    doc = Document.of(title="Berlin conference", content="The Libyan delegation arrived.")
    assert matcher.candidates(doc) == {0}
    (m,) = matcher.match(doc)
    assert [r.index for r in m.rules] == [0]


def test_only_the_fields_some_rule_looks_at_are_scanned() -> None:
    doc = Document.of(title="Nothing", feed="Tripoli Times", url="https://tripoli.example/")
    plain = Matcher.of([compile_watchlist(WatchlistSpec("t", ("Tripoli",)))])
    assert plain.scanned == ("content", "summary", "title")
    assert plain.candidates(doc) == set() and plain.match(doc) == []
    scoped = Matcher.of([compile_watchlist(WatchlistSpec("t", ("feed:Tripoli", "Tripoli")))])
    assert scoped.scanned == ("content", "feed", "summary", "title")
    assert scoped.candidates(doc) == {0, 1}
    (m,) = scoped.match(doc)
    assert [r.index for r in m.rules] == [0]


def test_a_bad_watchlist_compiles_nothing() -> None:
    good = WatchlistSpec("good", ("Libya",))
    bad = WatchlistSpec("bad", ("Tripoli AND (Lebanon",))
    with pytest.raises(QueryError, match="never closed"):
        compile_matcher([good, bad])
    matcher = compile_matcher([good])
    (m,) = matcher.match(Document.of(title="Libya"))
    assert m.watchlist == "good"


def test_a_matcher_survives_pickling(seed_article: str) -> None:
    """A matcher can be sent to another process (its automata are rebuilt there)."""
    matcher = compile_matcher(load_watchlists(EXAMPLE))
    copy = pickle.loads(pickle.dumps(matcher))
    doc = Document.of(title="Libya", content=seed_article)
    assert copy.match(doc) == matcher.match(doc) != []


def test_excludes_answers_as_the_candidates_of_the_document(seed_article: str) -> None:
    """``excludes`` on the fields as text says no rule is a candidate exactly when the
    document's ``candidates`` are none, whenever every field takes the fast path (and
    it never excludes an item that has a candidate, on any path)."""
    rng = random.Random(5)
    watchlists = [compile_watchlist(spec) for spec in load_watchlists(EXAMPLE)]
    for n in range(3):
        rules = tuple(r for r in (random_rule(rng) for _ in range(3)) if _parses(r))
        watchlists.append(compile_watchlist(WatchlistSpec(f"w{n}", rules, (ACTOR,))))
    matcher = Matcher.of(watchlists)
    marks = [" ", "  ", "\n", ", ", ". ", "’s ", "'s'S ", " ' ", "’", "-", "\u00ad", "—",
             "_", " " * 5000, "ß", "Ünïcödé", "straße", "\u00a0"]
    vocab = [*VOCAB[:34], "Libyas", "tripoli's", "LIBYA", "Líbya", "conferences",
             "Trip\u00adoli", "Liby\u00ada"]
    plain_words = ["said", "the", "minister", "week", "talks", "Cairo", "café", "report"]

    def text(n: int) -> str:
        return "".join(rng.choice(vocab if rng.random() < 0.05 else plain_words)
                       + (rng.choice(marks) if rng.random() < 0.1 else " ") for _ in range(n))
    outcomes = {True: 0, False: 0}
    for _ in range(600):
        texts = {"title": text(rng.randint(0, 6)), "summary": text(rng.randint(0, 12)),
                 "content": text(rng.randint(0, 4)), "author": text(rng.randint(0, 1)),
                 "feed": rng.choice(["Wire", None, "Libya Observer"]), "url": None}
        candidates = matcher.candidates(Document.of(**texts))
        excluded = matcher.excludes(texts)
        if excluded:
            assert candidates == set(), texts
        fast = all(
            t is None or ("\u00ad" not in t and "ß" not in t and "Ü" not in t
                          and " " * 5000 not in t) for t in texts.values())
        if fast:
            assert excluded == (not candidates), texts
            outcomes[excluded] += 1
    assert min(outcomes.values()) > 50  # both answers are exercised
    assert not matcher.excludes({"title": "Libya", "summary": seed_article})

"""The fast paths of normalization give what the full path gives.

``clean`` and ``scan_keys`` (monitor/match/scan.py) take a fast path on Latin-1 text
with typographic marks; the references below are the full paths: the ``clean`` of
before the fast path, and ``tokenize``, which reads every word with the regular
expression and folds it alone.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.config import load_watchlists
from monitor.match import Document, Matcher, WatchlistMatch, compile_watchlist
from monitor.match.engine import FieldText
from monitor.match.scan import latin1_keys, scan_keys
from monitor.text import TYPOGRAPHIC_SEPARATORS, clean, joined_keys, tokenize

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is beside tests/, not installed
    sys.path.insert(0, str(ROOT))

from bench.corpus import item as cold_item  # noqa: E402 (needs the path above)
from bench.item_corpus import items, rules  # noqa: E402
from bench.matcher import _watchlists  # noqa: E402

_INVISIBLE_RE = re.compile(
    "[\u00ad\u200b\u200c\u200d\u2060\ufeff\u061c\u200e\u200f"
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069]")


def reference_clean(text: str) -> str:
    """``clean`` as it was before its Latin-1 fast path."""
    if not text.isascii():
        text = _INVISIBLE_RE.sub("", text)
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
    return text


def reference_keys(text: str) -> str:
    return " ".join(t.key for t in tokenize(text))


LATIN1 = [chr(c) for c in range(256)]
MARKS = ["\u2019", *TYPOGRAPHIC_SEPARATORS]
# Latin-1 text weighted towards words, apostrophes and possessives, so the fast path runs.
LATIN = st.lists(st.one_of(
    st.sampled_from(LATIN1 + MARKS),
    st.sampled_from(["a", "S", "s", "'", "’", " ", "  ", "'s", "’S", "é", "Æ", "\n", "_"]),
), max_size=60).map("".join)
# And any Unicode: the fast path must decline what it cannot fold.
ANY = st.one_of(LATIN, st.text(max_size=60),
                st.text(st.sampled_from(LATIN1 + MARKS + ["ß", "\u0301", "ʼ", "ﬁ", "ط"]),
                        max_size=40))


@settings(max_examples=500)  # cheap, and the paths must agree everywhere
@given(ANY)
@example("Haftar’s forces, near al-Sarraj's office")
@example("x's'y a's's 'tis rock 'n' roll a''b O’Brien’S")
@example("ª ² ¼ µ ß ÿ Æ × ÷ \u00ad \u00a0 “quoted” – — …")
def test_the_fast_clean_is_the_full_clean(text: str) -> None:
    assert clean(text) == reference_clean(text)


@settings(max_examples=500)  # cheap, and the paths must agree everywhere
@given(ANY)
@example("Haftar’s forces, near al-Sarraj's office")
@example("x's'y a's's 'tis rock 'n' roll a''b O’Brien’S s's 's")
@example("ª ² ¼ µ ß ÿ Æ × ÷ \u00ad \u00a0 “quoted” – — …")
@example("a" + " " * 5000 + "b")
def test_the_fast_scan_is_the_full_scan(text: str) -> None:
    cleaned = clean(text)
    expected = reference_keys(cleaned)
    fast = latin1_keys(cleaned)
    assert fast is None or fast == expected
    assert scan_keys(cleaned) == joined_keys(cleaned) == expected


@settings(max_examples=500)  # cheap, and the paths must agree everywhere
@given(ANY)
@example("Haftar’s forces, near al-Sarraj's office")
@example("  ’tis x's'y  a's's … ")
@example("")
def test_the_fast_offsets_are_the_full_offsets(text: str) -> None:
    cleaned = clean(text)
    tokens = tokenize(cleaned)
    ft = FieldText(cleaned)
    assert ft.scan == " ".join(t.key for t in tokens)
    assert len(ft.offsets) == len(tokens)
    assert [ft.offsets[i] for i in range(len(tokens))] == [(t.start, t.end) for t in tokens]
    with pytest.raises(IndexError):
        ft.offsets[len(tokens)]
    built = FieldText.of(text)  # cleans, and keeps the fold when it has one
    assert built.text == cleaned
    assert built.scan == ft.scan
    assert [built.offsets[i] for i in range(len(tokens))] == [(t.start, t.end) for t in tokens]


@given(st.text(st.sampled_from([c for c in LATIN1 if c not in "ßµ¼½¾"] + MARKS),
               max_size=80))
def test_latin1_text_takes_the_fast_path(text: str) -> None:
    assert latin1_keys(clean(text)) is not None


def test_every_latin1_character_folds_alone_and_in_a_word() -> None:
    for char in LATIN1 + MARKS:
        for text in (char, f"a{char}b", f"{char}'s", f"x’{char}", f"{char}{char} {char}"):
            cleaned = clean(text)
            assert cleaned == reference_clean(text), repr(text)
            fast = latin1_keys(cleaned)
            assert fast is None or fast == reference_keys(cleaned), repr(text)


# ---------------------------------------------------------------- the bench corpus

def reference_document(**texts: str) -> Document:
    """A document read by the full path alone: the old ``clean``, every word read by
    ``tokenize``, and its offsets and cased forms from the same tokens."""
    fields = {}
    for name, raw in texts.items():
        ft = FieldText(reference_clean(raw))
        tokens = tokenize(ft.text)
        # cached_property reads the instance dict first: these stand in for the fast paths.
        ft.__dict__.update(_squeezed=None,  # the general path: every key looked for
                           scan=" ".join(t.key for t in tokens),
                           cased_seq=tuple(t.cased for t in tokens),
                           offsets=[(t.start, t.end) for t in tokens])
        fields[name] = ft
    return Document(fields)


def _summary(matches: list[WatchlistMatch]) -> list[tuple[str, int, tuple[object, ...]]]:
    return [(m.watchlist, r.index, tuple((t.field, t.start, t.end, t.text) for t in r.terms))
            for m in matches for r in m.rules]


def test_the_bench_corpus_matches_as_with_the_full_path() -> None:
    watchlists = _watchlists(rules(2_000))
    matcher = Matcher.of(watchlists)
    matched = fast_path = 0
    for n, item in enumerate(items(400)):
        texts = {"title": item.title, "summary": item.summary, "content": item.content}
        fast = _summary(matcher.match(Document.of(**texts)))
        reference = reference_document(**texts)
        assert fast == _summary(matcher.match(reference)), item
        if n < 100:  # every rule evaluated, without the prefilter: slow, so on a sample
            assert fast == _summary([m for wl in watchlists
                                     if (m := wl.match(reference)) is not None]), item
        matched += bool(fast)
        fast_path += latin1_keys(clean(item.content)) is not None
    assert fast_path == 400  # the bench corpus is Latin-1 with ’: all on the fast path
    assert matched > 20  # the corpus exercises matching, not only the quiet path


def test_keys_of_other_scripts_match_in_latin1_fields_as_on_the_full_path() -> None:
    """A field on the fast path does not look for a key with a letter Latin-1 lacks (the
    example watchlist's Arabic aliases and their clitic forms): the matches are the full
    path's, which looks."""
    example = ROOT / "config" / "watchlists.yaml"
    matcher = Matcher.of([compile_watchlist(spec) for spec in load_watchlists(example)])
    texts = [cold_item(1, 0, n, 1.0) for n in range(60)]
    docs = [{"title": t["title"], "summary": t["body"]} for t in texts]
    docs += [{"title": "Haftar’s LNA near Tripoli", "summary": "قوات حفتر في طرابلس"},
             {"title": "وليبيا Libya", "content": "the Berlin conference on Libya"}]
    matched = 0
    for texts_ in docs:
        fast = _summary(matcher.match(Document.of(**texts_)))
        assert fast == _summary(matcher.match(reference_document(**texts_))), texts_
        matched += bool(fast)
    assert matched > 40  # most items hold a term of the watch

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.text import (
    _markup_text,
    _plain_markup,
    _TextExtractor,
    clean,
    clitic_forms,
    fold,
    html_to_text,
    tokenize,
)


def test_markup_is_stripped_and_inline_tags_join_words() -> None:
    assert html_to_text("<p>Clashes in Trip<b>oli</b></p><p>Haftar&rsquo;s forces</p>") == (
        "Clashes in Tripoli\nHaftar’s forces")


def test_script_and_style_are_dropped_and_br_separates() -> None:
    assert html_to_text("a<script>alert('x')</script>b<br>c<style>p{}</style>") == "ab\nc"


def test_entities_are_decoded_in_plain_text() -> None:
    assert html_to_text("AT&amp;T &lt;3 caf&eacute;") == "AT&T <3 café"


def test_invisible_characters_are_removed() -> None:
    assert clean("Trip\u00adoli\u200b \u202eLibya\u202c") == "Tripoli Libya"


def test_fold_ignores_case_accents_width_and_possessive() -> None:
    assert fold("LIBYA") == fold("Libya") == fold("Libya’s") == fold("Libya's") == "libya"
    assert fold("Ｌｉｂｙａ") == "libya"  # full-width
    assert fold("Sarràj") == "sarraj"
    assert fold("Libyan") != fold("Libya")


def test_arabic_letter_variants_and_harakat_fold() -> None:
    assert fold("طرابلس") == fold("طَرَابُلُس")  # harakat
    assert fold("أحمد") == fold("احمد")  # alef with hamza
    assert fold("ليبيــا") == fold("ليبيا")  # tatweel
    assert fold("حكومة") == fold("حكومه")  # taa marbuta


def test_tokens_carry_offsets_into_the_text() -> None:
    text = clean("Haftar’s LNA, near al-Sarraj.")
    toks = tokenize(text)
    assert [t.key for t in toks] == ["haftar", "lna", "near", "al", "sarraj"]
    assert [text[t.start:t.end] for t in toks] == ["Haftar’s", "LNA", "near", "al", "Sarraj"]
    assert toks[1].cased == "LNA"


def test_words_with_combining_marks_stay_whole() -> None:
    toks = tokenize(clean("طَرَابُلُس"))
    assert len(toks) == 1


def test_arabic_clitic_forms() -> None:
    assert "بطرابلس" in clitic_forms(fold("طرابلس"))
    assert "للجيش" in clitic_forms(fold("الجيش"))
    assert clitic_forms(fold("لد")) == ("ولد",)
    assert clitic_forms("tripoli") == ()


_PIECES = ["<p>", "</p>", "<P >", "<br/>", "<br />", "<b>", "</B>", "<span>", "</div>",
           "<script>", "</script>", "<style>", "<img/>", "<a href='x'>", "</a>", "<!-- c -->",
           "<", ">", "&amp;", "&lt;b&gt;", "&#27;", "&#x41;", "&eacute", "&", ";", " ", "\n",
           "\t", "\u00a0", "Libya", "Trip", "oli", "</p/>", "<p", "</", "x"]


def _parser_text(markup: str) -> str:
    """html_to_text by HTMLParser alone (the reference the fast paths follow)."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join))
def test_markup_fast_paths_read_as_htmlparser_does(markup: str) -> None:
    assert _markup_text(markup) == _parser_text(markup)


def test_plain_markup_takes_the_fast_path() -> None:
    assert _plain_markup("<p>AT&amp;T</p>x<br/>y") == ["\n", "AT&T", "\n", "x", "\n", "y"]
    assert _plain_markup("<p>a<script>b</script></p>") is None
    assert _plain_markup("<a href='x'>a</a>") is None
    assert _plain_markup("a < b") is None

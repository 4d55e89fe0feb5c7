"""Property tests (hypothesis): the query parser raises nothing but QueryError, the text
layer raises nothing at all, and feed bytes give a feed or a FeedError."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import FeedError, QueryError
from monitor.match.query import parse
from monitor.parse import parse_feed
from monitor.text import clean, fold, html_to_text, tokenize

FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Rules built from the language's own pieces find more than random text does.
PIECES = st.sampled_from([
    "Libya", "Tripoli", "Liby*", "*", '"', '"Berlin conference"', "AND", "OR", "NOT",
    "NEAR/3", "NEAR/", "NEAR/99999999999999999999", "ONEAR/2", "(", ")", "@khalifa-haftar",
    "@", "title:", "url:", "nofield:", "طرابلس", "\u200b", "\u00ad", "’s", "'", "\\", ":",
    "and", "or", "not", "-", "ﻻ", "Ⅻ", "\x00", "\ud800", " ", "\t", "\n",
])
RULES = st.one_of(st.text(max_size=200),
                  st.lists(PIECES, max_size=30).map(" ".join),
                  st.lists(PIECES, max_size=30).map("".join))


@FUZZ
@given(RULES)
def test_the_query_parser_raises_only_query_error(rule: str) -> None:
    try:
        parse(rule)
    except QueryError as exc:
        assert exc.column >= 1


MARKUP = st.sampled_from([
    *"<>&;#x/ =\"'!-[]", "<b>", "</b>", "<script>", "&amp;", "&#", "&#x", "<!--", "<![CDATA[",
    "\ud800", "\x00", "ا", "\u0640", "\u064b", "&#xD800;", "&#99999999999;", "<p", "</", "'s",
    *string.ascii_letters,
])
TEXT = st.one_of(st.text(max_size=500), st.lists(MARKUP, max_size=120).map("".join))


@FUZZ
@given(TEXT)
def test_the_text_layer_never_raises(text: str) -> None:
    plain = html_to_text(text)
    cleaned = clean(plain)
    assert clean(cleaned) == cleaned
    for token in tokenize(cleaned):
        assert 0 <= token.start < token.end <= len(cleaned)
        fold(cleaned[token.start:token.end])


FEEDISH = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.sampled_from([
        b'<?xml version="1.0"?>', b"<rss>", b'<rss version="2.0">', b"<channel>", b"<item>",
        b"</item>", b"<title>", b"</title>", b"Tripoli", b"&#xD800;", b"&#0;", b"&amp;",
        b"&lol;", b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<guid>", b"</guid>", b"\x00",
        b"\xff\xfe", b"<feed xmlns='http://www.w3.org/2005/Atom'>", b"<entry>", b"<author>",
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [', b"{", b"}", b"[",
        b"]", b'"', b"<pubDate>Sat, 01 Jan 10000 00:00:00 GMT</pubDate>", b"<!DOCTYPE rss>",
    ]), max_size=60).map(b"".join),
)


@FUZZ
@given(FEEDISH)
def test_feed_bytes_give_a_feed_or_a_feed_error(body: bytes) -> None:
    try:
        feed = parse_feed(body)
    except FeedError:
        return
    for e in feed.entries:
        for value in (e.title, e.summary, e.content, e.author, e.guid or "", e.link or ""):
            assert "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)

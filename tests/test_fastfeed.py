"""The fast reader gives what feedparser gives, or leaves the feed to feedparser.

Every document here is parsed twice, ``parse_feed(fast=True)`` and ``fast=False``
(feedparser only), and the two results must be equal: ids, links, titles, summaries,
contents, authors, dates, the feed's title, link, ttl, hub and self link, the warning.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from corpus import load_cases
from feedparser.datetimes import _parse_date
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import FeedError
from monitor.fastfeed import fast_parse
from monitor.parse import (
    ParsedFeed,
    _common_date,
    _date,
    _entry_date,
    _plain,
    _scrub,
    parse_feed,
)
from monitor.text import html_to_text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.corpus import feed_body  # the bench's seeded corpus

XML = {"Content-Type": "application/xml"}
URL = "https://example.org/feed"


def both(body: bytes, headers: dict[str, str] | None = None) -> tuple[Any, Any, bool]:
    """(fast result, feedparser's result, whether the fast reader took it)."""
    headers = XML if headers is None else headers
    out = []
    for fast in (True, False):
        try:
            out.append(parse_feed(body, headers, URL, fast=fast))
        except FeedError as exc:
            out.append(f"FeedError: {exc}")
    return out[0], out[1], fast_parse(body, headers) is not None


@pytest.mark.parametrize("generation", [0, 2])
def test_the_bench_corpus_reads_the_same_and_takes_the_fast_path(generation: int) -> None:
    for feed in range(30):  # RSS 2.0, Atom, RDF in turn; xml:base, entities, no guids
        fast, slow, quick = both(feed_body(7, feed, generation))
        assert quick, feed
        assert isinstance(fast, ParsedFeed) and len(fast.entries) == 20
        assert fast == slow, feed


def rss(items: str, channel: str = "<title>T &amp; co</title><link>https://e.org/</link>"
        ) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>{channel}'
            f"{items}</channel></rss>").encode()


def atom(entries: str, head: str = "<title>A</title><id>urn:f</id>",
         base: str = ' xml:base="https://e.org/n/"') -> bytes:
    return (f'<feed xmlns="http://www.w3.org/2005/Atom"{base}>{head}{entries}'
            "</feed>").encode()


RDF = ('<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
       'xmlns="http://purl.org/rss/1.0/"><channel rdf:about="https://e.org/">'
       "<title>R</title><link>https://e.org/</link><description>d</description></channel>"
       '{}</rdf:RDF>')

# Documents the fast reader takes: its answer must be feedparser's.
TAKEN = {
    "entities and markup in a title": rss(
        "<item><title>Libya &amp;amp; &lt;b&gt;Haftar&lt;/b&gt; &#8217;s &#x2014; ok</title>"
        '<guid isPermaLink="false"> g1 </guid><link> https://e.org/1 </link></item>'),
    "cdata description with html": rss(
        "<item><title>t</title><description><![CDATA[<p>In <i>Tripoli</i> &amp; "
        "Sirte</p><script>x()</script>]]></description>"
        "<pubDate>Sun, 19 Jan 2020 12:00:00 +0100</pubDate></item>"),
    "dates feedparser reads its own way": rss(
        "<item><title>a</title><pubDate>Sun, 19 Jan 2020 12:00:00 EST</pubDate></item>"
        "<item><title>b</title><pubDate>19 Jan 20 12:00 GMT</pubDate></item>"
        "<item><title>c</title><pubDate>yesterday</pubDate></item>"
        "<item><title>d</title><pubDate>2020-01-19T12:00:00+02:00</pubDate></item>"),
    "ttl and empty elements": rss(
        "<item><title/><description/></item>",
        "<title>T</title><link>https://e.org/</link><ttl>90</ttl><description/>"),
    "no guid and no link": rss("<item><title>Only a title</title>"
                               "<description>and text</description></item>"),
    "whitespace and newlines": rss("<item><title>\n  Two\n  lines  </title>"
                                   "<description>\r\n a \t b \r\n</description></item>"),
    "atom with hub, self, text and html": atom(
        '<entry><id>urn:1</id><title type="text">1 &lt; 2 &amp;amp; b</title>'
        '<link rel="alternate" href="https://e.org/1"/><updated>2020-01-19T12:00:00Z</updated>'
        '<published>2020-01-18T10:00:00+01:00</published>'
        '<summary type="html">&lt;b&gt;Sum&lt;/b&gt;</summary></entry>'
        '<entry><id>urn:2</id><title>No link</title><content>plain &lt;i&gt;</content></entry>',
        '<title type="html">A &amp;amp; B</title><id>urn:f</id>'
        '<link rel="self" href="https://e.org/feed"/><link rel="hub" href="https://hub.e.org/"/>'
        '<link href="https://e.org/"/><subtitle>s</subtitle><updated>2020-01-19T12:00:00Z</updated>'),
    "atom relative links under xml:base": atom(
        '<entry><id>urn:1</id><title>t</title><link href="a/1"/></entry>'
        '<entry><id>urn:2</id><title>t</title><link href="b.html"/>'
        '<content type="html">&lt;p&gt;x&lt;/p&gt;</content></entry>'),
    "atom entry without an id": atom('<entry><title>t</title>'
                                     '<link href="https://e.org/x"/></entry>', base=""),
    "permalink guids": rss(
        "<item><title>a</title><guid>https://e.org/g1</guid></item>"
        "<item><title>b</title><guid isPermaLink=\"true\">https://e.org/g2</guid>"
        "<link>https://e.org/l2</link></item>"
        "<item><title>c</title><link>https://e.org/l3</link>"
        "<guid> https://e.org/g3 </guid></item>"),
    "rdf": RDF.format('<item rdf:about="https://e.org/1"><title>t &amp; u</title>'
                      "<link>https://e.org/1</link><description>&lt;p&gt;d</description>"
                      "</item>").encode(),
    "an empty channel": rss(""),
    "plain markup, block and inline, with references": rss(
        "<item><title>t</title><description>&lt;p&gt;In &lt;b&gt;Trip&lt;/b&gt;oli&lt;br/&gt;"
        "AT&amp;amp;T &amp;eacute; &amp;#27;&lt;/P &gt;&lt;SPAN&gt;x&lt;/span&gt;&lt;hr /&gt;"
        "y &amp;lt;z&lt;/p&gt;</description></item>"
        "<item><title>u</title><description>&lt;p&gt;a &lt; b&lt;/p&gt;&lt;img src='i'/&gt;"
        "&lt;em&gt;c&lt;/em&gt;</description></item>"),
    "dates in the common forms and near them": rss(
        "<item><title>a</title><pubDate>Mon, 19 Jan 2026 12:00:00 GMT</pubDate></item>"
        "<item><title>b</title><pubDate>9 Feb 2026 23:59:59 -0830</pubDate></item>"
        "<item><title>c</title><pubDate>Sat, 31 Feb 2026 12:00:00 GMT</pubDate></item>"
        "<item><title>d</title><pubDate>Mon, 19 Jan 1899 12:00:00 +0100</pubDate></item>"),
    "atom dates, updated standing in for published": atom(
        "<entry><id>urn:1</id><title>t</title><updated>2026-01-19T12:00:00-05:30</updated>"
        "</entry><entry><id>urn:2</id><title>t</title><published>2026-02-30T00:00:00Z"
        "</published><updated>2026-01-19T12:00:00Z</updated></entry>"
        "<entry><id>urn:3</id><title>t</title><published>nonsense</published>"
        "<updated>2026-01-19T12:00:00+01:00</updated></entry>"),
}

# Documents it must leave to feedparser.
LEFT = {
    "permalink guid that is not a URL": rss("<item><title>t</title><guid>g1</guid></item>"),
    "permalink guid, odd value": rss('<item><title>t</title><guid isPermaLink="yes">'
                                     "https://e.org/1</guid></item>"),
    "relative rss link": rss("<item><title>t</title><link>/a/1</link></item>"),
    "content:encoded": rss('<item xmlns:content="http://purl.org/rss/1.0/modules/content/">'
                           "<content:encoded>x</content:encoded></item>"),
    "author": rss("<item><title>t</title><author>a@e.org (A)</author></item>"),
    "dc:creator": rss('<item xmlns:dc="http://purl.org/dc/elements/1.1/"><title>t</title>'
                      "<dc:creator>A</dc:creator></item>"),
    "doctype": b'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "x.dtd">' + rss("")[21:],
    "latin-1": rss("<item><title>Sarr\xe0j</title></item>").replace(
        b"utf-8", b"iso-8859-1").decode().encode("latin-1"),
    "malformed": rss("<item><title>t</item>"),
    "xhtml content": atom('<entry><id>u</id><content type="xhtml"><div xmlns='
                          '"http://www.w3.org/1999/xhtml">x</div></content></entry>'),
    "nested xml:base": atom('<entry xml:base="sub/"><id>u</id><link href="a"/></entry>'),
    "parent-relative link": atom('<entry><id>u</id><link href="../a"/></entry>'),
    "two titles": rss("<item><title>a</title><title>b</title></item>"),
    "unknown root": b"<opml><body/></opml>",
    "control character": rss("<item><title>a&#1;b</title></item>"),
}


@pytest.mark.parametrize("name", sorted(TAKEN))
def test_what_the_fast_reader_takes_reads_as_feedparser_reads_it(name: str) -> None:
    fast, slow, quick = both(TAKEN[name])
    assert quick, f"{name}: left to feedparser"
    assert fast == slow


@pytest.mark.parametrize("name", sorted(LEFT))
def test_what_it_does_not_know_goes_to_feedparser(name: str) -> None:
    fast, slow, quick = both(LEFT[name])
    assert not quick
    assert fast == slow


@pytest.mark.parametrize("headers", [
    {"Content-Type": "text/html"}, {"Content-Type": "text/plain"},
    {"Content-Type": "application/rss+xml; charset=iso-8859-1"}])
def test_content_types_feedparser_warns_about_go_to_feedparser(
        headers: dict[str, str]) -> None:
    body = TAKEN["rdf"]
    fast, slow, quick = both(body, headers)
    assert not quick and fast == slow


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "application/rss+xml; charset=utf-8"},
                                     {"content-type": "text/xml"}])
def test_plain_xml_content_types_take_the_fast_path(headers: dict[str, str]) -> None:
    fast, slow, quick = both(TAKEN["entities and markup in a title"], headers)
    assert quick and fast == slow


def test_the_adversarial_corpus_reads_the_same_either_way() -> None:
    taken = 0
    for case in load_cases().CASES:
        if case.heavy or case.serve != "plain":
            continue
        headers = {"Content-Type": case.content_type} if case.content_type else {}
        fast, slow, quick = both(case.data(), headers)
        assert fast == slow, case.name
        taken += quick
    assert taken >= 1  # some of it is plain enough to take the fast path


def test_entities_are_refused_before_either_reader_sees_them() -> None:
    body = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e "x">]>'
            b'<rss version="2.0"><channel><title>&e;</title></channel></rss>')
    with pytest.raises(FeedError, match="declares XML entities"):
        parse_feed(body, XML)
    assert fast_parse(body, XML) is None


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=" \t\r\f\v\u00a0\n\u2028\u3000\x1cab", max_size=20))
def test_blank_runs_collapse_as_the_plain_definition_says(text: str) -> None:
    """html_to_text skips lone spaces and texts without line breaks: same result."""
    plain = re.sub(r"\s*\n\s*", "\n", re.sub(r"[ \t\r\f\v\u00a0]+", " ", text)).strip()
    assert html_to_text(text) == plain


_DAYS = ["Mon, ", "Sun, ", "Sat, ", "Thu, ", "", "Xyz, "]
_MONTH_NAMES = ["Jan", "Feb", "Oct", "Dec", "May", "Sept", "jan"]
_ZONES = ["GMT", "UTC", "UT", "Z", "EST", "+0000", "-0000", "+0530", "-0800", "+9959",
          "+05:30", "gmt", ""]


@st.composite
def _date_strings(draw: st.DrawFn) -> str:
    year = draw(st.sampled_from(["1900", "1970", "2026", "2999", "3000", "0001", "1899",
                                 "26", "99"]))
    month = draw(st.integers(0, 13))
    day = draw(st.integers(0, 32))
    clock = draw(st.sampled_from(["00:00:00", "12:00:00", "23:59:59", "23:59:60",
                                  "24:00:00", "12:00", "12:00:00.5", "7:05:09"]))
    if draw(st.booleans()):  # RFC 822
        name = draw(st.sampled_from(_MONTH_NAMES)) if 1 <= month <= 12 else "Foo"
        return (f"{draw(st.sampled_from(_DAYS))}{day:0{draw(st.sampled_from([1, 2]))}} "
                f"{name} {year} {clock} {draw(st.sampled_from(_ZONES))}").strip()
    sep = draw(st.sampled_from(["T", "t", " "]))
    zone = draw(st.sampled_from(["Z", "z", "+00:00", "-05:30", "+0530", "+14:00", ""]))
    return f"{year}-{month:02}-{day:02}{sep}{clock}{zone}"


@settings(max_examples=3000, deadline=None)
@given(_date_strings(), st.sampled_from([None, "", "2020-01-19T12:00:00Z", "yesterday"]))
def test_common_dates_read_as_feedparser_reads_them(published: str,
                                                     updated: str | None) -> None:
    """The direct reading of RFC 822 and W3C-DTF dates gives feedparser's datetime (or
    leaves the string to it), published before updated as ``_entry`` takes them."""
    expected = _date(_parse_date(published) or (_parse_date(updated) if updated else None))
    assert _entry_date(published, updated) == expected


def test_common_dates_take_the_direct_path() -> None:
    for text in ("Mon, 19 Jan 2026 12:00:00 GMT", "9 Jan 2026 12:00:00 +0530",
                 "2026-01-19T12:00:00Z", "2026-01-19T12:00:00-05:30"):
        assert _common_date(text) == _date(_parse_date(text)) is not None
    assert _common_date("Sat, 31 Feb 2026 12:00:00 GMT") is None  # feedparser's call
    assert _common_date("Sun, 19 Jan 2020 12:00:00 EST") is None


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(
    [" ", "  ", "\t", "\r", "\n", "\f", "\v", "\x00", "\x1b", "\x1c", "\x7f", "\x85",
     "\u00a0", "\u2028", "\u3000", "\u202e", "\ud800", "<", "<p>", "</b>", "&", "&amp;",
     "&#27;", "&lt;", ";", "a", "b", "’", "—", "é"]), max_size=12).map("".join))
def test_plain_text_skips_only_what_has_nothing_to_clean(text: str) -> None:
    """``_plain``'s shortcut for text without markup, reference, control or blank run
    gives what the full cleanup gives."""
    assert _plain(text) == _scrub(html_to_text(_scrub(text)))
    assert _plain(text, 3) == _scrub(html_to_text(_scrub(text)))[:3]


_NOT_UTF8 = [b"\xff", b"\x80", b"\xc3", b"\xc0\x80", b"\xe0\x80\x80", b"\xed\xa0\x80",
             b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xc3\xa9\xff", b"\xe2\x80"]


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from([rss("<item><title>Ti</title><description>de<!-- c --><![CDATA[x]]>"
                            "</description><guid isPermaLink=\"false\">g</guid></item>"),
                        atom('<entry><id>urn:1</id><title type="html">t</title></entry>')]),
       st.data())
def test_bytes_that_are_not_utf8_anywhere_go_to_feedparser(body: bytes,
                                                           data: st.DataObject) -> None:
    """Expat refuses what is not UTF-8, wherever it stands: the fast reader never
    reads such a body (feedparser guesses its encoding)."""
    at = data.draw(st.integers(0, len(body)))
    bad = data.draw(st.sampled_from(_NOT_UTF8) | st.binary(min_size=1, max_size=4))
    mangled = body[:at] + bad + body[at:]
    try:
        mangled.decode("utf-8")
    except UnicodeDecodeError:
        assert fast_parse(mangled, XML) is None

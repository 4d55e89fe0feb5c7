from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest
from servers import rss

from monitor.dedup import identity
from monitor.errors import FeedError
from monitor.parse import Entry, parse_feed

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom wire</title>
<entry><id>urn:1</id><title type="html">Haftar &lt;b&gt;advances&lt;/b&gt;</title>
<link href="https://example.org/1"/><updated>2020-01-19T12:00:00Z</updated>
<content type="html">&lt;p&gt;The Berlin conference&lt;/p&gt;</content></entry></feed>"""


def test_rss_items_come_out_as_plain_text() -> None:
    feed = parse_feed(rss({"title": "Libya &amp; <b>Haftar</b>", "guid": "g1",
                           "description": "<p>In Trip<i>oli</i></p>",
                           "pubDate": "Sun, 19 Jan 2020 12:00:00 +0100"}).encode())
    (e,) = feed.entries
    assert e.title == "Libya & Haftar"
    assert e.summary == "In Tripoli"
    assert e.guid == "g1"
    assert e.published == datetime(2020, 1, 19, 11, 0, tzinfo=UTC)
    assert feed.title == "Test feed"


def test_atom_entries() -> None:
    (e,) = parse_feed(ATOM.encode()).entries
    assert (e.guid, e.link, e.title) == ("urn:1", "https://example.org/1", "Haftar advances")
    assert e.summary == "The Berlin conference" and e.content == ""


def test_an_entry_read_by_either_parser_is_an_entry_like_any_other() -> None:
    """``_entry`` makes an ``Entry`` without its ``__init__``: it must set every field,
    in order, and nothing else."""
    for fast in (True, False):
        for e in (*parse_feed(ATOM.encode(), fast=fast).entries,
                  *parse_feed(rss({"title": "Tripoli", "guid": "g1"}).encode(),
                              fast=fast).entries):
            assert list(vars(e)) == [f.name for f in fields(Entry)]
            assert e == Entry(**vars(e))


def test_charset_comes_from_the_headers() -> None:
    body = rss({"title": "Sarràj"}).replace('encoding="utf-8"', "").encode("latin-1")
    feed = parse_feed(body, {"Content-Type": "application/rss+xml; charset=iso-8859-1"})
    assert feed.entries[0].title == "Sarràj"


@pytest.mark.parametrize(("body", "error"), [
    (b"", "not a feed: empty body"),
    (b"<!DOCTYPE html><html><body>hello</body></html>",
     "not a feed: the URL returned an HTML page"),
    (b"just some text", "not a feed"),
])
def test_what_is_not_a_feed_is_an_error(body: bytes, error: str) -> None:
    with pytest.raises(FeedError, match=error):
        parse_feed(body)


def test_malformed_but_readable_feed_keeps_its_items_with_a_warning() -> None:
    body = rss({"title": "Libya"}).replace("</channel></rss>", "<item><title>broken")
    feed = parse_feed(body.encode())
    assert feed.entries[0].title == "Libya"
    assert feed.warning


def test_identity_is_guid_else_link_else_content() -> None:
    a, b, c, d = parse_feed(rss(
        {"guid": "g", "link": "https://x/1", "title": "one"},
        {"guid": "g", "link": "https://x/2", "title": "two"},
        {"link": "https://x/1", "title": "three"},
        {"title": "four"},
    ).encode()).entries
    assert identity(a) == identity(b)  # same guid, same item
    assert identity(a) != identity(c)  # guid and link are different namespaces
    e, = parse_feed(rss({"title": "four"}).encode()).entries
    assert identity(d) == identity(e)
    f, = parse_feed(rss({"title": "five"}).encode()).entries
    assert identity(d) != identity(f)


JSON_FEED = """{
  "version": "https://jsonfeed.org/version/1.1",
  "title": "JSON wire",
  "home_page_url": "https://example.org/",
  "items": [
    {"id": 42, "url": "https://example.org/42", "title": "Sarraj in Berlin",
     "content_html": "<p>The <b>Berlin</b> conference</p>", "summary": "Talks",
     "date_published": "2020-01-19T12:00:00+01:00", "authors": [{"name": "Desk"}]},
    {"id": "43", "content_text": "No title, plain text"},
    "not an item"
  ]
}"""


def test_json_feed() -> None:
    feed = parse_feed(JSON_FEED.encode(), {"Content-Type": "application/feed+json"})
    assert feed.title == "JSON wire"
    a, b = feed.entries
    assert (a.guid, a.link, a.title, a.summary, a.content, a.author) == (
        "42", "https://example.org/42", "Sarraj in Berlin", "Talks", "The Berlin conference",
        "Desk")
    assert a.published == datetime(2020, 1, 19, 11, 0, tzinfo=UTC)
    assert (b.guid, b.title, b.content, b.published) == ("43", "", "No title, plain text", None)


@pytest.mark.parametrize("body", [b'{"items": []}', b"{not json"])
def test_json_that_is_not_a_json_feed(body: bytes) -> None:
    with pytest.raises(FeedError, match="not a feed"):
        parse_feed(body)


def test_an_html_page_names_the_feeds_it_advertises() -> None:
    page = (b'<!DOCTYPE html><html><head>'
            b'<link rel="alternate" type="application/rss+xml" href="/feed.xml">'
            b'<link rel="stylesheet" href="/s.css">'
            b'<link rel="alternate" type="application/atom+xml" href="https://x.org/atom">'
            b"</head><body>News</body></html>")
    with pytest.raises(FeedError) as exc:
        parse_feed(page, url="https://example.org/news/")
    assert str(exc.value) == (
        "not a feed: the URL returned an HTML page; it advertises "
        "https://example.org/feed.xml, https://x.org/atom (use that URL)")


def test_rss_ttl() -> None:
    assert parse_feed(rss({"title": "x"}, extra="<ttl>90</ttl>").encode()).ttl == timedelta(
        minutes=90)
    assert parse_feed(rss({"title": "x"}).encode()).ttl is None


def test_an_element_named_like_a_read_date_is_not_taken_for_one() -> None:
    """feedparser keeps an element it does not know under its own name: a feed's
    ``<published_at>`` is text, never the entry's date (which the store needs as a date)."""
    body = rss({"title": "Tripoli", "guid": "1", "published_at": "yesterday",
                "pubDate": "Mon, 19 Jan 2026 12:00:00 GMT"}).encode()
    (entry,) = parse_feed(body).entries
    assert entry.published == datetime(2026, 1, 19, 12, 0, tzinfo=UTC)

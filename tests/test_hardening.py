"""One test per fix the adversarial corpus led to (tests/data/adversarial/)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import pytest
from servers import FeedServer, rss
from test_fetch import fetch

from monitor.errors import FeedError
from monitor.parse import parse_feed
from monitor.schedule import next_check, retry_after

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
QUADRATIC = (b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "' + b"A" * 5000
             + b'">\n]>\n<rss version="2.0"><channel><title>t</title><item><title>x</title>'
             b"<description>" + b"&a;" * 1000 + b"</description></item></channel></rss>")


@pytest.mark.parametrize("body", [
    QUADRATIC,
    QUADRATIC.decode().replace("utf-8", "utf-16").encode("utf-16"),
    QUADRATIC.replace(b"<!ENTITY", b"<!entity"),
])
def test_a_document_declaring_entities_is_refused_before_feedparser(body: bytes) -> None:
    # feedparser's lenient parser expanded this kind of document: 14 GB for 300 kB
    with pytest.raises(FeedError, match="declares XML entities"):
        parse_feed(body)


def test_an_external_doctype_without_entities_still_parses() -> None:
    body = rss({"title": "Tripoli", "guid": "1"}).replace(
        "<rss", '<!DOCTYPE rss SYSTEM "file:///etc/passwd">\n<rss', 1)
    (entry,) = parse_feed(body.encode()).entries
    assert entry.title == "Tripoli"


def test_references_to_surrogates_and_past_unicode_do_not_crash_feedparser() -> None:
    body = rss({"title": "x", "guid": "1"}).replace(
        "<title>x</title>", "<title>Tripoli &#xD800; &#56320; &#x110000;</title>")
    (entry,) = parse_feed(body.encode()).entries
    assert entry.title.startswith("Tripoli") and "\ud800" not in entry.title


def test_control_characters_never_reach_the_store() -> None:
    body = rss({"title": "Tripoli\x00 \x1b[31mred\x1b[0m\x07", "guid": "g\x00"})
    (entry,) = parse_feed(body.encode()).entries
    assert entry.title == "Tripoli [31mred[0m" and entry.guid == "g"


def test_bidi_overrides_are_removed_so_text_displays_as_it_reads() -> None:
    body = rss({"title": "Invoice \u202egnp.exe\u202c \u2067x\u2069", "guid": "1"})
    (entry,) = parse_feed(body.encode()).entries
    assert entry.title == "Invoice gnp.exe x"


def test_json_feed_lone_surrogates_and_controls_are_removed() -> None:
    body = (b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "a\\u0000",'
            b' "title": "Tripoli \\ud800 \\u001b[1m", "url": "http://x/\\u0000"}]}')
    (entry,) = parse_feed(body).entries
    assert (entry.guid, entry.title, entry.link) == ("a", "Tripoli [1m", "http://x/")


@pytest.mark.parametrize(("body", "reason"), [
    (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
    (b'{"version": "https://jsonfeed.org/version/1.1", "n": ' + b"9" * 10_000 + b"}",
     "unreadable JSON"),
])
def test_hostile_json_is_a_feed_error(body: bytes, reason: str) -> None:
    with pytest.raises(FeedError, match=reason):
        parse_feed(body, {"Content-Type": "application/feed+json"})


def test_only_the_first_max_entries_are_read_and_the_warning_says_so() -> None:
    body = rss(*({"title": f"t{i}", "guid": str(i)} for i in range(30)))
    parsed = parse_feed(body.encode(), max_entries=10)
    assert [e.guid for e in parsed.entries] == [str(i) for i in range(10)]
    assert parsed.warning is not None and "has 30 entries; only the first 10" in parsed.warning


@pytest.mark.parametrize("value", ["99999999999999999999", "9" * 5000, "²"])
def test_a_hostile_retry_after_is_capped_not_a_crash(value: str) -> None:
    delay = retry_after({"Retry-After": value}, NOW)
    assert delay is None or delay <= timedelta(days=7)
    decision = next_check(NOW, interval=timedelta(minutes=5), status=429, ok=False,
                          failures=1, headers={"Retry-After": value,
                                               "Cache-Control": "max-age=" + "9" * 5000})
    assert decision.at <= NOW + timedelta(days=7)


def test_a_truncated_gzip_body_is_refused_not_half_read(feed_server: FeedServer) -> None:
    whole = gzip.compress(rss(*({"title": f"t{i}", "guid": str(i)}
                                for i in range(200))).encode())
    url = feed_server.serve("/t", whole[: len(whole) // 2], **{"Content-Encoding": "gzip"})
    assert fetch(url).error == "could not decode the body: the compressed stream is truncated"

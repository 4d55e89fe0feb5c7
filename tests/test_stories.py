"""Same story, many feeds: clustering (pure) and one alert listing every source."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

from conftest import Workspace
from hypothesis import example, given, settings
from hypothesis import strategies as st
from servers import FeedServer, rss

from bench.corpus import item
from monitor.dedup import (
    MAX_DISTANCE,
    StoryCandidate,
    StoryIndex,
    StoryKeys,
    hamming,
    simhash,
    story_keys,
    title_key,
)
from monitor.text import clean, tokenize

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
WIRE = ("Forces loyal to Khalifa Haftar shelled the southern suburbs of Tripoli on Sunday, "
        "officials of the Government of National Accord said, as the offensive on the "
        "Libyan capital entered its sixth month with no sign of a ceasefire.")


def test_titles_match_across_case_punctuation_and_accents() -> None:
    assert title_key("Haftar shells Tripoli suburbs") == title_key("HAFTAR shells Tripoli’s "
                                                                   "suburbs!")
    assert title_key("Haftar shells Tripoli suburbs") != title_key("Haftar visits Cairo today")
    assert title_key("Breaking news") is None  # too short to name a story


def test_lightly_edited_copy_is_near_and_other_text_is_far() -> None:
    a = simhash(WIRE)
    b = simhash(WIRE.replace("on Sunday", "on Sunday morning") + " (Reuters)")
    c = simhash("The central bank in Tripoli kept interest rates unchanged, citing inflation "
                "and the falling price of oil on world markets this quarter.")
    assert a and b and c
    assert hamming(a, b) <= MAX_DISTANCE < hamming(a, c)


def reference_simhash(text: str, shingle: int = 3) -> str | None:
    """The SimHash as first written, bit by bit in Python: the definition."""
    words = [t.key for t in tokenize(clean(text))]
    if len(words) < 8:
        return None
    weights = [0] * 64
    for i in range(len(words) - shingle + 1):
        gram = " ".join(words[i : i + shingle]).encode("utf-8", "surrogatepass")
        h = int.from_bytes(hashlib.blake2b(gram, digest_size=8).digest(), "big")
        for bit in range(64):
            weights[bit] += 1 if h >> bit & 1 else -1
    return f"{sum(1 << bit for bit in range(64) if weights[bit] > 0):016x}"


WORDS = st.sampled_from(["Haftar", "Tripoli’s", "LNA", "said", "the", "ceasefire", "a",
                         "طرابلس", "Sarraj", "\u00e9t\u00e9", "O'Brien", "x_y", "\ud800", "ǰ"])


@given(st.lists(WORDS, max_size=60).map(" ".join), st.integers(1, 4))
@example(WIRE, 3)
def test_simhash_is_the_bit_by_bit_definition(text: str, shingle: int) -> None:
    assert simhash(text, shingle) == reference_simhash(text, shingle)


def test_simhash_of_the_bench_corpus_is_the_definition() -> None:
    for n in range(200):
        body = item(1, n % 7, n, 0.5)["body"]
        assert simhash(body) == reference_simhash(body)
    assert simhash(WIRE * 400) == reference_simhash(WIRE * 400)  # counts past one byte


def test_a_story_is_the_earliest_one_matched_within_the_window() -> None:
    keys = story_keys("Haftar shells Tripoli suburbs", WIRE)
    old = StoryCandidate(1, 1, 10, NOW - timedelta(days=3), keys.title_key, keys.simhash)
    first = StoryCandidate(2, 2, 11, NOW - timedelta(hours=2), keys.title_key, None)
    second = StoryCandidate(3, 2, 12, NOW - timedelta(hours=1), None, keys.simhash)
    other = StoryCandidate(4, 4, 13, NOW, title_key("Central bank keeps rates unchanged"),
                           simhash("entirely different words about the weather and "
                                   "football and cooking recipes today"))
    window = timedelta(hours=48)
    assert StoryIndex([old, second, first, other]).find(keys, now=NOW, window=window) == 2
    assert StoryIndex([old, other]).find(keys, now=NOW, window=window) is None


def wire_item(outlet: str, title: str) -> dict[str, str]:
    return {"title": title, "link": f"https://{outlet}.example/haftar",
            "guid": f"https://{outlet}.example/haftar", "description": WIRE}


def test_three_feeds_carrying_one_story_give_one_alert_listing_three_sources(
    workspace: Workspace, feed_server: FeedServer
) -> None:
    feeds = [
        feed_server.serve("/a.xml", rss(wire_item("alpha", "Haftar shells Tripoli suburbs"),
                                        title="Alpha News")),
        feed_server.serve("/b.xml", rss(wire_item("beta", "Haftar shells Tripoli suburbs"),
                                        title="Beta Daily")),
        feed_server.serve("/c.xml", rss(wire_item("gamma", "UPDATE 1-Haftar's forces shell "
                                                  "Tripoli's southern suburbs"),
                                        title="Gamma Wire")),
    ]
    workspace.write(feeds=feeds, channels=[("desk", "alertfile://alerts.log")])
    run = workspace.monitor("run", "--once")
    assert run.code == 0, run.err
    assert "3 new items, 3 matches; alerts: 1 sent" in run.out
    log = (workspace.root / "alerts.log").read_text()
    assert log.count("=== ") == 1
    feed_line = re.search(r"^Feed: (.*)$", log, re.M)
    also_line = re.search(r"^Also reported by: (.*)$", log, re.M)
    assert feed_line and also_line
    sources = {name for name in ("Alpha News", "Beta Daily", "Gamma Wire")
               if name in feed_line.group(1) or name in also_line.group(1)}
    assert sources == {"Alpha News", "Beta Daily", "Gamma Wire"}
    # the same feeds again: nothing new, nothing sent
    again = workspace.monitor("run", "--once")
    assert "0 new items" in again.out and (workspace.root / "alerts.log").read_text() == log


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.sampled_from([None, "a", "b"]),
                          st.integers(0, 72), st.integers(0, 13),
                          st.permutations(range(64)), st.booleans(), st.integers(1, 50)),
                max_size=30),
       st.lists(st.tuples(st.integers(0, 2**64 - 1), st.sampled_from([None, "a", "c"]),
                          st.booleans()),
                min_size=1, max_size=40),
       st.integers(0, 30),
       st.sampled_from([MAX_DISTANCE, MAX_DISTANCE, 0, 1, 2, 5, 9, 11, 12, 31, 63, 64, -1]),
       st.sampled_from([0, 1, 16]))
def test_the_story_index_finds_what_a_scan_of_every_candidate_finds(
        rows: list[tuple[int, str | None, int, int, list[int], bool, int]],
        queries: list[tuple[int, str | None, bool]], given_first: int,
        max_distance: int, scans: int) -> None:
    """``StoryIndex.find`` (a dict of titles, SimHash bands built after ``scans`` finds)
    against the plain scan of every candidate, as ``BatchItems`` calls it: a find, then
    an add. A near candidate is a query's SimHash with 0 to 13 random bits flipped,
    around the threshold; the rest are random."""
    window = timedelta(hours=48)
    candidates = []
    for n, (noise, key, hours, flipped, order, near, story) in enumerate(rows):
        flips = sum(1 << b for b in order[:flipped])  # flipped bits, at random places
        bits = queries[noise % len(queries)][0] ^ flips if near else noise
        candidates.append(StoryCandidate(n + 1, story if n % 3 else None, 7,
                                         NOW - timedelta(hours=hours), key,
                                         None if n % 7 == 6 else f"{bits:016x}"))

    def scan(known: list[StoryCandidate], keys: StoryKeys) -> int | None:
        best: tuple[datetime, int] | None = None
        for c in known:
            same = (keys.title_key is not None and keys.title_key == c.title_key) or (
                keys.simhash is not None and c.simhash is not None
                and hamming(keys.simhash, c.simhash) <= max_distance)
            if c.fetched_at >= NOW - window and same:
                story = c.story_id if c.story_id is not None else c.item_id
                best = min(best or (c.fetched_at, story), (c.fetched_at, story))
        return None if best is None else best[1]

    known = candidates[:given_first]
    index = StoryIndex(known, scans=scans)
    for n, (bits, title, hashed) in enumerate(queries):
        keys = StoryKeys(title, f"{bits:016x}" if hashed else None)
        assert index.find(keys, now=NOW, window=window, max_distance=max_distance) == scan(
            known, keys), n
        if given_first + n < len(candidates):
            index.add(candidates[given_first + n])
            known = candidates[: given_first + n + 1]


def test_the_story_index_finds_every_simhash_within_the_distance() -> None:
    """Bits flipped at every start and stride (one in each of a run of bands, whatever
    their widths), as many as the distance allows and one more: the SimHash bands find
    exactly what the scan finds."""
    window = timedelta(hours=48)
    base = 0x9E3779B97F4A7C15
    for max_distance in range(13):
        for flipped in (max_distance, max_distance + 1):
            for stride in range(1, 14):
                for start in range(64):
                    bits = base
                    for b in range(flipped):
                        bits ^= 1 << (start + b * stride) % 64
                    index = StoryIndex([StoryCandidate(1, 1, 7, NOW, None, f"{bits:016x}")],
                                       scans=0)
                    found = index.find(StoryKeys(None, f"{base:016x}"), now=NOW, window=window,
                                       max_distance=max_distance)
                    near = hamming(f"{bits:016x}", f"{base:016x}") <= max_distance
                    assert found == (1 if near else None), (max_distance, stride, start)

"""Same story, many feeds: clustering (pure) and one alert listing every source."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from conftest import Workspace
from servers import FeedServer, rss

from monitor.dedup import (
    MAX_DISTANCE,
    StoryCandidate,
    find_story,
    hamming,
    simhash,
    story_keys,
    title_key,
)

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


def test_find_story_joins_the_earliest_story_within_the_window() -> None:
    keys = story_keys("Haftar shells Tripoli suburbs", WIRE)
    old = StoryCandidate(1, 1, 10, NOW - timedelta(days=3), keys.title_key, keys.simhash)
    first = StoryCandidate(2, 2, 11, NOW - timedelta(hours=2), keys.title_key, None)
    second = StoryCandidate(3, 2, 12, NOW - timedelta(hours=1), None, keys.simhash)
    other = StoryCandidate(4, 4, 13, NOW, title_key("Central bank keeps rates unchanged"),
                           simhash("entirely different words about the weather and "
                                   "football and cooking recipes today"))
    window = timedelta(hours=48)
    assert find_story(keys, [old, second, first, other], now=NOW, window=window) == 2
    assert find_story(keys, [old, other], now=NOW, window=window) is None


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

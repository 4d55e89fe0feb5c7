"""A seeded synthetic feed corpus: RSS 2.0, Atom and RDF with news-like text.

Every feed is a pure function of (seed, feed index, generation): a generation adds
new items on top, as a live feed does. A known fraction of items mention the Libya
watch's terms. Quirks on purpose: relative links under xml:base (Atom), entities in
titles, guid-less items (every seventh RSS item).
"""

from __future__ import annotations

import random
from xml.sax.saxutils import escape

WORDS = [
    "government",
    "minister",
    "talks",
    "ceasefire",
    "forces",
    "city",
    "airport",
    "officials",
    "said",
    "week",
    "report",
    "council",
    "meeting",
    "security",
    "economy",
    "oil",
    "exports",
    "port",
    "agreement",
    "sources",
    "local",
    "capital",
    "humanitarian",
    "aid",
    "election",
    "parliament",
    "court",
    "protest",
    "border",
    "region",
    "statement",
    "army",
    "spokesman",
    "negotiations",
    "international",
    "envoy",
    "conference",
    "mission",
    "crisis",
    "militia",
]
TERMS = ["Libya", "Tripoli", "Haftar", "the LNA", "Sarraj", "the Berlin conference"]
KINDS = ("rss", "atom", "rdf")


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def item(seed: int, feed: int, number: int, hit_rate: float) -> dict[str, str]:
    rng = random.Random(f"{seed}/{feed}/{number}")
    body = " ".join(_sentence(rng, rng.randint(8, 20)) for _ in range(12))
    title = _sentence(rng, 7)[:-1]
    if rng.random() < hit_rate:
        term = rng.choice(TERMS)
        body = body.replace(". ", f". {term} said ", 1)
        title = f"{title} — {term}"
    return {"title": title + " &amp; co’s", "body": body, "id": f"{feed}-{number}"}


def feed_body(
    seed: int,
    feed: int,
    generation: int,
    items: int = 20,
    per_generation: int = 3,
    hit_rate: float = 0.05,
) -> bytes:
    kind = KINDS[feed % 3]
    newest = items + generation * per_generation
    entries = [item(seed, feed, n, hit_rate) for n in range(newest, newest - items, -1)]
    if kind == "rss":
        parts = [
            f"<item><title>{e['title']}</title>"
            f"<link>https://news{feed}.example.org/a/{e['id']}</link>"
            + (
                ""
                if int(e["id"].split("-")[1]) % 7 == 0
                else f'<guid isPermaLink="false">{e["id"]}</guid>'
            )
            + f"<description>{escape(e['body'])}</description>"
            "<pubDate>Mon, 19 Jan 2026 12:00:00 GMT</pubDate></item>"
            for e in entries
        ]
        doc = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Wire {feed}</title><link>https://news{feed}.example.org/</link>"
            f"<description>synthetic</description>{''.join(parts)}</channel></rss>"
        )
    elif kind == "atom":
        parts = [
            f'<entry><id>urn:{e["id"]}</id><title type="html">{e["title"]}</title>'
            f'<link href="a/{e["id"]}"/><updated>2026-01-19T12:00:00Z</updated>'
            f'<content type="html">{escape("<p>" + e["body"] + "</p>")}</content></entry>'
            for e in entries
        ]
        doc = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://news{feed}.example.org/">'
            f"<title>Wire {feed}</title><id>urn:feed:{feed}</id>"
            f"<updated>2026-01-19T12:00:00Z</updated>{''.join(parts)}</feed>"
        )
    else:
        parts = [
            f'<item rdf:about="https://news{feed}.example.org/a/{e["id"]}">'
            f"<title>{e['title']}</title><link>https://news{feed}.example.org/a/{e['id']}</link>"
            f"<description>{escape(e['body'])}</description></item>"
            for e in entries
        ]
        doc = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            'xmlns="http://purl.org/rss/1.0/">'
            f'<channel rdf:about="https://news{feed}.example.org/"><title>Wire {feed}</title>'
            f"<link>https://news{feed}.example.org/</link><description>synthetic</description>"
            f"</channel>{''.join(parts)}</rdf:RDF>"
        )
    return doc.encode("utf-8")

"""The console's pure parts: highlighted segments, the editor's text form, feed status,
audit diffs, and the sign-in throttle's window (an injected clock, no sleeps)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.store import FeedRow
from monitor.web.auth import SignInLimiter
from monitor.web.views import (
    actors_text,
    audit_diff,
    definition_from_form,
    editor_errors,
    feed_status,
    rules_text,
    segments,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_segments_follow_the_stored_marks_and_survive_bad_ones() -> None:
    assert segments("Clashes in Tripoli, Libya", [[11, 18], [20, 25]]) == [
        ("Clashes in ", False), ("Tripoli", True), (", ", False), ("Libya", True)]
    # overlapping and out-of-range marks (a snippet shorter than its marks) are skipped
    assert segments("abc", [[1, 2], [0, 3], [9, 12]]) == [("abc", True)]
    assert segments("", []) == []


def test_the_editor_text_round_trips_a_definition() -> None:
    actors = [{"name": "Khalifa Haftar", "aliases": ["Haftar", "خليفة حفتر"]},
              {"name": "Libyan National Army", "slug": "lna",
               "aliases": [{"text": "LNA", "case_sensitive": True}]},
              {"name": "Fayez al-Sarraj"}]
    rules = ["Libya", "@lna AND Tripoli"]
    text = actors_text(actors)
    assert text.splitlines() == ["Khalifa Haftar | Haftar | خليفة حفتر",
                                 "@lna Libyan National Army | =LNA", "Fayez al-Sarraj"]
    back = definition_from_form("libya", " The watch ", rules_text(rules) + "\n\n", text)
    assert back == {"name": "libya", "description": "The watch", "rules": rules,
                    "actors": [{**a, "aliases": a.get("aliases", [])} for a in actors]}
    assert editor_errors(back) == []


def test_editor_errors_name_the_rule_and_column() -> None:
    d = definition_from_form("x", "", "Libya\n\nTripoli AND", "A | ( ")
    errors = editor_errors(d)
    assert [(e.box, e.line, e.column) for e in errors] == [("actors", 1, None),
                                                            ("rules", 2, 12)]
    assert errors[0].message.startswith("actors[0].aliases[0]: ")
    assert editor_errors({"name": "x", "rules": []})[0].message.startswith(
        "a watchlist needs at least one rule")


def row(**kw: object) -> FeedRow:
    base: dict[str, object] = dict(
        id=1, url="https://example.org/rss", title=None, interval=timedelta(minutes=15),
        active=True, etag=None, last_modified=None, last_checked_at=NOW,
        last_success_at=NOW, next_check_at=NOW + timedelta(minutes=15), last_status=200,
        last_error=None, consecutive_failures=0)
    return FeedRow(**{**base, **kw})  # type: ignore[arg-type]


def test_feed_status() -> None:
    assert feed_status(row(), NOW) == "ok"
    assert feed_status(row(active=False), NOW) == "paused"
    assert feed_status(row(last_checked_at=None), NOW) == "new"
    assert feed_status(row(consecutive_failures=3), NOW) == "failing ×3"
    assert feed_status(row(gone_at=NOW), NOW) == "gone"
    assert feed_status(row(next_check_at=NOW - timedelta(hours=1)), NOW) == "late"


def test_audit_diff_shows_what_changed() -> None:
    diff = audit_diff({"rules": ["Libya"]}, {"rules": ["Libya", "Haftar"]})
    assert '+    "Haftar"' in diff and '-    "Libya"' in diff
    assert audit_diff(None, {"name": "x"})[2:] == ["@@ -0,0 +1,3 @@", "+{",
                                                   '+  "name": "x"', "+}"]


def test_the_sign_in_throttle_forgets_after_its_window() -> None:
    limiter = SignInLimiter(max_failures=3, window=timedelta(minutes=15))
    keys = ("name:ann", "addr:10.0.0.1")
    for i in range(3):
        assert not limiter.blocked(keys, NOW + timedelta(seconds=i))
        limiter.failed(keys, NOW + timedelta(seconds=i))
    assert limiter.blocked(keys, NOW + timedelta(minutes=1))
    assert not limiter.blocked(("name:bob", "addr:10.0.0.1"), NOW + timedelta(minutes=1))
    assert not limiter.blocked(keys, NOW + timedelta(minutes=15, seconds=3))
    small = SignInLimiter(max_failures=1, max_keys=10)
    for i in range(50):
        small.failed((f"name:u{i}",), NOW)
    assert len(small._failures) <= 10

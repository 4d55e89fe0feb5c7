"""Tools for rule writers: test a rule on stored items, the closest miss, backtest."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Workspace

from monitor.cli_rules import _progress
from monitor.config import load_watchlists
from monitor.match import Document, compile_watchlist
from monitor.match.explain import closest_miss, misses
from monitor.match.query import parse
from monitor.store import FetchState, NewItem, Store, create, migrate

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "watchlists.yaml"
FEED = "https://example.org/rss"


def stored(workspace: Workspace, items: list[tuple[str, str, timedelta]]) -> list[int]:
    """Store items (title, content, age) in the workspace's database; their ids."""
    workspace.write(feeds=[FEED])
    engine = create(f"sqlite:///{workspace.db}")
    migrate(engine)
    store = Store(engine)
    now = datetime.now(UTC)
    store.sync_feeds([(FEED, "Example", timedelta(minutes=5))], now)
    (feed,) = store.feeds()
    for n, (title, content, age) in enumerate(items):
        state = FetchState(now - age, now, True, 200)
        store.record_poll(feed.id, state, [NewItem(f"k{n}", None, f"https://example.org/{n}",
                                                   title, "", content, "", None)])
    return [i.id for i in store.items()]


def test_closest_miss_names_the_operand_that_failed() -> None:
    wl = compile_watchlist(load_watchlists(EXAMPLE)[0])
    miss = closest_miss(wl, Document.of(title="Tripoli, Lebanon: protests"))
    assert miss is not None and miss.rule.index == 1
    assert [str(m) for m in miss.misses] == [
        "NOT (Lebanon OR Lebanese OR لبنان): Lebanon OR Lebanese OR لبنان is present "
        "('Lebanon' in title)"]
    miss = closest_miss(wl, Document.of(title="GNA reports on cocoa harvest"))
    assert miss is not None and miss.rule.index == 3
    assert [str(m) for m in miss.misses] == [
        "(Liby* OR Tripoli OR @sarraj): none of these is present"]
    assert closest_miss(wl, Document.of(title="Libya")) is None


def test_a_near_miss_says_how_far_apart_the_words_were() -> None:
    doc = Document.of(title="Berlin will host, next spring, a peace conference")
    assert [str(m) for m in misses(parse("Berlin NEAR/3 conference"), doc, {})] == [
        "Berlin NEAR/3 conference: both present, but never within 3 words "
        "(closest: 6 words between)"]
    assert [str(m) for m in misses(parse("conference ONEAR/9 Berlin"), doc, {})] == [
        "conference ONEAR/9 Berlin: both present, but never in one field in this order"]
    assert [str(m) for m in misses(parse("Berlin AND title:Rome AND x"), doc, {})] == [
        "title:Rome: not in the title", "x: not in the title or summary or content"]


def test_watchlists_test_on_stored_items_explains_a_miss(workspace: Workspace) -> None:
    ids = stored(workspace, [("Clashes in Tripoli", "", timedelta(hours=1)),
                             ("Tripoli, Lebanon: protests", "", timedelta(hours=2))])
    result = workspace.monitor("watchlists", "test", "libya", "--item", str(ids[0]),
                               "--item", str(ids[1]))
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"item {ids[0]}: Clashes in Tripoli",
        "  match: [1] (Tripoli OR طرابلس) AND NOT (Lebanon OR Lebanese OR لبنان)",
        "    terms: 'Tripoli'@title:11",
        "    snippet: Clashes in [Tripoli]",
        f"item {ids[1]}: Tripoli, Lebanon: protests",
        "  no match",
        "  closest miss: [1] (Tripoli OR طرابلس) AND NOT (Lebanon OR Lebanese OR لبنان)",
        "    failed: NOT (Lebanon OR Lebanese OR لبنان): Lebanon OR Lebanese OR لبنان is "
        "present ('Lebanon' in title)",
    ]
    unknown = workspace.monitor("watchlists", "test", "Libya", "--item", "999")
    assert (unknown.code, unknown.err) == (1, "error: no stored item with id 999\n")


def test_watchlists_test_since_lists_the_stored_items_that_match(workspace: Workspace) -> None:
    ids = stored(workspace, [("Oil output in Libya", "", timedelta(days=1)),
                             ("Libya, ten years on", "", timedelta(days=30)),
                             ("Weather", "rain", timedelta(hours=3))])
    result = workspace.monitor("watchlists", "test", "Liby*", "--since", "7d")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"item {ids[0]}: [0] Oil output in Libya"
    assert lines[1].startswith("1 of 2 items fetched since ")
    bad = workspace.monitor("watchlists", "test", "Libya", "--since", "soon")
    assert bad.code == 2 and "'soon' is not a duration" in bad.err


def test_backtest_counts_per_rule_and_lists_the_items(workspace: Workspace) -> None:
    ids = stored(workspace, [
        ("Clashes in Tripoli", "", timedelta(hours=1)),
        ("Haftar’s forces near Tripoli", "", timedelta(hours=5)),
        ("Tripoli, Lebanon: protests", "", timedelta(days=2)),
        ("Libya", "an old story", timedelta(days=30)),
    ])
    result = workspace.monitor("backtest", "libya", "--since", "7d", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (report["items_scanned"], report["items_matched"]) == (3, 2)
    assert [r["items"] for r in report["rules"]] == [0, 2, 1, 0, 0]
    assert [(m["item_id"], m["rules"]) for m in report["matches"]] == [
        (ids[0], [1]), (ids[1], [1, 2])]
    assert report["matches"][1]["terms"] == ["Haftar’s", "Tripoli"]
    assert result.err == ""  # no progress bar when stderr is not a terminal

    text = workspace.monitor("backtest", "libya")
    assert text.code == 0, text.err
    assert text.out.startswith("backtest libya: 2 of 3 items fetched since ")
    assert "[2]   1      @khalifa-haftar OR @lna OR @sarraj" in text.out
    assert f"  item {ids[1]} [1,2] Haftar’s forces near Tripoli  (Haftar’s, Tripoli)" in text.out


def test_backtest_an_edit_shows_what_it_gains_and_loses(workspace: Workspace) -> None:
    ids = stored(workspace, [("Clashes in Tripoli", "", timedelta(hours=1)),
                             ("Benghazi port reopens", "", timedelta(hours=2)),
                             ("Libya’s oil output", "", timedelta(hours=3))])
    edited = workspace.root / "edited.yaml"
    edited.write_text("watchlists:\n  - name: libya\n    rules: [Benghazi, Trip*]\n")
    result = workspace.monitor("backtest", "libya", "--file", str(edited), "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert [r["items"] for r in report["rules"]] == [1, 1]
    assert report["compared_with_config"] == {"gained": [ids[1]], "lost": [ids[2]]}
    text = workspace.monitor("backtest", "libya", "--file", str(edited))
    assert text.out.splitlines()[-3:] == [
        "compared with the watchlist in force: 1 items gained, 1 lost",
        f"  + item {ids[1]} Benghazi port reopens",
        f"  - item {ids[2]} Libya’s oil output",
    ]
    missing = workspace.monitor("backtest", "syria")
    assert missing.code == 1 and "no watchlist named 'syria'" in missing.err


@pytest.mark.parametrize("rule", ["Tripoli AND (", "NOT Libya"])
def test_a_malformed_rule_is_refused_by_the_tools(workspace: Workspace, rule: str) -> None:
    stored(workspace, [])
    result = workspace.monitor("watchlists", "test", rule, "--since", "1d")
    assert result.code == 1 and result.err.startswith("error: ")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_only_on_a_terminal_and_long_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert _progress(999, "backtest") is None  # short runs need no bar
    show = _progress(2000, "backtest libya")
    assert show is not None
    for n in range(1, 2001):
        show(n)
    lines = term.getvalue().split("\r")
    assert lines[-1] == "backtest libya [" + "#" * 30 + "] 2,000/2,000\n"
    assert len(lines) == 201  # every 10 items, not every item
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert _progress(2000, "backtest") is None  # not a terminal

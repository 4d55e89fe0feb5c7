"""The catalog's contract (monitor/catalog.py), on SQLite and PostgreSQL: watchlists and
feeds saved with an audit row each, imports all or nothing, exports that import back
unchanged, and watchlists published for running daemons."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Workspace
from sqlalchemy import Engine

from monitor.catalog import WATCHLISTS, Catalog, definition_of
from monitor.config import parse_watchlists
from monitor.daemon import spec_of
from monitor.errors import ConfigError, NotFound
from monitor.opml import parse_opml
from monitor.store import Edit, Store

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

LIBYA = {
    "name": "libya",
    "actors": [{"name": "Khalifa Haftar", "aliases": ["Haftar", "LNA"]}],
    "rules": ["Libya AND (ceasefire OR clashes)", "@khalifa-haftar"],
}

WATCHLISTS_YAML = """\
watchlists:
- name: libya
  description: Libya's conflict
  actors:
  - name: Khalifa Haftar
    aliases:
    - Haftar
    - text: LNA
      case_sensitive: true
  rules:
  - Libya AND (ceasefire OR clashes)
  - '@khalifa-haftar'
- name: sudan
  actors: []
  rules:
  - Sudan AND RSF
"""


@pytest.fixture
def catalog(engine: Engine) -> Catalog:
    return Catalog(Store(engine), lambda: NOW, default_interval=timedelta(minutes=10))


def test_save_creates_then_updates_with_audit_before_after(catalog: Catalog) -> None:
    created = catalog.save_watchlist(LIBYA, "cli:ana")
    assert (created.action, created.kind, created.target, created.actor) == (
        "create", "watchlist", "libya", "cli:ana")
    assert created.before is None and created.after == catalog.watchlist("libya")
    edited = {**LIBYA, "rules": [*LIBYA["rules"], "Tripoli"]}
    updated = catalog.save_watchlist(edited, "web:bob")
    assert updated.action == "update"
    assert updated.before == created.after
    assert updated.after is not None and updated.after["rules"][-1] == "Tripoli"
    assert [e.id for e in catalog.audit()] == [updated.id, created.id]  # newest first
    assert catalog.audit(kind="watchlist", target="libya", limit=1)[0].id == updated.id
    assert catalog.audit(kind="feed") == []
    assert [w["name"] for w in catalog.watchlists()] == ["libya"]


def test_delete_keeps_the_audit_and_refuses_what_is_absent(catalog: Catalog) -> None:
    catalog.save_watchlist(LIBYA, "cli:ana")
    deleted = catalog.delete_watchlist("libya", "cli:ana")
    assert deleted.action == "delete" and deleted.after is None
    assert deleted.before is not None and deleted.before["name"] == "libya"
    assert catalog.watchlists() == []
    with pytest.raises(NotFound):
        catalog.watchlist("libya")
    with pytest.raises(NotFound):
        catalog.delete_watchlist("libya", "cli:ana")
    assert catalog.save_watchlist(LIBYA, "cli:ana").action == "create"  # revived


def test_a_malformed_rule_is_refused_with_field_and_column(catalog: Catalog) -> None:
    bad = {**LIBYA, "rules": ["Libya", "Libya AND (ceasefire", "@nobody"]}
    with pytest.raises(ConfigError) as err:
        catalog.check_watchlist(bad)
    fields = [p.field for p in err.value.problems]
    assert fields == ["rules[1]", "rules[2]"]
    assert "column" in err.value.problems[0].message
    with pytest.raises(ConfigError):
        catalog.save_watchlist(bad, "cli:ana")
    assert catalog.watchlists() == [] and catalog.audit() == []


def test_save_publishes_the_watchlists_for_running_daemons(catalog: Catalog) -> None:
    catalog.save_watchlist(LIBYA, "cli:ana")
    found = catalog.store.shared(WATCHLISTS)
    assert found is not None
    version, value = found
    assert [spec_of(d).name for d in value] == ["libya"]
    assert spec_of(value[0]).actors[0].slug == "khalifa-haftar"
    catalog.save_watchlist({**LIBYA, "rules": ["Tripoli"]}, "cli:ana")
    again = catalog.store.shared(WATCHLISTS)
    assert again is not None and again[0] == version + 1
    assert spec_of(again[1][0]).rules == ("Tripoli",)


def test_import_export_import_is_identity(catalog: Catalog) -> None:
    first = catalog.import_watchlists(WATCHLISTS_YAML, "cli:ana", source="wl.yaml")
    assert (first.created, first.updated, first.unchanged) == (["libya", "sudan"], [], [])
    exported = catalog.export_watchlists()
    assert parse_watchlists(exported, "x") == parse_watchlists(WATCHLISTS_YAML, "y")
    second = catalog.import_watchlists(exported, "cli:ana")
    assert second.unchanged == ["libya", "sudan"] and not second.created + second.updated
    assert catalog.export_watchlists() == exported
    assert exported == WATCHLISTS_YAML  # the canonical form is the file's own


def test_import_merges_and_replace_mirrors(catalog: Catalog) -> None:
    catalog.save_watchlist({"name": "extra", "rules": ["Chad"]}, "cli:ana")
    merged = catalog.import_watchlists(WATCHLISTS_YAML, "cli:ana")
    assert merged.deleted == []
    assert [w["name"] for w in catalog.watchlists()] == ["extra", "libya", "sudan"]
    mirrored = catalog.import_watchlists(WATCHLISTS_YAML, "cli:ana", replace=True)
    assert mirrored.deleted == ["extra"]
    assert [w["name"] for w in catalog.watchlists()] == ["libya", "sudan"]


def test_an_import_with_one_bad_rule_applies_nothing(catalog: Catalog) -> None:
    catalog.save_watchlist({"name": "sudan", "rules": ["Sudan"]}, "cli:ana")
    bad = WATCHLISTS_YAML.replace("Sudan AND RSF", "Sudan AND (RSF")
    with pytest.raises(ConfigError) as err:
        catalog.import_watchlists(bad, "cli:ana", replace=True, source="team.yaml")
    [problem] = err.value.problems
    assert problem.file == "team.yaml" and problem.field == "watchlists[1].rules[0]"
    assert "column" in problem.message
    assert [w["name"] for w in catalog.watchlists()] == ["sudan"]
    assert catalog.watchlist("sudan")["rules"] == ["Sudan"]
    assert len(catalog.audit()) == 1


def test_feeds_add_pause_resume_remove(catalog: Catalog) -> None:
    added = catalog.add_feed("https://example.org/rss", "cli:ana", title="Example")
    assert (added.action, added.kind, added.before) == ("create", "feed", None)
    assert added.after == {"url": "https://example.org/rss", "title": "Example",
                           "interval": 600, "active": True}
    [row] = catalog.feeds()
    assert row.active and row.next_check_at == NOW  # polled at the next tick
    assert catalog.store.due_feeds(NOW, 10)[0].url == row.url
    paused = catalog.set_feed_active(row.url, False, "cli:ana")
    assert paused.action == "pause" and paused.after is not None
    assert paused.after["active"] is False
    assert [f.active for f in catalog.feeds()] == [False]  # listed, paused
    assert catalog.store.due_feeds(NOW, 10) == []  # and not polled
    assert catalog.set_feed_active(row.url, True, "cli:ana").action == "resume"
    assert catalog.store.due_feeds(NOW, 10) != []
    again = catalog.add_feed(row.url, "cli:ana", interval=timedelta(minutes=3))
    assert again.action == "update" and again.after is not None
    assert again.after["interval"] == 180
    renamed = catalog.add_feed(row.url, "cli:ana", title="Renamed")  # interval kept
    assert renamed.after == {"url": row.url, "title": "Renamed", "interval": 180,
                             "active": True}
    removed = catalog.remove_feed(row.url, "cli:ana")
    assert removed.action == "delete" and removed.after is None
    assert catalog.feeds() == [] and catalog.store.due_feeds(NOW, 10) == []
    with pytest.raises(NotFound):
        catalog.remove_feed(row.url, "cli:ana")
    with pytest.raises(NotFound):
        catalog.set_feed_active("https://nowhere.example/", True, "cli:ana")
    with pytest.raises(ConfigError):
        catalog.add_feed("ftp://example.org/rss", "cli:ana")
    assert [e.action for e in catalog.audit(kind="feed")] == [
        "delete", "update", "update", "resume", "pause", "create"]


OPML = b"""<?xml version="1.0"?>
<opml version="2.0"><head><title>t</title></head><body>
<outline text="News"><outline text="A" title="A" xmlUrl="https://a.example/rss"/>
<outline text="https://b.example/atom" xmlUrl="https://b.example/atom"/></outline>
</body></opml>
"""


def test_opml_import_export_import_is_identity(catalog: Catalog) -> None:
    seen: list[tuple[int, int]] = []
    first = catalog.import_opml(OPML, "cli:ana", progress=lambda d, t: seen.append((d, t)))
    assert first.created == ["https://a.example/rss", "https://b.example/atom"]
    assert seen[-1] == (2, 2)
    exported = catalog.export_opml()
    assert parse_opml(exported) == [parse_opml(exported)[0], parse_opml(exported)[1]]
    assert [(f.url, f.title) for f in catalog.feeds()] == [
        ("https://a.example/rss", "A"), ("https://b.example/atom", None)]
    second = catalog.import_opml(exported, "cli:ana")
    assert len(second.unchanged) == 2 and not second.created + second.updated
    assert catalog.export_opml() == exported


def test_opml_replace_mirrors_and_bad_urls_apply_nothing(catalog: Catalog) -> None:
    catalog.add_feed("https://c.example/rss", "cli:ana")
    report = catalog.import_opml(OPML, "cli:ana", replace=True)
    assert report.deleted == ["https://c.example/rss"]
    assert [f.url for f in catalog.feeds()] == ["https://a.example/rss",
                                                 "https://b.example/atom"]
    bad = OPML.replace(b"https://b.example/atom\"/>", b"file:///etc/passwd\"/>")
    with pytest.raises(ConfigError) as err:
        catalog.import_opml(bad, "cli:ana", replace=True, source="feeds.opml")
    assert err.value.problems[0].field.startswith("outline[1]")
    assert len(catalog.feeds()) == 2


def test_seed_applies_the_files_as_a_diff(catalog: Catalog) -> None:
    specs = parse_watchlists(WATCHLISTS_YAML, "watchlists.yaml")
    feeds = [("https://a.example/rss", "A", timedelta(minutes=5))]
    wl, fd = catalog.seed(specs, feeds)
    assert wl.created == ["libya", "sudan"] and fd.created == ["https://a.example/rss"]
    assert {e.actor for e in catalog.audit()} == {"config-file"}
    # an edit made through the CLI survives a restart with the same files
    catalog.save_watchlist({"name": "sudan", "rules": ["Sudan"]}, "cli:ana")
    catalog.set_feed_active("https://a.example/rss", False, "cli:ana")
    wl, fd = catalog.seed(specs, feeds)
    assert wl.created + wl.updated + wl.deleted == [] and fd.updated == []
    assert catalog.watchlist("sudan")["rules"] == ["Sudan"]
    assert catalog.feeds()[0].active is False
    # the file changing that entry wins; an entry dropped from the file is deleted
    libya_only = tuple(s for s in specs if s.name == "libya")
    changed = parse_watchlists(WATCHLISTS_YAML.replace("Sudan AND RSF", "Sudan AND Darfur"),
                               "watchlists.yaml")
    wl, _ = catalog.seed(changed, feeds)
    assert wl.updated == ["sudan"]
    assert catalog.watchlist("sudan")["rules"] == ["Sudan AND Darfur"]
    wl, fd = catalog.seed(libya_only, [])
    assert wl.deleted == ["sudan"] and fd.deleted == ["https://a.example/rss"]
    assert [w["name"] for w in catalog.watchlists()] == ["libya"] and catalog.feeds() == []


def test_a_fresh_seed_mirrors_rows_written_before_the_catalog(engine: Engine) -> None:
    store = Store(engine)
    old = parse_watchlists(WATCHLISTS_YAML, "w")
    store.sync_watchlists({s.name: asdict(s) for s in old}, NOW)  # the old daemon's form
    store.sync_feeds([("https://gone.example/rss", None, timedelta(minutes=5))], NOW)
    catalog = Catalog(store, lambda: NOW)
    wl, fd = catalog.seed(old[:1], [])
    assert wl.unchanged == ["libya"] and wl.deleted == ["sudan"]
    assert fd.deleted == ["https://gone.example/rss"]
    assert catalog.watchlist("libya") == definition_of(old[0])


def test_a_stored_watchlist_this_version_refuses_is_named(catalog: Catalog) -> None:
    catalog.save_watchlist(LIBYA, "cli:ana")
    catalog.store.sync_watchlists({"old": {"name": "old", "rules": ["(Tripoli"]}}, NOW)
    with pytest.raises(ConfigError) as err:
        catalog.specs()
    [problem] = err.value.problems
    assert (problem.file, problem.field) == ("database", "watchlist old.rules[0]")
    assert "column" in problem.message and "monitor watchlists import" in problem.message


def test_a_reload_racing_an_edit_never_republishes_older_watchlists(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's rebuild (a follower's reload, a SIGHUP, a start) publishes the
    watchlists in force; an edit (the console, the CLI) that lands between its read and
    its publication must not be overwritten by the older read as a newer version."""
    from monitor.config import load_config
    from monitor.daemon import build

    workspace.write(feeds=[], watchlists="watchlists:\n  - name: libya\n    rules: [Libya]\n")
    first = build(load_config(workspace.config))
    read = Store.watchlist_definitions

    def then_an_edit_lands(self: Store) -> list[dict[str, object]]:
        definitions = read(self)
        monkeypatch.setattr(Store, "watchlist_definitions", read)  # once
        Catalog(Store(self.engine), lambda: NOW).save_watchlist(
            {"name": "sudan", "rules": ["Sudan AND RSF"]}, "alice")
        return definitions

    monkeypatch.setattr(Store, "watchlist_definitions", then_an_edit_lands)
    follower = build(load_config(workspace.config), migrate_schema=False, seed=False)
    monkeypatch.setattr(Store, "watchlist_definitions", read)
    in_force = sorted(d["name"] for d in first.store.watchlist_definitions())
    found = first.store.shared(WATCHLISTS)
    assert found is not None
    version, value = found
    assert sorted(w["name"] for w in value) == in_force
    assert follower.watchlists_version == version
    assert sorted(w.name for w in follower.watchlists) == in_force
    for app in (first, follower):
        app.store.engine.dispose()


def test_two_workers_seeding_the_same_change_at_once_both_succeed(catalog: Catalog) -> None:
    """Workers restarted (or sent SIGHUP) together after a deploy each apply the files'
    diff; one that read the database before the other applied a deletion must not fail
    (a start crashing, a reload refused) on the entry already deleted."""
    specs = parse_watchlists(WATCHLISTS_YAML, "watchlists.yaml")
    feeds = [("https://a.example/rss", "A", timedelta(minutes=5))]
    catalog.seed(specs, feeds)
    libya_only = tuple(s for s in specs if s.name == "libya")
    first = Catalog(catalog.store, lambda: NOW, default_interval=timedelta(minutes=10))
    second = Catalog(catalog.store, lambda: NOW, default_interval=timedelta(minutes=10),
                     worker="second")
    read = second.watchlists
    calls: list[int] = []

    def then_the_first_worker_seeds() -> list[dict[str, object]]:
        definitions = read()
        if not calls:  # the first worker applies the same files meanwhile
            calls.append(1)
            first.seed(libya_only, [])
        return definitions  # type: ignore[return-value]

    second.watchlists = then_the_first_worker_seeds  # type: ignore[method-assign]
    second.seed(libya_only, [])
    assert [w["name"] for w in catalog.watchlists()] == ["libya"] and catalog.feeds() == []


def test_a_large_edit_is_applied_in_chunks_and_still_all_or_nothing(engine: Engine) -> None:
    """``apply_edits`` flushes and lets go of its rows every few hundred edits (a seed
    of 10,000 feeds held them all): an edit of a feed added chunks earlier still sees
    it, and an edit refused in the last chunk undoes the first ones."""
    store = Store(engine)
    urls = [f"http://feeds.example/{n}" for n in range(1100)]
    puts = [Edit("feed", "put", u, {"title": None, "interval": 900}) for u in urls]
    later = [Edit("feed", "pause", urls[0]), Edit("feed", "put", urls[1],
                                                   {"title": "Renamed", "interval": 600})]
    with pytest.raises(NotFound):
        store.apply_edits([*puts, *later, Edit("feed", "delete", "http://absent.example/")],
                          NOW, "test")
    assert store.catalog_feeds(counts=False) == []
    entries = store.apply_edits([*puts, *later], NOW, "test")
    assert [(e.action, e.target) for e in entries[-3:]] == [
        ("create", urls[-1]), ("pause", urls[0]), ("update", urls[1])]
    assert entries[-1].before == {"url": urls[1], "title": None, "interval": 900,
                                  "active": True}
    rows = {f.url: f for f in store.catalog_feeds(counts=False)}
    assert len(rows) == 1100 and len(store.audit(limit=2000)) == 1102
    assert not rows[urls[0]].active
    assert (rows[urls[1]].title, rows[urls[1]].interval) == ("Renamed", timedelta(minutes=10))

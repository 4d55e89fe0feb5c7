from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, event, inspect, text

from monitor.errors import StoreError
from monitor.store import (
    FetchState,
    NewItem,
    NewMatch,
    PollCounts,
    PollWrite,
    Store,
    create,
    migrate,
    schema_status,
)
from monitor.store import db as db_module
from monitor.store import items as items_module
from monitor.store.models import Base, Item, sqlite_text

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(engine: Engine) -> Store:
    s = Store(engine)
    s.sync_feeds([("https://example.org/rss", "Example", timedelta(minutes=5))], NOW)
    s.sync_watchlists({"libya": {"rules": ["Libya"]}}, NOW)
    return s


def item(key: str, *channels: str, watchlist: str = "libya") -> NewItem:
    matches = (NewMatch(watchlist, [{"index": 0, "rule": "Libya", "terms": []}], "", [],
                        channels),) if channels else ()
    return NewItem(key, None, None, f"title {key}", "", "", "", None, matches)


def keys(store: Store, feed_id: int) -> set[str]:
    """The keys of the items stored for the feed."""
    with store.engine.connect() as conn:
        return set(conn.execute(text("SELECT key FROM items WHERE feed_id = :f"),
                                {"f": feed_id}).scalars())


def ok() -> FetchState:
    return FetchState(NOW, NOW + timedelta(minutes=5), True, 200, etag='"e"')


def test_migrations_build_the_schema_the_models_describe(engine: Engine) -> None:
    assert set(inspect(engine).get_table_names()) >= {"feeds", "items", "watchlists",
                                                        "matches", "outbox", "alembic_version"}
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                Base.metadata)
    assert diff == []
    current, head = schema_status(engine)
    assert current == head


def test_migrate_is_idempotent_and_refuses_a_newer_schema(engine: Engine) -> None:
    _, head = schema_status(engine)
    assert migrate(engine) == (head, head)
    with engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = 'f00d'"))
    with pytest.raises(StoreError, match="made by a newer monitor"):
        migrate(engine)


def test_a_new_sqlite_file_gets_large_pages_and_an_old_one_keeps_its_own(
        tmp_path: Path) -> None:
    """Items are about 1.5 kB of text: a new file gets ``SQLITE_PAGE_SIZE`` pages. A file
    made before (with SQLite's 4 kB pages) keeps them, and its rows."""
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE kept (x INTEGER)")
        conn.execute("INSERT INTO kept VALUES (7)")
    conn.close()
    sizes = {}
    for name in ("new.db", "old.db"):
        engine = create(f"sqlite:///{tmp_path / name}")
        migrate(engine)
        with engine.connect() as c:
            sizes[name] = c.execute(text("PRAGMA page_size")).scalar()
        engine.dispose()
    assert sizes == {"new.db": db_module.SQLITE_PAGE_SIZE, "old.db": 4096}
    assert db_module.SQLITE_PAGE_SIZE > 4096
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(7,)]
    conn.close()


def test_an_item_is_stored_once_per_feed(store: Store) -> None:
    (feed,) = store.feeds()
    first = store.record_poll(feed.id, ok(), [item("a", "email"), item("b")])
    again = store.record_poll(feed.id, ok(), [item("a", "email"), item("b"), item("c")])
    assert (first.new_items, first.matches, first.alerts) == (2, 1, 1)
    assert (again.new_items, again.matches, again.alerts) == (1, 0, 0)
    assert keys(store, feed.id) == {"a", "b", "c"}
    assert len(store.pending_alerts(NOW)) == 1


def test_item_matches_outbox_and_fetch_state_commit_together(store: Store) -> None:
    (feed,) = store.feeds()
    bad = item("b", "email", watchlist="no-such-watchlist")
    with pytest.raises(KeyError):
        store.record_poll(feed.id, ok(), [item("a", "email"), bad])
    (after,) = store.feeds()
    assert after.items == 0 and after.etag is None and after.last_checked_at is None
    assert store.pending_alerts(None) == []


def test_failures_are_recorded_on_the_feed(store: Store) -> None:
    (feed,) = store.feeds()
    store.record_poll(feed.id, ok(), [])
    fail = FetchState(NOW, NOW + timedelta(minutes=5), False, 500, error="HTTP 500")
    store.record_poll(feed.id, fail, [])
    store.record_poll(feed.id, fail, [])
    (after,) = store.feeds()
    assert (after.last_error, after.consecutive_failures, after.last_success_at) == (
        "HTTP 500", 2, NOW)
    assert after.etag == '"e"'  # validators survive a failed poll


def test_outbox_rows_are_sent_once_and_failures_wait(store: Store) -> None:
    (feed,) = store.feeds()
    store.record_poll(feed.id, ok(), [item("a", "email", "slack")])
    email, slack = store.pending_alerts(NOW)
    assert store.claim([email.id, slack.id], NOW, NOW + timedelta(minutes=2)) == [
        email.id, slack.id]
    store.mark_sent([email.id], NOW)
    store.mark_failed([slack.id], "FAILURE", NOW, NOW + timedelta(minutes=1))
    assert store.pending_alerts(NOW) == []
    (retry,) = store.pending_alerts(NOW + timedelta(minutes=1))
    assert (retry.channel, retry.attempts, retry.last_error) == ("slack", 1, "FAILURE")
    assert store.outbox_counts() == {("email", "sent"): 1, ("slack", "pending"): 1}


def test_a_channel_hold_defers_its_pending_rows_and_never_shortens(store: Store) -> None:
    (feed,) = store.feeds()
    store.record_poll(feed.id, ok(), [item("a", "email", "slack"), item("b", "slack")])
    until = NOW + timedelta(minutes=10)
    assert store.hold_channel("slack", until, "429") == until
    assert store.hold_channel("slack", NOW + timedelta(minutes=5), "429") == until
    assert store.channel_holds(NOW) == {"slack": until}
    assert [a.channel for a in store.pending_alerts(NOW)] == ["email"]
    assert {a.next_attempt_at for a in store.pending_alerts(None) if a.channel == "slack"} == {
        until}
    later = NOW + timedelta(hours=2)
    assert store.hold_channel("slack", later, "503") == later
    assert store.channel_holds(later) == {}
    assert store.oldest_pending(["slack", "email", "none"]) == {"slack": NOW, "email": NOW}


def test_feeds_missing_from_the_config_are_deactivated_not_deleted(store: Store) -> None:
    (feed,) = store.feeds()
    store.record_poll(feed.id, ok(), [item("a")])
    store.sync_feeds([("https://example.org/other", None, timedelta(minutes=5))], NOW)
    assert [f.url for f in store.feeds()] == ["https://example.org/other"]
    old = [f for f in store.feeds(active_only=False) if f.url == "https://example.org/rss"]
    assert old[0].items == 1 and not old[0].active


def test_due_feeds_follow_next_check(store: Store) -> None:
    (feed,) = store.feeds()
    assert [f.id for f in store.due_feeds(NOW, 10)] == [feed.id]
    store.record_poll(feed.id, ok(), [])
    assert store.due_feeds(NOW + timedelta(minutes=4), 10) == []
    assert len(store.due_feeds(NOW + timedelta(minutes=5), 10)) == 1


def test_datetimes_come_back_aware(store: Store) -> None:
    (feed,) = store.feeds()
    assert feed.next_check_at == NOW and feed.next_check_at.tzinfo is not None


def test_every_migration_downgrades_and_upgrades_again(engine: Engine) -> None:
    from alembic import command

    from monitor.store.db import _alembic_config

    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert schema_status(engine)[0] is None
    migrate(engine)
    test_migrations_build_the_schema_the_models_describe(engine)


def test_a_304_refreshes_its_feed_items_through_the_feed_index(tmp_path: Path) -> None:
    """The refresh after a 304 must not scan every item stored at the same time (all of a
    run's items share one last_seen_at): the planner takes (feed_id, last_seen_at)."""
    engine = create(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    engine.dispose()
    with sqlite3.connect(tmp_path / "m.db") as db:
        plan = " ".join(str(row) for row in db.execute(
            "EXPLAIN QUERY PLAN UPDATE items SET last_seen_at = ? WHERE feed_id = ? AND "
            "last_seen_at = (SELECT max(last_seen_at) FROM items WHERE feed_id = ?)",
            ("2026-01-01", 1, 1)))
    assert "ix_items_feed_id_last_seen_at" in plan


def test_feeds_without_counts_skip_reading_the_items(store: Store) -> None:
    (feed,) = store.feeds()
    store.record_poll(feed.id, ok(), [item("a")])
    (counted,) = store.feeds()
    (plain,) = store.feeds(counts=False)
    assert counted.items == 1 and plain.items == 0
    assert plain == dataclasses.replace(counted, items=0)


def test_a_large_poll_is_stored_in_bulk_with_stories_merged_in_feed_order(
        store: Store) -> None:
    """600 new items in one poll (more than one batch of keys): the unmatched ones are
    inserted together, the matched ones keep the feed's order for their stories, so the
    later copy of a story merges into the earlier one's alert, within the same poll."""
    (feed,) = store.feeds()
    items = [item(f"k{n}") for n in range(600)]
    first = item("k100", "email")._replace(title_key="t" * 64)
    later = item("k400", "email", "log")._replace(title_key="t" * 64)
    items[100], items[400] = first, later
    items.append(item("k5"))  # served twice in one response: stored once
    counts = store.record_poll(feed.id, ok(), items, [i.key for i in items])
    assert (counts.new_items, counts.matches, counts.alerts) == (600, 2, 2)
    assert keys(store, feed.id) == {f"k{n}" for n in range(600)}
    rows = store.alerts(["pending", "merged"])
    by = {(a.title, a.channel): a for a in rows}
    assert {k: a.status for k, a in by.items()} == {
        ("title k100", "email"): "pending", ("title k400", "email"): "merged",
        ("title k400", "log"): "pending"}
    assert len({a.story_id for a in rows}) == 1
    stored = {i.title: i.id for i in store.items()}
    assert len(stored) == 600 and rows[0].story_id == stored["title k100"]
    assert stored["title k0"] < stored["title k100"] < stored["title k599"]


def test_a_poll_costs_a_few_statements_however_many_items_and_matches(
        sqlite_store: Store) -> None:
    """Items, stories and matches are each written in one statement (in batches of
    many rows), not one per row: the statements of a poll do not grow with its items.
    The bulk statements run on the driver's cursor, where SQLAlchemy's events do not
    see them: SQLite itself counts them (its trace callback)."""
    store = sqlite_store
    store.sync_feeds([("https://example.org/rss", "Example", timedelta(minutes=5))], NOW)
    (feed,) = store.feeds()
    items = [item(f"k{n}", "email" if n % 50 == 0 else "log") if n % 10 == 0 else
             item(f"k{n}") for n in range(200)]
    statements: list[str] = []  # as SQLAlchemy runs them (an executemany is one)
    traced: list[str] = []  # as SQLite runs them (an executemany is one a row)

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    store.engine.dispose()  # every connection from here on is traced
    event.listen(store.engine, "connect",
                 lambda dbapi, _record: dbapi.set_trace_callback(traced.append))
    event.listen(store.engine, "before_cursor_execute", count)
    counts = store.record_poll(feed.id, ok(), items, [i.key for i in items])
    assert (counts.new_items, counts.matches) == (200, 20)

    def kind(start: str) -> int:
        return sum(s.lstrip().upper().startswith(start) for s in traced)

    # 64 rows a statement, the rest in powers of two: 64 + 64 + 64 + 8, and 16 + 4
    assert (kind("INSERT INTO ITEMS"), kind("INSERT INTO MATCHES")) == (4, 2)
    assert kind("SELECT ITEMS.FEED_ID, ITEMS.KEY FROM (VALUES") == 4  # the known keys
    assert len(statements) < 10, statements  # the rest: states, stories, outbox rows


def test_a_driver_error_in_the_bulk_insert_refuses_the_batch_and_lists_no_parameters(
        store: Store) -> None:
    """The bulk statements run on the driver's cursor: its error is still the store's
    (a StoreError for the batch, nothing stored), and the message names the constraint
    with the statement's start, not its parameters nor its 3 kB of placeholders.
    (PostgreSQL's own message quotes the failing row.)"""
    (feed,) = store.feeds()
    rows = [item(f"k{n}") for n in range(100)]
    rows[70] = rows[70]._replace(title=None, summary="the text of the item")
    results = store.record_polls([PollWrite(feed.id, ok(), rows, [i.key for i in rows])])
    assert len(results) == 1 and isinstance(results[0], StoreError)
    message = str(results[0])
    assert "title" in message and "[parameters:" not in message
    assert "INSERT INTO items" in message and len(message) < 1500
    assert keys(store, feed.id) == set()


def test_a_batch_that_fails_after_its_stories_leaves_them_nowhere(
        sqlite_store: Store) -> None:
    """A batch's matched items join its own index until the database gives them back:
    one that fails after them (here, a match for a watchlist the database does not
    have: a bug, which the batch's caller rewrites poll by poll) leaves nothing in the
    kept index, and a later copy of its story starts a story of its own."""
    store = sqlite_store
    store.sync_feeds([("https://example.org/rss", "Example", timedelta(minutes=5))], NOW)
    (feed,) = store.feeds()
    key = {"title_key": "s" * 64}
    lost = item("a1", "email")._replace(**key)
    broken = item("a2", "email", watchlist="no such watchlist")
    with pytest.raises(KeyError):
        store.record_polls([PollWrite(feed.id, ok(), [lost, broken], ["a1", "a2"])])
    assert keys(store, feed.id) == set()
    assert len(items_module._CACHES[store.engine].index) == 0
    later = item("a3", "email")._replace(**key)
    (counts,) = store.record_polls([PollWrite(feed.id, ok(), [later], ["a3"])])
    assert isinstance(counts, PollCounts) and counts.alerts == 1
    (alert,) = store.alerts(["pending", "merged"])
    stored = {i.title: i.id for i in store.items()}
    assert alert.story_id == stored["title a3"]  # its own story: a1 was never stored


def test_disposing_a_store_drops_the_story_index_kept_for_it(sqlite_store: Store) -> None:
    """A reload replaces the app's store; the first app of a daemon is frozen out of the
    collector's sight (``daemon.settle_gc``), so the index kept under its engine would
    stay unless ``dispose`` drops it."""
    store = sqlite_store
    store.sync_feeds([("https://example.org/rss", "Example", timedelta(minutes=5))], NOW)
    (feed,) = store.feeds()
    store.record_polls([PollWrite(feed.id, ok(), [item("a1", "email")], ["a1"])])
    assert store.engine in items_module._CACHES
    store.dispose()
    assert store.engine not in items_module._CACHES


def test_each_match_of_a_poll_keeps_its_item_watchlist_snippet_and_channels(
        store: Store) -> None:
    """The matches of a poll are written together: each lands on its own item, with its
    watchlist, snippet and outbox rows, an item with two watchlists included."""
    store.sync_watchlists({"libya": {"rules": ["Libya"]}, "oil": {"rules": ["oil"]}}, NOW)
    (feed,) = store.feeds()
    oil = NewMatch("oil", [{"index": 0, "rule": "oil", "terms": []}], "oil", [], ("log",))
    libya = dataclasses.replace(item("k1", "email").matches[0], snippet="libya")
    items = [item("k0"), item("k1")._replace(matches=(libya, oil)),
             item("k2"), item("k3")._replace(matches=(oil,))]
    counts = store.record_poll(feed.id, ok(), items, [i.key for i in items])
    assert (counts.new_items, counts.matches, counts.alerts) == (4, 3, 3)
    assert counts.by_watchlist == {"libya": 1, "oil": 2}
    rows = store.alerts(["pending", "merged"])
    assert sorted((a.title, a.watchlist, a.snippet, a.channel, a.status) for a in rows) == [
        ("title k1", "libya", "libya", "email", "pending"),
        ("title k1", "oil", "oil", "log", "pending"),
        ("title k3", "oil", "oil", "log", "pending")]
    stored = {i.title: i.id for i in store.items()}
    assert {a.title: a.story_id for a in rows} == {"title k1": stored["title k1"],
                                                   "title k3": stored["title k3"]}


def test_stories_join_across_polls_and_feeds_within_the_window(store: Store) -> None:
    """The matched items a new one is compared with are kept between polls (SQLite):
    a later poll of another feed still joins the story; past the window, a new one."""
    store.sync_feeds([("https://example.org/rss", "Example", timedelta(minutes=5)),
                      ("https://other.example/rss", "Other", timedelta(minutes=5))], NOW)
    a, b = store.feeds()
    same = {"title_key": "s" * 64}
    store.record_poll(a.id, ok(), [item("a1", "email")._replace(**same)])
    store.record_poll(b.id, ok(), [item("b1", "email")._replace(**same)])
    first, second = sorted(store.alerts(["pending", "merged"]), key=lambda x: x.id)
    assert (first.status, second.status) == ("pending", "merged")
    assert first.story_id == second.story_id
    later = dataclasses.replace(ok(), checked_at=NOW + timedelta(hours=49))  # past 48 h
    store.record_poll(a.id, later, [item("a2", "email")._replace(**same)])
    third = max(store.alerts(["pending", "merged"]), key=lambda x: x.id)
    assert third.status == "pending" and third.story_id not in (first.story_id, None)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A store on SQLite alone: what it keeps between batches is SQLite's."""
    engine = create(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    s = Store(engine)
    s.sync_watchlists({"libya": {"rules": ["Libya"]}}, NOW)
    yield s
    engine.dispose()


def test_the_story_index_is_kept_between_batches_and_reads_only_the_rows_stored_since(
        sqlite_store: Store) -> None:
    """On SQLite the matched items of the window are indexed once: a batch adds the
    rows stored since the last one to the same index (re-indexing them all for every
    batch took 4 of the 10 s the store spent on a cold cycle of 10,000 feeds), and a
    story still joins across batches."""
    store = sqlite_store
    store.sync_feeds([("https://example.org/rss", "Example", timedelta(minutes=5)),
                      ("https://other.example/rss", "Other", timedelta(minutes=5))], NOW)
    a, b = store.feeds()
    key = {"title_key": "s" * 64}

    def poll(feed_id: int, *items: NewItem, hours: float = 0) -> PollWrite:
        at = NOW + timedelta(hours=hours)
        return PollWrite(feed_id, dataclasses.replace(ok(), checked_at=at), list(items),
                         [i.key for i in items])

    first = store.record_polls([poll(a.id, item("a1", "email")._replace(**key),
                                     item("a2", "email")),
                                poll(b.id, item("b1", "email"))])
    assert [r.alerts for r in first if isinstance(r, PollCounts)] == [2, 1]
    kept = items_module._CACHES[store.engine]
    index = kept.index
    assert len(index) == 0  # read before the batch stored its rows
    second = store.record_polls([poll(b.id, item("b2", "email")._replace(**key),
                                      hours=1)])
    assert kept.index is index and len(index) == 3  # the first batch's rows, added
    assert second[0] == PollCounts(new_items=1, matches=1, alerts=0,
                                   by_watchlist={"libya": 1})  # joined a1's story: merged
    store.record_polls([poll(a.id, item("a3", "email"), hours=2)])
    assert kept.index is index and [c.item_id for c in index] == sorted(
        c.item_id for c in index) and len(index) == 4


def test_the_kept_story_index_drops_the_items_that_left_the_window(
        sqlite_store: Store) -> None:
    """Once a quarter of the kept index is older than the window (and its margin), it is
    built again without them: a daemon's index holds the window, not its history."""
    store = sqlite_store
    store.sync_feeds([("https://example.org/rss", "Example", timedelta(minutes=5))], NOW)
    (a,) = store.feeds()

    def poll(*items: NewItem, hours: float) -> PollWrite:
        at = NOW + timedelta(hours=hours)
        return PollWrite(a.id, dataclasses.replace(ok(), checked_at=at), list(items),
                         [i.key for i in items])

    store.record_polls([poll(*(item(f"old{n}", "email") for n in range(4)), hours=0)])
    store.record_polls([poll(item("recent", "email"), hours=1)])
    old = items_module._CACHES[store.engine].index
    assert len(old) == 4
    store.record_polls([poll(item("late", "email"), hours=50)])  # window 48 h, margin 1 h
    kept = items_module._CACHES[store.engine].index
    assert kept is not old
    with store.engine.connect() as conn:
        recent = conn.execute(text("SELECT id FROM items WHERE key = 'recent'")).scalar()
    assert [c.item_id for c in kept] == [recent]


_SQLITE = create_engine("sqlite://")
_PROCESSORS = Item.__table__.c.published_at.type.dialect_impl(_SQLITE.dialect).bind_processor(
    _SQLITE.dialect)


def _outcome(process: object, value: datetime | None) -> object:
    """What ``process`` returns for ``value``, or the type of what it raises."""
    assert callable(process)
    try:
        return process(value)
    except Exception as exc:  # the error is the outcome compared
        return type(exc)


@given(st.one_of(
    st.none(),
    st.datetimes(),  # naive: refused alike
    st.datetimes(timezones=st.builds(timezone, st.timedeltas(-timedelta(hours=23, minutes=59),
                                                              timedelta(hours=23, minutes=59)))),
    st.datetimes(timezones=st.timezones()),  # zoneinfo: folds, gaps
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))))
@example(datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=1))))  # overflows alike
@example(datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC))  # a year of three digits
@example(datetime(2026, 1, 19, 12, 0, 0, 1, tzinfo=timezone(-timedelta(hours=5))))
def test_sqlite_text_is_what_sqlalchemys_processors_make(value: datetime | None) -> None:
    """``sqlite_text`` (``BatchItems``' bind of a datetime on SQLite) against
    ``UTCDateTime``'s processor and then SQLite's DATETIME's, as SQLAlchemy chains them."""
    assert _outcome(sqlite_text, value) == _outcome(_PROCESSORS, value)

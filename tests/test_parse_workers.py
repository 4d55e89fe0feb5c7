"""Parsing in worker processes: a parse past its deadline or its memory is stopped,
recorded as the feed's error, and the next parse gets a fresh worker. Matching runs in
the same workers, with the watchlists in force."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import pickle
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from servers import FeedServer, Route, rss, send

from monitor import workers
from monitor.analyse import Analysed, Analyser, NewItem, NewMatch
from monitor.errors import FeedError
from monitor.fetch import Fetcher
from monitor.match import Matcher, WatchlistSpec, compile_watchlist
from monitor.parse import ParsedFeed
from monitor.poll import Poller, PollReport
from monitor.store import Store, create, migrate
from monitor.workers import ParseWorkers

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
LOCAL = [ipaddress.ip_network("127.0.0.1/32")]

SLOW_AUTHOR = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
               b"<title>x</title><author>" + b"a" * 400_000 + b"</author></item></channel></rss>")


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command's name: [0] state, [1] parent, [11]
    and [12] user and system CPU in clock ticks."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def parse_processes() -> tuple[int, int]:
    """This process's ``monitor.parse_worker`` descendants that have not ended: (parse
    workers, templates). A template is this process's child; the workers are the
    others: started on their own (its children) or forked by a template (the
    template's children)."""
    procs: dict[int, tuple[int, str, bytes]] = {}
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            state, ppid = _stat(pid)[:2]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        procs[pid] = (int(ppid), state, cmdline)

    def descends(pid: int) -> bool:
        for _ in range(64):  # bounded: a chain of parents
            pid = procs[pid][0] if pid in procs else 0
            if pid == os.getpid():
                return True
            if pid <= 1:
                return False
        return False

    workers = templates = 0
    for pid, (ppid, state, cmdline) in procs.items():
        if state in "ZX" or b"monitor.parse_worker" not in cmdline or not descends(pid):
            continue
        if ppid == os.getpid() and b"--template" in cmdline.split(b"\0"):
            templates += 1
        else:
            workers += 1
    return workers, templates


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store of the test's own: the workers are under test here, not
    the backends (``engine`` runs on both)."""
    engine = create(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    yield Store(engine)
    engine.dispose()


def running() -> int:
    """This process's parse workers, however started (``parse_processes``)."""
    return parse_processes()[0]


def test_a_parse_past_its_deadline_is_killed_and_the_next_one_works() -> None:
    async def go() -> tuple[str, int, int]:
        async with ParseWorkers(timeout=1.5, max_memory_bytes=None, workers=1) as pool:
            with pytest.raises(FeedError) as slow:
                await pool.parse(SLOW_AUTHOR, {}, "http://x/")
            ok = await pool.parse(rss({"title": "Tripoli", "guid": "1"}).encode(), {}, "http://x/")
            return str(slow.value), len(ok.entries), pool.killed
    # debug mode: the killed worker's stream must be closed from the event loop's thread
    error, entries, killed = asyncio.run(go(), debug=True)
    assert "parsing took longer than 1.5s" in error
    assert (entries, killed) == (1, 1)
    assert parse_processes() == (0, 0)  # the one stopped too, though the run ended right after


def test_other_parses_go_on_while_one_is_stuck() -> None:
    async def go() -> list[int]:
        async with ParseWorkers(timeout=60, max_memory_bytes=None, workers=2) as pool:
            stuck = asyncio.create_task(pool.parse(SLOW_AUTHOR, {}, "http://x/"))
            done = [len((await pool.parse(rss({"title": f"t{i}", "guid": str(i)}).encode(),
                                          {}, "http://x/")).entries) for i in range(5)]
            assert not stuck.done()
            stuck.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stuck
            return done
    assert asyncio.run(go()) == [1] * 5


def test_a_parse_past_its_memory_fails_in_the_worker() -> None:
    items = "".join(f"<item><title>{'word ' * 2000}{i}</title><guid>{i}</guid></item>"
                    for i in range(3000))
    body = f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
    async def go() -> str:
        async with ParseWorkers(timeout=60, max_memory_bytes=120_000_000, workers=1) as pool:
            with pytest.raises(FeedError) as exc:
                await pool.parse(body, {}, "http://x/")
            return str(exc.value)
    error = asyncio.run(go())
    assert "memory" in error or "process died" in error


def test_other_feeds_are_polled_while_one_feed_is_stuck_in_its_parse(
        store: Store, feed_server: FeedServer) -> None:
    slow_url = feed_server.serve("/slow", SLOW_AUTHOR)
    good = [feed_server.serve(f"/good{i}", rss({"title": f"Tripoli {i}", "guid": str(i)}))
            for i in range(3)]
    store.sync_feeds([(u, None, timedelta(minutes=5)) for u in [slow_url, *good]], NOW)
    feeds = {f.url: f for f in store.feeds()}

    async def go() -> tuple[list[PollReport], PollReport]:
        async with Fetcher(timeout=5, max_body_bytes=1_000_000, concurrency=4, user_agent="t",
                           allow_private_networks=LOCAL) as fetcher, \
                ParseWorkers(timeout=4, max_memory_bytes=None, workers=2) as pool:
            poller = Poller(store, fetcher, [], {}, jitter=lambda: 0.0, analyse=pool.analyse)
            slow = asyncio.create_task(poller.poll(feeds[slow_url], NOW))
            done = [await poller.poll(feeds[u], NOW) for u in good]
            assert not slow.done(), "the good feeds waited for the stuck one"
            return done, await slow
    done, slow = asyncio.run(go())
    assert parse_processes() == (0, 0)
    assert [r.ok for r in done] == [True] * 3
    assert not slow.ok and slow.error is not None and "parsing took longer" in slow.error
    assert {f.url: f.last_error for f in store.feeds()}[slow_url] == slow.error


class BrokenAnalyser(Analyser):
    """An analyser with a bug, as the worker runs it (the worker imports this module)."""

    def analyse(self, parsed: ParsedFeed, feed_title: str | None = None) -> Analysed:
        raise ZeroDivisionError("a bug in matching")


def test_the_workers_match_with_the_watchlists_in_force(
        store: Store, feed_server: FeedServer) -> None:
    """Matching runs in the worker, which keeps the analyser it was sent: after a change
    of watchlists the next poll matches with the new ones, in the same worker."""
    libya = compile_watchlist(WatchlistSpec("libya", ("Tripoli",)))
    haftar = compile_watchlist(WatchlistSpec("haftar", ("Haftar",)))
    first = rss({"title": "Clashes in Tripoli", "guid": "1"})
    second = rss({"title": "Clashes in Tripoli", "guid": "1"},
                 {"title": "Haftar in Tripoli", "guid": "2"})
    url = feed_server.serve("/f", first)
    store.sync_feeds([(url, None, timedelta(minutes=5))], NOW)
    store.sync_watchlists({"libya": {}, "haftar": {}}, NOW)

    async def go() -> list[PollReport]:
        async with Fetcher(timeout=5, max_body_bytes=1_000_000, concurrency=1, user_agent="t",
                           allow_private_networks=LOCAL) as fetcher, \
                ParseWorkers(timeout=10, max_memory_bytes=None, workers=1) as pool:
            poller = Poller(store, fetcher, [libya], {"libya": ("desk",), "haftar": ("desk",)},
                            jitter=lambda: 0.0, analyse=pool.analyse)
            (feed,) = store.feeds()
            reports = [await poller.poll(feed, NOW)]
            poller.use_watchlists([haftar])
            feed_server.serve("/f", second)
            (feed,) = store.feeds()
            reports.append(await poller.poll(feed, NOW + timedelta(minutes=5)))
            return reports

    one, two = asyncio.run(go())
    assert one.ok and one.counts.by_watchlist == {"libya": 1} and one.counts.alerts == 1
    # the known item is not stored again; the new one matches the new watchlists only
    assert two.ok and two.counts.new_items == 1 and two.counts.by_watchlist == {"haftar": 1}


def test_a_bug_in_matching_in_the_worker_costs_that_feed_and_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    body = rss({"title": "Tripoli", "guid": "1"}).encode()
    broken = BrokenAnalyser(Matcher.of([]), {})
    fine = Analyser.of([compile_watchlist(WatchlistSpec("libya", ("Tripoli",)))], {})

    async def go() -> tuple[str, Analysed]:
        async with ParseWorkers(timeout=10, max_memory_bytes=None, workers=1) as pool:
            with pytest.raises(FeedError) as bug:
                await pool.analyse(body, {}, "http://x/", broken, None)
            return str(bug.value), await pool.analyse(body, {}, "http://x/", fine, "Wire")

    error, after = asyncio.run(go())
    assert error == "internal error while matching the feed's entries (ZeroDivisionError)"
    assert "ZeroDivisionError: a bug in matching" in caplog.text  # the worker's traceback
    (item,) = after.items  # the same worker, still serving
    assert [m.watchlist for m in item.matches] == ["libya"]


def test_the_first_parse_starts_every_worker_and_none_is_left_after() -> None:
    """None before a feed needs parsing (a round of 304s needs none), not even the
    template; then all at once; none after. Where there are pidfds the workers are
    forked by one template, which ends with the pool."""

    async def go() -> tuple[tuple[int, int], tuple[int, int]]:
        async with ParseWorkers(timeout=5, max_memory_bytes=None, workers=2) as pool:
            await asyncio.sleep(0.5)
            before = parse_processes()
            await pool.parse(rss({"title": "Tripoli", "guid": "1"}).encode(), {}, "http://x/")
            for _ in range(200):  # bounded: 10 s
                if running() == 2:
                    break
                await asyncio.sleep(0.05)
            return before, parse_processes()

    assert asyncio.run(go()) == ((0, 0), (2, 1 if workers._CAN_FORK else 0))
    assert parse_processes() == (0, 0)


def test_a_feed_without_validators_has_the_workers_started_while_it_is_fetched(
        store: Store, feed_server: FeedServer) -> None:
    """Its answer will be a body to parse: the poller starts the workers as it fetches
    it, so their start runs beside the first fetches, not after the first body. A feed
    with an ETag, answered 304, starts none."""
    up: list[int] = []

    def held(handler: BaseHTTPRequestHandler) -> None:  # answers once they are up (10 s at most)
        for _ in range(200):
            if running() == 2:
                break
            time.sleep(0.05)
        up.append(running())
        send(handler, 200, {"Content-Type": "application/rss+xml"},
             rss({"title": "Tripoli", "guid": "1"}).encode())

    feed_server.routes["/new"] = Route(handler=held)
    same = feed_server.serve("/same", b"", status=304)
    store.sync_feeds([(u, None, timedelta(minutes=5)) for u in (feed_server.url("/new"), same)],
                     NOW)
    feeds = {f.url: f for f in store.feeds()}

    async def go() -> tuple[tuple[int, int], PollReport]:
        async with Fetcher(timeout=20, max_body_bytes=1_000_000, concurrency=4, user_agent="t",
                           allow_private_networks=LOCAL) as fetcher, \
                ParseWorkers(timeout=5, max_memory_bytes=None, workers=2) as pool:
            poller = Poller(store, fetcher, [], {}, jitter=lambda: 0.0, analyse=pool.analyse,
                            prepare=pool.prepare)
            unchanged = await poller.poll(replace(feeds[same], etag='"v1"'), NOW)
            assert unchanged.status == 304
            after_304 = parse_processes()
            return after_304, await poller.poll(feeds[feed_server.url("/new")], NOW)

    after_304, new = asyncio.run(go())
    assert after_304 == (0, 0)
    assert up == [2], "the workers were not started before the body was sent"
    assert new.ok and new.counts.new_items == 1
    assert parse_processes() == (0, 0)


def test_only_a_feed_that_will_send_a_body_has_the_workers_started_ahead(
        store: Store, feed_server: FeedServer, caplog: pytest.LogCaptureFixture) -> None:
    """A feed with an ETag or a Last-Modified may be answered 304, and a failing feed
    may fail again: neither starts the workers ahead. A start that fails costs the
    poll nothing (logged); a closed pool starts no process."""
    url = feed_server.serve("/f", rss({"title": "Tripoli", "guid": "1"}))
    store.sync_feeds([(url, None, timedelta(minutes=5))], NOW)
    (feed,) = store.feeds()
    asked: list[str] = []

    def prepare() -> None:
        asked.append(feed.url)
        raise RuntimeError("no workers today")

    async def go() -> list[PollReport]:
        async with Fetcher(timeout=5, max_body_bytes=1_000_000, concurrency=4, user_agent="t",
                           allow_private_networks=LOCAL) as fetcher:
            poller = Poller(store, fetcher, [], {}, jitter=lambda: 0.0, prepare=prepare)
            reports = []
            for variant in (replace(feed, etag='"v1"'),
                            replace(feed, last_modified="Mon, 19 Jan 2026 12:00:00 GMT"),
                            replace(feed, consecutive_failures=2)):
                reports.append(await poller.poll(variant, NOW))
                assert asked == [], variant
            reports.append(await poller.poll(replace(feed, consecutive_failures=0), NOW))
            return reports

    reports = asyncio.run(go())
    assert asked == [url]
    assert [r.ok for r in reports] == [True] * 4
    assert "starting the parse workers ahead of" in caplog.text
    assert "no workers today" in caplog.text

    async def closed() -> tuple[int, int]:
        pool = ParseWorkers(timeout=5, max_memory_bytes=None, workers=2)
        pool.close()
        pool.prepare()
        await asyncio.sleep(0.2)
        return parse_processes()

    assert asyncio.run(closed()) == (0, 0)


class UnloadableAnalyser(Analyser):
    """An analyser whose copy fails to load in the worker (as one past the memory cap)."""

    def __setstate__(self, state: dict[str, object]) -> None:
        raise MemoryError


def test_a_worker_whose_new_analyser_failed_to_load_is_sent_the_next_one_whole() -> None:
    """A job with an analyser the worker held before must not count on it still holding
    it: the failed load of a newer one has dropped it."""
    body = rss({"title": "Tripoli", "guid": "1"}).encode()
    tripoli = Analyser.of([compile_watchlist(WatchlistSpec("libya", ("Tripoli",)))], {})
    unloadable = UnloadableAnalyser(Matcher.of([]), {})

    async def go() -> tuple[str, Analysed]:
        async with ParseWorkers(timeout=10, max_memory_bytes=None, workers=1) as pool:
            await pool.analyse(body, {}, "http://x/", tripoli, None)
            with pytest.raises(FeedError) as refused:
                await pool.analyse(body, {}, "http://x/", unloadable, None)
            return str(refused.value), await pool.analyse(body, {}, "http://x/", tripoli, None)

    error, again = asyncio.run(go())
    assert "needed more memory" in error
    (item,) = again.items
    assert [m.watchlist for m in item.matches] == ["libya"]


def test_a_new_item_comes_back_from_a_worker_equal_to_itself() -> None:
    """``NewItem`` is pickled as its values, alone or in a worker's ``Analysed``
    answer: every field comes back, matches and date included, and each copy is a
    ``NewItem`` like any other."""
    match = NewMatch("libya", [{"index": 0, "rule": "Tripoli", "terms": []}], "snippet",
                     [[0, 7]], ("desk",))
    item = NewItem("key", "guid", "https://x/1", "Tripoli", "summary", "content", "author",
                   NOW, (match,), title_key="tk", simhash="00ff00ff00ff00ff")
    plain = NewItem("k2", None, None, "Benghazi", "", "", "", None)
    copy = pickle.loads(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy == item and type(copy) is NewItem
    assert copy._asdict() == item._asdict()
    with pytest.raises(AttributeError):  # still frozen
        copy.title = "x"  # type: ignore[misc]
    answer = Analysed(ParsedFeed(title="t", link=None, entries=()), [item, plain],
                      ["key", "k2"], [NOW])
    back = pickle.loads(pickle.dumps(("ok", answer), protocol=pickle.HIGHEST_PROTOCOL))[1]
    assert back == answer and [type(i) for i in back.items] == [NewItem, NewItem]
    assert [i._asdict() for i in back.items] == [item._asdict(), plain._asdict()]
    assert back.items[1].matches == () and back.items[1].simhash is None


def test_a_feed_queued_behind_one_past_its_deadline_is_parsed_by_a_new_worker() -> None:
    """A worker is sent its next job before it answers the one it is on; when it is
    stopped on the first, the second (which it never began) goes to a new worker
    instead of failing with it."""
    async def go() -> tuple[int, str, int, int]:
        async with ParseWorkers(timeout=1.5, max_memory_bytes=None, workers=1) as pool:
            slow = asyncio.create_task(pool.parse(SLOW_AUTHOR, {}, "http://x/slow"))
            queued = asyncio.create_task(
                pool.parse(rss({"title": "Tripoli", "guid": "1"}).encode(), {}, "http://x/"))
            for _ in range(100):  # bounded: 5 s
                if pool._ready and len(pool._ready[0].pending) == 2:
                    break
                await asyncio.sleep(0.05)
            in_flight = len(pool._ready[0].pending) if pool._ready else 0
            with pytest.raises(FeedError) as stopped:
                await slow
            return in_flight, str(stopped.value), len((await queued).entries), pool.killed

    in_flight, error, entries, killed = asyncio.run(go(), debug=True)
    assert in_flight == 2
    assert "parsing took longer than 1.5s" in error
    assert (entries, killed) == (1, 1)
    assert parse_processes() == (0, 0)


def test_a_job_sent_while_the_worker_failed_to_take_a_new_analyser_is_sent_it_whole(
        ) -> None:
    """Jobs go out before the one carrying a new analyser is answered: when that one
    fails before the worker loads it (here the feed is not a feed), the next, sent
    without it, is answered "resend" and goes again with it."""
    tripoli = Analyser.of([compile_watchlist(WatchlistSpec("libya", ("Tripoli",)))], {})
    haftar = Analyser.of([compile_watchlist(WatchlistSpec("haftar", ("Haftar",)))], {})
    body = rss({"title": "Haftar near Tripoli", "guid": "1"}).encode()

    async def go() -> tuple[list[str], BaseException | Analysed, Analysed]:
        async with ParseWorkers(timeout=10, max_memory_bytes=None, workers=1) as pool:
            first = await pool.analyse(body, {}, "http://x/", tripoli, None)
            broken, after = await asyncio.gather(
                pool.analyse(b"<html>not a feed</html>", {}, "http://x/b", haftar, None),
                pool.analyse(body, {}, "http://x/", haftar, None), return_exceptions=True)
            assert isinstance(after, Analysed)
            return [m.watchlist for m in first.items[0].matches], broken, after

    first, broken, after = asyncio.run(go())
    assert first == ["libya"]
    assert isinstance(broken, FeedError)
    assert [m.watchlist for m in after.items[0].matches] == ["haftar"]


forking = pytest.mark.skipif(not workers._CAN_FORK,
                             reason="workers are forked by a template only where there "
                                    "are pidfds (Linux 5.3 and later)")


def _pid(pidfd: int) -> int:
    """The process a pidfd of this process names."""
    for line in Path(f"/proc/self/fdinfo/{pidfd}").read_text().splitlines():
        if line.startswith("Pid:"):
            return int(line.split()[1])
    raise AssertionError("not a pidfd")


def _worker_pid(pool: ParseWorkers) -> int:
    (worker,) = pool._ready
    assert isinstance(worker.process, workers._Forked)
    return _pid(worker.process.pidfd)


async def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended and been reaped, waiting up to 5 s (bounded)."""
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            return True
        await asyncio.sleep(0.05)
    return False


@forking
def test_workers_are_forked_by_the_template_and_one_past_its_deadline_by_it_again() -> None:
    """The template forks each worker, the one replacing a worker killed at its
    deadline too; the killed one is stopped through its pidfd and reaped."""
    ok = rss({"title": "Tripoli", "guid": "1"}).encode()

    async def go() -> tuple[int, int, int, int, int, bool, tuple[int, int]]:
        async with ParseWorkers(timeout=1.5, max_memory_bytes=None, workers=1) as pool:
            await pool.parse(ok, {}, "http://x/")
            assert pool._template is not None
            template = pool._template.process.pid
            first = _worker_pid(pool)
            first_parent = int(_stat(first)[1])
            with pytest.raises(FeedError):
                await pool.parse(SLOW_AUTHOR, {}, "http://x/slow")
            await pool.parse(ok, {}, "http://x/")
            second = _worker_pid(pool)
            return (template, first, first_parent, second, int(_stat(second)[1]),
                    await _gone(first), parse_processes())

    template, first, first_parent, second, second_parent, gone, during = asyncio.run(go())
    assert first_parent == template and second_parent == template
    assert second != first and gone
    assert during == (1, 1)
    assert parse_processes() == (0, 0)


@forking
def test_a_forked_workers_cpu_counts_in_this_process_once_the_pool_is_closed() -> None:
    """The template waits for its workers and is reaped: their CPU time reaches
    ``RUSAGE_CHILDREN`` (the bench's CPU figures count it)."""
    import resource

    items = "".join(f"<item><title>Tripoli {i}, said Haftar</title><guid>{i}</guid>"
                    f"<description>Item {i} about Sarraj's government</description></item>"
                    for i in range(1000))
    busy = f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
    tick = os.sysconf("SC_CLK_TCK")

    def cpu(pid: int) -> float:
        fields = _stat(pid)
        return (int(fields[11]) + int(fields[12])) / tick

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    async def go() -> tuple[float, float]:
        async with ParseWorkers(timeout=60, max_memory_bytes=None, workers=1) as pool:
            for _ in range(3):
                await pool.parse(busy, {}, "http://x/")
            assert pool._template is not None
            return cpu(pool._template.process.pid), cpu(_worker_pid(pool))

    before = children()
    template, worker = asyncio.run(go())
    assert worker > 0.1  # enough to tell apart from the template's own
    assert children() - before >= template + worker - 2 / tick


@forking
def test_a_worker_starts_on_its_own_when_the_template_cannot_fork_one(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def refuse(self: workers._Template, max_memory: int | None) -> None:
        raise workers.TemplateFailed("refused for the test")

    monkeypatch.setattr(workers._Template, "fork", refuse)

    async def go() -> tuple[int, tuple[int, int], bool]:
        async with ParseWorkers(timeout=10, max_memory_bytes=None, workers=1) as pool:
            parsed = await pool.parse(rss({"title": "Tripoli", "guid": "1"}).encode(), {},
                                      "http://x/")
            (worker,) = pool._ready
            return len(parsed.entries), parse_processes(), isinstance(worker.process,
                                                                      workers._Forked)

    entries, during, forked = asyncio.run(go())
    assert (entries, during, forked) == (1, (1, 0), False)  # the template was stopped
    assert "did not fork a worker (refused for the test); the workers start on their own" \
        in caplog.text
    assert parse_processes() == (0, 0)


@forking
def test_a_template_that_ended_is_started_again_for_the_next_worker() -> None:
    ok = rss({"title": "Tripoli", "guid": "1"}).encode()

    async def go() -> tuple[int, int, int, bool, tuple[int, int]]:
        async with ParseWorkers(timeout=1.5, max_memory_bytes=None, workers=1) as pool:
            await pool.parse(ok, {}, "http://x/")
            assert pool._template is not None
            ended = pool._template.process
            orphan = _worker_pid(pool)
            ended.kill()
            ended.wait()
            with pytest.raises(FeedError):  # its worker goes on, until this kills it
                await pool.parse(SLOW_AUTHOR, {}, "http://x/slow")
            parsed = await pool.parse(ok, {}, "http://x/")
            assert pool._template is not None
            return (len(parsed.entries), pool._template.process.pid, ended.pid,
                    await _gone(orphan), parse_processes())

    entries, template, ended, orphan_gone, during = asyncio.run(go())
    assert entries == 1 and template != ended
    assert orphan_gone
    assert during == (1, 1)
    assert parse_processes() == (0, 0)


@forking
def test_a_template_whose_pool_is_gone_kills_a_worker_stuck_in_a_parse() -> None:
    """The daemon's end of the template's socket closes (the daemon died, SIGKILL)
    while a worker is in a parse it would have stopped at its deadline: the template
    kills it, instead of leaving it running for minutes as an orphan."""

    async def go() -> tuple[bool, bool]:
        async with ParseWorkers(timeout=600, max_memory_bytes=None, workers=1) as pool:
            stuck = asyncio.create_task(pool.parse(SLOW_AUTHOR, {}, "http://x/slow"))
            for _ in range(100):  # bounded: 5 s
                if pool._ready and pool._ready[0].pending:
                    break
                await asyncio.sleep(0.05)
            assert pool._template is not None
            worker = _worker_pid(pool)
            pool._template.control.close()  # what the kernel does when the daemon dies
            template = pool._template.process
            ended = await asyncio.to_thread(template.wait, 10) is not None
            gone = await _gone(worker)
            with pytest.raises(FeedError):
                await stuck
            return ended, gone

    assert asyncio.run(go()) == (True, True)
    assert parse_processes() == (0, 0)

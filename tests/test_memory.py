"""The daemon's peak memory over the whole adversarial corpus, measured on a real
``monitor run --once`` process (ru_maxrss of the process, and of its parse workers)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
from conftest import Workspace
from corpus import load_cases, register
from servers import FeedServer

from monitor import daemon
from monitor.config import load_config

DAEMON_BOUND_MB = 400
"""docs/security.md: the daemon's own peak RSS over the corpus stays under this."""
WORKER_BOUND_MB = 1024
"""Each parse worker is capped by [parse] max_memory_bytes (1 GiB by default)."""

MEASURE = """
import json, resource, sys
from monitor.cli import main
code = main(sys.argv[1:])
def own_peak_mb():
    # VmHWM: the peak RSS of this process's own memory since its exec. ru_maxrss is not
    # that on Linux: exec folds the RSS of the process that forked it (here pytest, which
    # grows over a whole run) into it, so a test run late in the suite measured pytest.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
peak = {"code": code, "self_mb": own_peak_mb(),
        # the largest worker (forked by the template, which waits for them, or started
        # by the daemon); an upper bound: it includes the daemon's RSS when it forked
        "children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
print("PEAK " + json.dumps(peak), file=sys.stderr)
"""


@pytest.mark.adversarial_heavy
def test_peak_memory_over_the_whole_corpus(workspace: Workspace, feed_server: FeedServer
                                           ) -> None:
    cases = load_cases().CASES
    urls = [register(feed_server, c) for c in cases]
    workspace.write(feeds=urls, extra='[parse]\ntimeout = "15s"\n')
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, "--config", str(workspace.config), "run", "--once"],
        cwd=workspace.root, capture_output=True, text=True, timeout=300)
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("PEAK "))
    peak = json.loads(line.removeprefix("PEAK "))
    print(f"\ncorpus of {len(cases)} feeds: daemon peak {peak['self_mb']:.0f} MB, "
          f"largest parse worker {peak['children_mb']:.0f} MB")
    assert peak["code"] == 0, proc.stderr[-3000:]
    assert peak["self_mb"] < DAEMON_BOUND_MB
    assert peak["children_mb"] < WORKER_BOUND_MB
    assert "Traceback" not in proc.stderr


LOADED = """
import json, sys
from monitor.config import load_config
from monitor.daemon import build
app = build(load_config(sys.argv[1]))
print(json.dumps({"alembic": "alembic" in sys.modules,
                  "apprise_plugins": "apprise.plugins.email" in sys.modules}))
"""


def _loaded(workspace: Workspace) -> dict[str, bool]:
    proc = subprocess.run([sys.executable, "-c", LOADED, str(workspace.config)],
                          cwd=workspace.root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded: dict[str, bool] = json.loads(proc.stdout.splitlines()[-1])
    return loaded


def test_a_daemon_on_a_current_schema_without_channels_leaves_alembic_and_apprise_unloaded(
        workspace: Workspace) -> None:
    """docs/performance.md: alembic (about 11 MB of RSS) is loaded only to migrate, and
    apprise's plugins (about 13 MB) only to build a channel."""
    workspace.write(feeds=["http://127.0.0.1:9/feed"])
    assert _loaded(workspace) == {"alembic": True, "apprise_plugins": False}  # migrates
    assert _loaded(workspace) == {"alembic": False, "apprise_plugins": False}
    workspace.write(feeds=["http://127.0.0.1:9/feed"],
                    channels=[("file", "alertfile://var/alerts.log")])
    assert _loaded(workspace) == {"alembic": False, "apprise_plugins": True}


def test_the_head_read_from_the_migration_files_is_alembics() -> None:
    from monitor.store.db import _alembic_head, _head

    assert _head() == _alembic_head()


ARENAS = """
import json
from monitor.daemon import cap_malloc_arenas
print(json.dumps(cap_malloc_arenas()))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_daemon_caps_mallocs_arenas_unless_the_environment_does(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    for extra, capped in (({}, True), ({"MALLOC_ARENA_MAX": "4"}, False)):
        proc = subprocess.run([sys.executable, "-c", ARENAS], env=env | extra,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout) is capped
    calls: list[int] = []
    monkeypatch.setattr(daemon, "cap_malloc_arenas", lambda: calls.append(1) or True)
    workspace.write(feeds=["http://127.0.0.1:9/feed"])
    daemon.build(load_config(workspace.config))
    assert calls == [1]


SETTLED = """
import asyncio, gc, json, sys, weakref
from monitor.config import load_config
from monitor.daemon import GC_THRESHOLD, build, run_once
app = build(load_config(sys.argv[1]))
built = (gc.get_freeze_count(), gc.get_threshold()[0])  # build alone leaves it alone
asyncio.run(run_once(app))
first = gc.get_freeze_count()
asyncio.run(run_once(app))  # a second round: nothing more is frozen
class Node:
    pass
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after startup: the collector still frees it
gone = []
weakref.finalize(a, gone.append, True)
del a, b
gc.collect()
print(json.dumps({"built": built, "first": first, "second": gc.get_freeze_count(),
                  "threshold": gc.get_threshold()[0], "expected": GC_THRESHOLD,
                  "cycle_freed": gone == [True]}))
"""


def test_a_process_that_polls_moves_what_startup_made_out_of_the_collectors_way(
        workspace: Workspace) -> None:
    """``daemon.settle_gc``: a full collection went through every object startup made (a
    warm round spent 55 ms of its 0.32 s collecting). The first round freezes them and
    the young collections come every ``GC_THRESHOLD`` allocations; ``build`` alone (the
    other commands) leaves the collector as it is. In a fresh process: the suite's own
    is never settled (conftest)."""
    workspace.write(feeds=["http://127.0.0.1:9/feed"])
    proc = subprocess.run([sys.executable, "-c", SETTLED, str(workspace.config)],
                          capture_output=True, text=True, timeout=120, cwd=workspace.root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["built"] == [0, 700]  # Python's defaults
    assert out["first"] > 10_000 and out["second"] <= out["first"]  # (frozen ones may go)
    assert out["threshold"] == out["expected"] == 10_000
    assert out["cycle_freed"]


def test_the_daemon_settles_the_collector_once_its_app_is_built(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor import service

    calls: list[int] = []
    monkeypatch.setattr(service, "settle_gc", lambda: calls.append(1))
    workspace.write(feeds=["http://127.0.0.1:9/feed"])
    created = service.create_service(load_config(workspace.config), {})
    try:
        assert calls == [1]
    finally:
        created.app.store.dispose()
        if created.lock is not None:
            created.lock.release()

"""Every malformed settings file, watchlists file and OPML is refused with a message that
names the file and the place; a running daemon keeps its last good configuration."""

from __future__ import annotations

import signal
import threading

import pytest
from conftest import Workspace
from servers import FeedServer, NotifySocket, free_port, rss
from test_service import ARTICLE, Daemon, _on_next_request, write

from monitor.config import load_config
from monitor.errors import ConfigError

GOOD_WL = "watchlists:\n  - name: libya\n    rules: [Libya]\n"


def alias_bomb() -> str:
    """Ten levels of twelve: 12**10 (62 trillion) strings if expanded."""
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for name in "bcdefghij":
        text += f"{name}: &{name} [" + ",".join(["*" + prev] * 12) + "]\n"
        prev = name
    return text + "watchlists:\n  - name: libya\n    rules: *i\n"


OPML = ('<?xml version="1.0"?><opml version="2.0"><head/><body>{}</body></opml>')

# (what is broken, settings extra, watchlists text, opml bytes or None, expected message)
CASES = [
    ("toml syntax", "[fetch\n", GOOD_WL, None, "monitor.toml: not valid TOML"),
    ("unknown setting", "colour = 3\n", GOOD_WL, None,
     "monitor.toml: colour: unknown setting"),
    ("bad duration", '[parse]\ntimeout = "soon"\n', GOOD_WL, None,
     "monitor.toml: parse.timeout: 'soon' is not a duration"),
    ("negative limit", "[web]\nmax_pending_alerts = -1\n", GOOD_WL, None,
     "monitor.toml: web.max_pending_alerts:"),
    ("feed not http", '[[feed]]\nurl = "file:///etc/passwd"\n', GOOD_WL, None,
     "monitor.toml: feed[0].url: 'file:///etc/passwd' is not an http:// or https:// URL"),
    ("parse memory too small", "[parse]\nmax_memory_bytes = 1000\n", GOOD_WL, None,
     "monitor.toml: parse.max_memory_bytes:"),
    ("yaml syntax", "", "watchlists: [\n", None,
     "watchlists.yaml: line 2, column 1: not valid YAML"),
    ("yaml alias bomb", "", alias_bomb(), None,
     "watchlists.yaml: line 10, column 20: more than 100 YAML aliases"),
    ("yaml too large", "", "# " + "x" * 5_000_001 + "\n" + GOOD_WL, None,
     "watchlists.yaml: larger than 5,000,000 bytes"),
    ("yaml not a mapping", "", "- just\n- a list\n", None, "watchlists.yaml:"),
    ("yaml python tag", "", "watchlists: !!python/object/apply:os.system ['true']\n", None,
     "watchlists.yaml: line 1, column 13: not valid YAML"),
    ("bad rule", "", "watchlists:\n  - name: libya\n    rules: ['Tripoli AND']\n", None,
     "watchlists.yaml: watchlists[0].rules[0]:"),
    ("opml not xml", 'feeds = "feeds.opml"\n', GOOD_WL, b"<opml><body>", "feeds.opml: line 1"),
    ("opml entities", 'feeds = "feeds.opml"\n', GOOD_WL,
     b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x "y">]><opml/>',
     "feeds.opml: OPML with a DOCTYPE or entities is refused"),
    ("opml utf-16 entities", 'feeds = "feeds.opml"\n', GOOD_WL,
     '<?xml version="1.0" encoding="utf-16"?>\n<!ENTITY x "y"><opml/>'.encode("utf-16"),
     "feeds.opml: OPML with a DOCTYPE or entities is refused"),
    ("opml bad url", 'feeds = "feeds.opml"\n', GOOD_WL,
     OPML.format('<outline text="x" xmlUrl="javascript:alert(1)"/>').encode(),
     "feeds.opml: outline[0] (x): 'javascript:alert(1)' is not an http:// or https:// URL"),
    ("opml wrong root", 'feeds = "feeds.opml"\n', GOOD_WL, b"<rss/>",
     "feeds.opml: not OPML: the root element is <rss>"),
]


@pytest.mark.parametrize(("extra", "watchlists", "opml", "expected"),
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_a_malformed_file_is_refused_naming_the_place(
        workspace: Workspace, extra: str, watchlists: str, opml: bytes | None,
        expected: str) -> None:
    workspace.write(feeds=[], watchlists=watchlists)
    text = workspace.config.read_text()
    # top-level keys must come before the first table
    workspace.config.write_text(extra + text if not extra.startswith("[") else text + extra)
    if opml is not None:
        (workspace.root / "feeds.opml").write_bytes(opml)
    with pytest.raises(ConfigError) as exc:
        load_config(workspace.config)
    messages = [str(p) for p in exc.value.problems]
    assert any(m.startswith(expected) for m in messages), messages


def test_sighup_with_a_yaml_bomb_keeps_the_last_good_config(
        workspace: Workspace, feed_server: FeedServer) -> None:
    feed_server.serve("/a.xml", rss(ARTICLE))
    port = free_port()
    write(workspace, feed_server, port, ["/a.xml"])
    seen = threading.Event()
    with NotifySocket() as notify:
        daemon = Daemon(workspace, notify, port)
        try:
            notify.wait_for("READY")
            for bad in (alias_bomb(), "watchlists: [\n"):
                (workspace.root / "watchlists.yaml").write_text(bad, encoding="utf-8")
                daemon.signal(signal.SIGHUP)
                refused = notify.wait_for("READY")
                assert refused["STATUS"].startswith("reload refused"), refused
            seen.clear()
            _on_next_request(feed_server, "/a.xml", seen)
            assert seen.wait(30), "the last good configuration stopped polling"
            assert daemon.stop() == 0
        finally:
            daemon.kill()
    errors = [e["msg"] for e in daemon.events() if e["level"] == "ERROR"]
    assert any("watchlists.yaml: line 10, column 20: more than 100 YAML aliases" in m
               for m in errors), errors

"""The catalog from the command line, on real SQLite files: feeds (with autodiscovery
against a real HTTP server on 127.0.0.1), watchlists import/export, the audit log, and
a running daemon that follows an edit without a restart."""

from __future__ import annotations

import argparse
import getpass
import io
import json
import re
import signal
from pathlib import Path

import pytest
from conftest import ROOT, Workspace
from servers import FeedServer, NotifySocket, Receiver, rss
from test_service import Daemon

from monitor.cli import _parser, main
from monitor.cli_catalog import progress_bar
from monitor.config import load_config, parse_watchlists
from monitor.daemon import WATCHLISTS, build

ME = f"cli:{getpass.getuser()}"

TEAM = """\
watchlists:
- name: libya
  actors:
  - name: Khalifa Haftar
    aliases:
    - Haftar
  rules:
  - Tripoli AND NOT Lebanon
  - '@khalifa-haftar'
- name: sudan
  description: Sudan's war
  actors: []
  rules:
  - Sudan AND (RSF OR Darfur)
"""

OPML = """<?xml version="1.0"?>
<opml version="2.0"><head><title>mine</title></head><body>
<outline text="Folder">
  <outline text="Alpha" title="Alpha" xmlUrl="https://alpha.example/rss"/>
  <outline text="Beta" xmlUrl="https://beta.example/feed.atom"/>
</outline></body></opml>
"""


class Cli:
    def __init__(self, workspace: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
        self.workspace = workspace
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--config", str(self.workspace.config), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> object:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(workspace: Workspace, capsys: pytest.CaptureFixture[str]) -> Cli:
    workspace.write(feeds=["https://example.org/rss"])
    return Cli(workspace, capsys)


def test_watchlists_import_export_import_is_identity(cli: Cli, tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text(TEAM, encoding="utf-8")
    code, out, err = cli("watchlists", "import", str(team))
    assert code == 0, err
    assert "created watchlist sudan" in out and "1 created, 1 updated" in out
    code, exported, _ = cli("watchlists", "export")
    assert code == 0
    assert exported == TEAM  # the file's own form
    again = tmp_path / "again.yaml"
    assert cli("watchlists", "export", "-o", str(again))[0] == 0
    code, out, _ = cli("watchlists", "import", str(again))
    assert "0 created, 0 updated, 0 deleted, 2 unchanged" in out
    assert parse_watchlists(again.read_text(encoding="utf-8"), "a") == parse_watchlists(TEAM, "b")
    assert cli.json("watchlists", "list") == cli.json("watchlists", "list")
    assert [w["name"] for w in cli.json("watchlists", "list")] == ["libya", "sudan"]
    assert cli.json("watchlists", "show", "sudan") == {
        "name": "sudan", "description": "Sudan's war", "actors": [],
        "rules": ["Sudan AND (RSF OR Darfur)"]}
    code, out, _ = cli("watchlists", "show", "libya")
    assert "@khalifa-haftar  Khalifa Haftar  (Haftar)" in out and "[1] @khalifa-haftar" in out
    code, _, err = cli("watchlists", "show", "nope")
    assert code == 1 and "no watchlist named 'nope'" in err


def test_replace_mirrors_the_file(cli: Cli, tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text(TEAM.split("- name: sudan")[0], encoding="utf-8")  # libya only
    other = tmp_path / "other.yaml"
    other.write_text("watchlists:\n- name: chad\n  rules: [Chad]\n", encoding="utf-8")
    assert cli("watchlists", "import", str(other))[0] == 0
    assert [w["name"] for w in cli.json("watchlists", "list")] == ["chad", "libya"]
    code, out, _ = cli("watchlists", "import", str(team), "--replace")
    assert code == 0 and "deleted watchlist chad" in out
    assert [w["name"] for w in cli.json("watchlists", "list")] == ["libya"]


def test_a_malformed_rule_refuses_the_whole_import(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEAM.replace("Sudan AND (RSF OR Darfur)", "Sudan AND (RSF OR Darfur"),
                   encoding="utf-8")
    before = cli.json("watchlists", "list")
    code, _, err = cli("watchlists", "import", str(bad), "--replace")
    assert code == 1
    assert re.search(r"bad\.yaml: watchlists\[1\]\.rules\[0\]: .* at column \d+", err), err
    assert cli.json("watchlists", "list") == before
    assert [e for e in cli.json("audit") if e["actor"] == ME] == []  # type: ignore[union-attr]


def test_audit_shows_who_changed_what_with_before_and_after(cli: Cli, tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text(TEAM, encoding="utf-8")
    cli("watchlists", "import", str(team))
    entries = cli.json("audit", "--kind", "watchlist", "--target", "libya")
    assert isinstance(entries, list)
    update, create = entries  # newest first
    assert (create["actor"], create["action"], create["before"]) == ("config-file", "create",
                                                                      None)
    assert (update["actor"], update["action"]) == (ME, "update")
    assert update["before"] == create["after"]
    assert update["after"]["rules"] == ["Tripoli AND NOT Lebanon", "@khalifa-haftar"]
    code, out, _ = cli("audit", "--limit", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["WHEN", "ACTOR", "ACTION", "KIND", "TARGET", "CHANGE"]
    assert ME in lines[1] and "create" in lines[1] and "sudan" in lines[1]
    assert "update" in lines[2] and "description, actors, rules" in lines[2]
    assert len(cli.json("audit", "--limit", "1")) == 1  # type: ignore[arg-type]


def test_opml_import_export_import_is_identity(cli: Cli, tmp_path: Path) -> None:
    mine = tmp_path / "mine.opml"
    mine.write_text(OPML, encoding="utf-8")
    code, out, err = cli("feeds", "import-opml", str(mine))
    assert code == 0, err
    assert "2 created" in out and "importing" not in err  # no bar: stderr is no terminal
    out_file = tmp_path / "out.opml"
    assert cli("feeds", "export-opml", "-o", str(out_file))[0] == 0
    code, out, _ = cli("feeds", "import-opml", str(out_file))
    assert "0 created, 0 updated, 0 deleted, 3 unchanged" in out
    code, stdout_export, _ = cli("feeds", "export-opml")
    assert stdout_export == out_file.read_text(encoding="utf-8")
    feeds = {f["url"]: f["title"] for f in cli.json("feeds", "list")}  # type: ignore[union-attr]
    assert feeds == {"https://alpha.example/rss": "Alpha",
                     "https://beta.example/feed.atom": "Beta",
                     "https://example.org/rss": None}
    code, out, _ = cli("feeds", "import-opml", str(mine), "--replace")
    assert "deleted feed https://example.org/rss" in out
    assert len(cli.json("feeds", "list")) == 2  # type: ignore[arg-type]


def test_feeds_pause_resume_remove(cli: Cli) -> None:
    url = "https://example.org/rss"
    code, out, _ = cli("feeds", "pause", url)
    assert code == 0 and out == f"paused {url}\n"
    [feed] = cli.json("feeds", "list")  # type: ignore[misc]
    assert feed["status"] == "paused" and feed["active"] is False
    code, out, _ = cli("feeds", "list")
    assert out.splitlines()[1].startswith("paused")
    assert cli("feeds", "resume", url)[0] == 0
    assert cli.json("feeds", "list")[0]["active"] is True  # type: ignore[index]
    assert cli("feeds", "remove", url)[0] == 0
    assert cli.json("feeds", "list") == []
    code, _, err = cli("feeds", "remove", url)
    assert code == 1 and "no feed https://example.org/rss" in err
    actions = [e["action"] for e in cli.json("audit", "--kind", "feed")]  # type: ignore[union-attr]
    assert actions == ["delete", "resume", "pause", "create"]


def test_feeds_add_finds_the_feed_of_a_page(cli: Cli, feed_server: FeedServer) -> None:
    feed_server.serve("/news.xml", rss({"title": "x", "guid": "1"}, title="Daily News"))
    page = feed_server.serve(
        "/index.html", '<!doctype html><html><head><title>Home</title>'
        '<link rel="alternate" type="application/rss+xml" href="/news.xml"></head>'
        "<body>hi</body></html>", content_type="text/html")
    code, out, err = cli("feeds", "add", page)
    assert code == 0, err
    feed = feed_server.url("/news.xml")
    assert f"found the feed {feed} on the page {page}" in out
    assert f"added {feed} (Daily News)" in out
    listed = {f["url"]: f for f in cli.json("feeds", "list")}  # type: ignore[union-attr]
    assert listed[feed]["title"] == "Daily News" and page not in listed
    assert listed[feed]["status"] == "new"
    # a feed URL is taken as it is, with its own title unless one is given
    code, out, _ = cli("feeds", "add", feed, "--title", "Mine", "--interval", "5m")
    assert f"updated {feed} (Mine)" in out
    assert {f["url"]: f["interval"] for f in cli.json("feeds", "list")}[feed] == 300  # type: ignore[union-attr]


def test_feeds_add_on_a_page_without_a_feed_is_a_clear_error(
        cli: Cli, feed_server: FeedServer) -> None:
    page = feed_server.serve("/plain.html", "<!doctype html><html><body>no feed</body></html>",
                             content_type="text/html")
    code, out, err = cli("feeds", "add", page)
    assert code == 1
    assert f"error: {page} is an HTML page that advertises no feed" in err
    assert len(cli.json("feeds", "list")) == 1  # type: ignore[arg-type]
    code, out, err = cli("feeds", "add", feed_server.url("/missing.xml"))
    assert code == 1 and "HTTP 404" in err
    code, out, _ = cli("feeds", "add", page, "--no-discover")  # taken at its word
    assert code == 0 and f"added {page}" in out


def test_cli_edits_survive_a_restart_and_the_file_wins_on_its_own_edits(
        cli: Cli, workspace: Workspace) -> None:
    url = "https://example.org/rss"
    assert cli("feeds", "pause", url)[0] == 0
    code, _, _ = cli("watchlists", "delete", "libya")
    assert code == 0
    assert cli.json("watchlists", "list") == []  # the next build did not bring it back
    assert cli.json("feeds", "list")[0]["status"] == "paused"  # type: ignore[index]
    path = workspace.root / "watchlists.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("Libya OR", "Libye OR"),
                    encoding="utf-8")  # the file changes libya: the file wins
    [libya] = cli.json("watchlists", "list")  # type: ignore[misc]
    assert libya["rules"][0].startswith("Libye OR")
    last = cli.json("audit", "--limit", "1")[0]  # type: ignore[index]
    assert (last["actor"], last["action"], last["target"]) == ("config-file", "create",
                                                               "libya")


def _commands(parser: argparse.ArgumentParser, prefix: str = ""
              ) -> dict[str, tuple[argparse.ArgumentParser, str | None]]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                found[f"{prefix}{name}"] = (sub, helps.get(name))
                found.update(_commands(sub, f"{prefix}{name} "))
    return found


def test_every_command_and_subcommand_has_help_and_is_in_the_docs() -> None:
    commands = _commands(_parser())
    assert {"feeds add", "feeds remove", "feeds pause", "feeds resume", "feeds import-opml",
            "feeds export-opml", "watchlists list", "watchlists show", "watchlists import",
            "watchlists export", "watchlists delete", "audit"} <= set(commands)
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, (sub, summary) in commands.items():
        assert summary, f"`monitor {name}` has no help line in its parent's list"
        assert sub.description, f"`monitor {name}` has no description for --help"
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"`monitor {name} {action.option_strings[0]}` has no help"
        assert re.search(rf"`monitor {re.escape(name)}\b", docs), f"docs/cli.md lacks {name}"
    for name in ("feeds list", "alerts list", "watchlists list", "watchlists show", "audit"):
        assert "--json" in {o for a in commands[name][0]._actions for o in a.option_strings}, \
            f"`monitor {name}` has no --json"


ARTICLE = {"title": "Clashes reported near Tripoli", "guid": "t1",
           "description": "Fighting near Tripoli overnight."}


def test_a_running_daemon_follows_cli_edits_without_a_restart(
        workspace: Workspace, feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.serve("/quiet.xml", rss({"title": "Weather", "guid": "w1"}))
    feed_server.serve("/b.xml", rss(ARTICLE, title="B news"))
    feed_server.serve("/b.html", '<html><head><link rel="alternate" '
                      'type="application/atom+xml" href="b.xml"></head></html>',
                      content_type="text/html")
    nothing = "watchlists:\n- name: libya\n  rules: [Zanzibar]\n"
    with Receiver() as rx, NotifySocket() as notify:
        workspace.write(feeds=[], channels=[("hook", f"json://127.0.0.1:{rx.port}/hook")],
                        watchlists=nothing,
                        extra=f'check_every = "0.2s"\n[[feed]]\nurl = '
                        f'"{feed_server.url("/quiet.xml")}"\ninterval = "1s"\n')
        daemon = Daemon(workspace, notify, 0)
        try:
            notify.wait_for("READY")
            edited = tmp_path / "edited.yaml"
            edited.write_text(nothing.replace("Zanzibar", "Tripoli"), encoding="utf-8")
            result = workspace.monitor("watchlists", "import", str(edited))
            assert result.code == 0, result.err
            result = workspace.monitor("feeds", "add", feed_server.url("/b.html"))
            assert result.code == 0, result.err
            assert "found the feed" in result.out
            assert rx.arrived.wait(60), "no alert on the rule added through the CLI"
            assert b"Clashes reported near Tripoli" in rx.posts[0][1]
            daemon.signal(signal.SIGTERM)
            assert daemon.proc.wait(timeout=60) == 0
        finally:
            daemon.kill()
    messages = [e["msg"] for e in daemon.events()]
    assert any(m.startswith("watchlists changed by another worker") for m in messages)


def test_a_reload_applies_an_edited_watchlists_file(workspace: Workspace) -> None:
    """What SIGHUP does (service.py calls build again): the file's edit reaches the
    database, the new App, and the version other workers follow."""
    workspace.write(feeds=[], watchlists="watchlists:\n- name: libya\n  rules: [Libya]\n")
    first = build(load_config(workspace.config))
    assert [w.spec.rules for w in first.watchlists] == [("Libya",)]
    (workspace.root / "watchlists.yaml").write_text(
        "watchlists:\n- name: libya\n  rules: [Libya, Tripoli]\n", encoding="utf-8")
    second = build(load_config(workspace.config), migrate_schema=False)
    assert [w.spec.rules for w in second.watchlists] == [("Libya", "Tripoli")]
    assert second.watchlists_version == (first.watchlists_version or 0) + 1
    assert second.store.shared_version(WATCHLISTS) == second.watchlists_version


def test_the_progress_bar_draws_on_a_terminal_only() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_bar(io.StringIO(), "x") is None
    tty = Tty()
    draw = progress_bar(tty, "importing feeds", width=10)
    assert draw is not None
    draw(5, 10)
    draw(10, 10)
    assert tty.getvalue() == ("\rimporting feeds [#####.....] 5/10"
                              "\rimporting feeds [##########] 10/10\n")


def test_the_rule_tools_use_the_watchlists_in_force(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    team = tmp_path / "team.yaml"
    team.write_text(TEAM, encoding="utf-8")
    assert cli("watchlists", "import", str(team))[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("RSF fighters entered Darfur, Sudan"))
    code, out, err = cli("watchlists", "test", "sudan")
    assert code == 0, err
    assert "Sudan AND (RSF OR Darfur)" in out
    code, out, err = cli("backtest", "sudan", "--json")
    assert code == 0, err
    assert json.loads(out)["rules"][0]["rule"] == "Sudan AND (RSF OR Darfur)"

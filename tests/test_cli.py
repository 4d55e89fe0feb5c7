"""`monitor check` and the shape of the command line."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from conftest import ROOT, Workspace
from servers import FeedServer, SmtpServer, rss

from monitor.cli import _parser, main


def test_the_example_config_checks_clean() -> None:
    assert main(["--config", str(ROOT / "config" / "monitor.toml"), "check"]) == 0


def test_bad_settings_are_all_reported_with_file_and_field(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.write(feeds=["ftp://example.org/feed"], channels=[("desk", "mailto://x@y.org")],
                    extra='default_interval = "soon"\nconcurency = 5\n')
    text = workspace.config.read_text().replace('watchlists = ["libya"]', 'watchlists = ["libia"]')
    workspace.config.write_text(text)
    assert main(["--config", str(workspace.config), "check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: monitor.toml: fetch.default_interval: 'soon' is not a duration; "
        "write e.g. '90s', '15m', '1h30m', '7d'",
        "error: monitor.toml: fetch.concurency: unknown setting (check the spelling)",
        "error: monitor.toml: feed[0].url: 'ftp://example.org/feed' is not an http:// or "
        "https:// URL",
    ]


def test_channel_naming_an_unknown_watchlist(workspace: Workspace,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    workspace.write(feeds=[], channels=[("desk", "alertfile://a.log")])
    workspace.config.write_text(workspace.config.read_text().replace('["libya"]', '["libia"]'))
    assert main(["--config", str(workspace.config), "check"]) == 1
    assert capsys.readouterr().err == (
        "error: monitor.toml: channel[0].watchlists[0]: no watchlist named 'libia' in "
        "watchlists.yaml (there: libya)\n")


def test_a_channel_may_take_every_watchlist(workspace: Workspace,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    workspace.write(feeds=[], channels=[("desk", "alertfile://a.log")])
    workspace.config.write_text(workspace.config.read_text().replace('["libya"]', '["*"]'))
    assert main(["--config", str(workspace.config), "check"]) == 0, capsys.readouterr().err


def test_a_malformed_rule_names_file_field_position_and_reason(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.write(feeds=[], watchlists="""
watchlists:
  - name: libya
    rules:
      - Libya
      - Tripoli AND (NOT Lebanon
      - Haftar Hifter
""")
    assert main(["--config", str(workspace.config), "check"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: watchlists.yaml: watchlists[0].rules[1]: unbalanced parenthesis: '(' is "
        "never closed at column 13",
        "error: watchlists.yaml: watchlists[0].rules[2]: expected AND, OR or NEAR/n before "
        "'Hifter' (write \"two words\" for a phrase) at column 8",
    ]


@pytest.mark.parametrize(("watchlists", "message"), [
    ("watchlists: [\n", "error: watchlists.yaml: line 2, column 1: not valid YAML"),
    ("watchlists:\n  - name: x\n", "error: watchlists.yaml: watchlists[0].rules: Field required"),
    ("watchlists:\n  - name: x\n    rules: [a]\n    actors: [{name: A, aliases: [{txt: B}]}]\n",
     "error: watchlists.yaml: watchlists[0].actors[0].aliases[0].txt: unknown setting"),
])
def test_a_malformed_watchlists_file(workspace: Workspace, capsys: pytest.CaptureFixture[str],
                                     watchlists: str, message: str) -> None:
    workspace.write(feeds=[], watchlists=watchlists)
    assert main(["--config", str(workspace.config), "check"]) == 1
    assert message in capsys.readouterr().err


def test_toml_syntax_error_and_missing_file(workspace: Workspace,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    workspace.config.write_text("[fetch\n")
    assert main(["--config", str(workspace.config), "check"]) == 1
    assert "error: monitor.toml: not valid TOML: " in capsys.readouterr().err
    assert main(["--config", str(workspace.root / "nope.toml"), "check"]) == 1
    assert "nope.toml: no such file" in capsys.readouterr().err


def test_a_channel_url_apprise_refuses(workspace: Workspace) -> None:
    workspace.write(feeds=[], channels=[("desk", "nosuch://token@host")])
    result = workspace.monitor("check")
    assert result.code == 1
    assert ("error: monitor.toml: channel[0].url: apprise does not accept this URL "
            "(scheme 'nosuch')") in result.err
    assert "token" not in result.err
    run = workspace.monitor("run", "--once")  # the daemon refuses it too
    assert run.code == 1 and "channel[0].url" in run.err


def test_check_reports_a_healthy_config(workspace: Workspace, smtp_server: SmtpServer) -> None:
    workspace.write(feeds=["https://example.org/rss"], channels=[("desk", smtp_server.url())])
    result = workspace.monitor("check")
    assert result.code == 0, result.err
    assert "ok — 1 feeds, 1 watchlists (5 rules), 1 channels" in result.out


def _commands(parser: argparse.ArgumentParser,
              prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix}{name}"] = sub
                found.update(_commands(sub, f"{prefix}{name} "))
    return found


def test_every_command_has_help_and_is_documented() -> None:
    commands = _commands(_parser())
    assert {"run", "check", "migrate", "feeds list", "alerts list", "watchlists test",
            "backtest", "test-alert"} <= set(commands)
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, sub in commands.items():
        assert sub.description, f"`monitor {name}` has no description"
        assert re.search(rf"`monitor {re.escape(name)}\b", docs), f"docs/cli.md lacks {name}"


def test_watchlists_test_explains_a_rule_on_stdin(workspace: Workspace) -> None:
    workspace.write(feeds=[])
    hit = workspace.monitor("watchlists", "test", "@khalifa-haftar AND Trip*", "--watchlist",
                            "libya", stdin="Clashes in Trip<b>oli</b> as Hifter’s forces advance")
    assert hit.code == 0, hit.err
    assert "match: [0] @khalifa-haftar AND Trip*" in hit.out
    assert "snippet: Clashes in [Tripoli] as [Hifter’s] forces advance" in hit.out
    miss = workspace.monitor("watchlists", "test", "Lebanon", stdin="Tripoli, Libya")
    assert (miss.code, miss.out) == (1, "no match\nclosest miss: [0] Lebanon\n"
                                        "  failed: Lebanon: not in the title or summary or "
                                        "content\n")


def test_migrate_creates_the_database(workspace: Workspace) -> None:
    workspace.write(feeds=[])
    first = workspace.monitor("migrate")
    assert first.code == 0 and "database schema: empty -> " in first.out
    assert workspace.monitor("migrate").out.startswith("database schema is current")
    assert isinstance(Path(workspace.db).stat().st_size, int)


def test_bad_channel_delivery_settings_name_their_field(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.write(feeds=[], channels=[("desk", "alertfile://a.log")])
    text = workspace.config.read_text() + (
        'mode = "digest"\ntimezone = "Mars/Olympus"\nquiet_hours = "late"\n'
        'templates = {pager = "p.j2"}\n')
    workspace.config.write_text(text)
    assert main(["--config", str(workspace.config), "check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: monitor.toml: channel[0].timezone: 'Mars/Olympus' is not a time zone; "
        "write e.g. 'Africa/Tripoli'",
        "error: monitor.toml: channel[0].quiet_hours: 'late' is not a range of hours; "
        "write e.g. '22:00-07:00'",
        "error: monitor.toml: channel[0].templates: unknown template pager; the formats "
        "are subject, text, html, slack",
    ]


def test_a_bad_digest_schedule_or_template_is_reported_by_check(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.write(feeds=[], channels=[("desk", "alertfile://a.log")])
    (workspace.root / "mine.j2").write_text("{% if kind %}unclosed", encoding="utf-8")
    workspace.config.write_text(workspace.config.read_text() + (
        'mode = "digest"\ndigest_schedule = "0 25 * * *"\ntemplates = {text = "mine.j2"}\n'))
    assert main(["--config", str(workspace.config), "check"]) == 1
    err = capsys.readouterr().err
    assert "error: monitor.toml: channel[0].templates: template text line 1: " in err
    assert "error: monitor.toml: channel[0].digest_schedule: not a cron schedule: " in err


def test_a_channel_can_override_its_templates(workspace: Workspace,
                                              feed_server: FeedServer) -> None:
    feed = feed_server.serve("/l.xml", rss({"title": "Clashes in Tripoli", "guid": "1",
                                            "description": "Fighting near Tripoli <today>"}))
    (workspace.root / "subject.j2").write_text("ALERT {{ story.title }}\nBcc: x@y.org")
    (workspace.root / "text.j2").write_text("{{ story.watchlist }}: {{ story.title }}")
    workspace.write(feeds=[feed], channels=[("desk", "alertfile://a.log")])
    workspace.config.write_text(workspace.config.read_text() + (
        'templates = {subject = "subject.j2", text = "text.j2"}\n'))
    assert workspace.monitor("run", "--once").code == 0
    assert (workspace.root / "a.log").read_text() == (
        "=== ALERT Clashes in Tripoli Bcc: x@y.org\nlibya: Clashes in Tripoli\n")


def test_dead_letters_are_listed_and_retried(workspace: Workspace,
                                             feed_server: FeedServer) -> None:
    feed = feed_server.serve("/l.xml", rss({"title": "Clashes in Tripoli", "guid": "1"}))
    dead = SmtpServer().url()  # never started
    workspace.write(feeds=[feed], channels=[("desk", dead)],
                    extra='[alerts]\nmax_attempts = 1\n')
    assert "1 failed" in workspace.monitor("run", "--once").out
    assert json.loads(workspace.monitor("alerts", "list", "--json").out) == []
    (letter,) = json.loads(workspace.monitor("alerts", "list", "--failed", "--json").out)
    assert letter["status"] == "dead" and letter["attempts"] == 1
    assert len(letter["errors"]) == 1 and "did not accept" in letter["errors"][0]["error"]
    assert "did not accept" in workspace.monitor("alerts", "list", "--failed").out
    assert workspace.monitor("alerts", "retry").code == 2
    retried = workspace.monitor("alerts", "retry", str(letter["id"]))
    assert (retried.code, retried.out) == (0, "1 alert queued again\n")
    (pending,) = json.loads(workspace.monitor("alerts", "list", "--json").out)
    assert pending["attempts"] == 0 and len(pending["errors"]) == 1
    assert workspace.monitor("alerts", "retry", "--all").out == "0 alerts queued again\n"

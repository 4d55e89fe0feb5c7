"""Settings that the CLI tests do not cover: per-feed secrets and fetch options."""

from __future__ import annotations

import pytest
from conftest import Workspace

from monitor.config import load_config
from monitor.daemon import App
from monitor.errors import ConfigError


def test_feed_headers_and_password_come_from_the_environment(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEED_PASS", "pw-123")
    monkeypatch.setenv("FEED_KEY", "key-456")
    workspace.write(feeds=[], extra=(
        "per_host = 2\nadaptive = true\n"
        '[[feed]]\nurl = "https://intranet.example.org/rss"\nusername = "desk"\n'
        'password = "${FEED_PASS}"\nheaders = { "X-Api-Key" = "${FEED_KEY}" }\n'
        '[[feed]]\nurl = "https://example.org/rss"\nadaptive = false\n'))
    config = load_config(workspace.config)
    assert config.settings.fetch.per_host == 2
    assert "pw-123" not in repr(config) and "key-456" not in repr(config)
    options = App(config, None, [], []).feed_options  # type: ignore[arg-type]
    intranet = options["https://intranet.example.org/rss"]
    assert intranet.auth is not None
    assert intranet.auth.basic_auth == ("desk", "pw-123")
    assert intranet.auth.headers == (("X-Api-Key", "key-456"),)
    assert intranet.adaptive is not None
    assert options["https://example.org/rss"].adaptive is None


def test_a_missing_feed_secret_names_the_field(workspace: Workspace) -> None:
    workspace.write(feeds=[], extra=(
        '[[feed]]\nurl = "https://example.org/rss"\nheaders = { "Authorization" = "${NOPE}" }\n'))
    with pytest.raises(ConfigError) as exc:
        load_config(workspace.config)
    assert [str(p) for p in exc.value.problems] == [
        "monitor.toml: feed[0].headers.Authorization: environment variable NOPE is not set"]


def test_a_feed_lease_shorter_than_a_fetch_is_refused(workspace: Workspace) -> None:
    workspace.write(feeds=[])
    text = workspace.config.read_text()
    workspace.config.write_text(text.replace("[database]\n", '[database]\nlease = "5s"\n'))
    with pytest.raises(ConfigError) as exc:
        load_config(workspace.config)
    assert "database.lease (0:00:05) must be longer than fetch.timeout (0:00:05)" in str(
        exc.value.problems[0])
    workspace.config.write_text(text.replace("[database]\n",
                                             '[database]\nlease = "6s"\nclaim_batch = 7\n'))
    database = load_config(workspace.config).settings.database
    assert (database.lease.total_seconds(), database.claim_batch) == (6, 7)

"""The web console's pages and JSON API (FastAPI's TestClient over the real app, a real
SQLite file, feeds polled from a local server): sign-in, roles, CSRF, escaping of feed
text, matches, the watchlist editor's preview, feeds, channels and the audit log."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Workspace
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from servers import FeedServer, rss

from monitor.cli import main
from monitor.config import load_config
from monitor.daemon import App, build, run_once
from monitor.store import Accounts
from monitor.web import api, pages
from monitor.web.passwords import hash_password
from monitor.web.wiring import console_for

SCRIPT_TITLE = "<script>alert('owned')</script> Clashes in Tripoli, Libya"
SERVED_TITLE = SCRIPT_TITLE.replace("<", "&lt;").replace(">", "&gt;")
"""Escaped once more in the feed (rss() escapes it again): the title *text* carries the
tag, as a feed that escapes twice delivers it."""
STORY = {"title": "Haftar's forces push toward Tripoli", "guid": "story",
         "description": "Fighting near Tripoli, Libya, as Haftar's forces advance."}
PASSWORDS = {"ann": "ann's long password", "bob": "bob's long password"}


@dataclass
class Site:
    app: App
    client: TestClient
    feeds: list[str]
    root: Path

    def sign_in(self, name: str) -> str:
        """Sign in through the API; the CSRF token of the session."""
        r = self.client.post("/api/session", json={"name": name, "password": PASSWORDS[name]})
        assert r.status_code == 200, r.text
        return str(r.json()["csrf"])


@pytest.fixture
def site(workspace: Workspace, feed_server: FeedServer,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.chdir(workspace.root)  # alertfile:// paths are relative to it
    a = feed_server.serve("/a.xml", rss(STORY, {"title": SERVED_TITLE, "guid": "x",
                                                "description": "Tripoli, Libya."},
                                        title="Wire A"))
    b = feed_server.serve("/b.xml", rss({**STORY, "guid": "b-story"}, title="Wire B"))
    workspace.write(feeds=[a, b], channels=[("file", "alertfile://alerts.log")])
    with workspace.config.open("a") as f:  # receives no watchlist: never sent to
        f.write('[[channel]]\nname = "desk"\n'
                "url = 'mailtos://desk:hunter2secret@smtp.example.org?to=desk@example.org'\n")
    app = build(load_config(workspace.config))
    asyncio.run(run_once(app))
    accounts = Accounts(app.store.engine)
    now = datetime.now(UTC)
    accounts.add_user("ann", hash_password(PASSWORDS["ann"]), "admin", now)
    accounts.add_user("bob", hash_password(PASSWORDS["bob"]), "analyst", now)
    with TestClient(console_for(lambda: app)) as client:
        yield Site(app, client, [a, b], workspace.root)


def page_csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def unsafe_routes(site: Site) -> list[tuple[str, str]]:
    """Every POST, PUT, PATCH and DELETE route of the console, pages and API."""
    out = []
    for route in (*pages.router.routes, *pages.guarded.routes, *api.public.routes,
                  *api.router.routes):
        if isinstance(route, APIRoute):
            for method in route.methods & {"POST", "PUT", "PATCH", "DELETE"}:
                path = route.path.replace("{name}", "libya").replace("{action}", "pause")
                out.append((method, path))
    return sorted(out)


SIGN_IN = {("POST", "/login"), ("POST", "/api/session")}
SIGN_OUT = {("POST", "/logout"), ("DELETE", "/api/session")}


# ------------------------------------------------------------ access


def test_pages_redirect_and_the_api_answers_401_without_a_session(site: Site) -> None:
    for path in ("/", "/matches", "/watchlists", "/watchlists/libya", "/feeds", "/channels",
                 "/audit", "/new-watchlist"):
        r = site.client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    for path in ("/api/matches", "/api/watchlists", "/api/feeds", "/api/channels",
                 "/api/audit", "/api/session"):
        assert site.client.get(path).status_code == 401, path
    for method, path in unsafe_routes(site):
        if (method, path) not in SIGN_IN:
            r = site.client.request(method, path, json={}, follow_redirects=False)
            assert r.status_code == 401, (method, path)


def test_every_unsafe_request_without_the_csrf_token_is_refused(site: Site) -> None:
    site.sign_in("ann")
    routes = unsafe_routes(site)
    assert len(routes) >= 15
    for method, path in routes:
        if (method, path) in SIGN_IN:
            continue
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            r = site.client.request(method, path, headers=headers,
                                    data={"csrf": "forged", "name": "libya"}
                                    if not path.startswith("/api/") else None,
                                    follow_redirects=False)
            assert r.status_code == 403, (method, path, r.text)
    assert site.client.get("/api/session").status_code == 200  # still signed in


def test_an_analyst_reads_but_every_edit_is_refused(site: Site) -> None:
    csrf = site.sign_in("bob")
    for path in ("/matches", "/watchlists", "/watchlists/libya", "/feeds", "/channels",
                 "/audit"):
        assert site.client.get(path).status_code == 200, path
    for path in ("/api/matches", "/api/watchlists", "/api/feeds", "/api/audit"):
        assert site.client.get(path).status_code == 200, path
    for method, path in unsafe_routes(site):
        if (method, path) in SIGN_IN | SIGN_OUT:
            continue
        r = site.client.request(method, path, headers={"X-CSRF-Token": csrf},
                                data={"csrf": csrf, "name": "libya", "rules": "Libya",
                                      "action": "save"} if not path.startswith("/api/")
                                else None, follow_redirects=False)
        assert r.status_code == 403, (method, path, r.text)
    watchlist = site.client.get("/watchlists/libya").text
    assert "<textarea" not in watchlist and "Save" not in watchlist
    feeds = site.client.get("/feeds").text
    assert "Pause" not in feeds and "Remove" not in feeds and "Add a feed" not in feeds
    assert "Send test alert" not in site.client.get("/channels").text
    r = site.client.get("/new-watchlist")
    assert r.status_code == 403 and "<h1>Not allowed</h1>" in r.text  # a page, not JSON
    assert site.client.put("/api/watchlists/libya").json()["detail"]  # JSON on the API
    assert site.app.store.audit(kind="watchlist", limit=10)[0].actor == "config-file"


def test_sign_in_and_out_through_the_pages(site: Site) -> None:
    form = site.client.get("/login?next=/feeds").text
    token = re.search(r'name="login_csrf" value="([^"]+)"', form)
    assert token
    r = site.client.post("/login", data={"name": "ann", "password": PASSWORDS["ann"],
                                         "login_csrf": "forged", "next": "/feeds"})
    assert r.status_code == 403
    r = site.client.post("/login", data={"name": "ann", "password": PASSWORDS["ann"],
                                         "login_csrf": token.group(1), "next": "/feeds"},
                         follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/feeds"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = site.client.get("/feeds").text
    assert "ann (admin)" in page
    r = site.client.post("/logout", data={"csrf": page_csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    assert site.client.get("/api/session").status_code == 401


def test_open_redirects_after_sign_in_are_refused(site: Site) -> None:
    form = site.client.get("/login").text
    token = re.search(r'name="login_csrf" value="([^"]+)"', form)
    assert token
    r = site.client.post("/login", data={"name": "ann", "password": PASSWORDS["ann"],
                                         "login_csrf": token.group(1),
                                         "next": "//evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/matches"


def test_failed_sign_ins_are_throttled_and_logged_without_the_password(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(5):
        r = site.client.post("/api/session", json={"name": "ann", "password": "guess-123456"})
        assert r.status_code == 401
    r = site.client.post("/api/session", json={"name": "ann", "password": PASSWORDS["ann"]})
    assert r.status_code == 429  # even the right password, until the window passes
    assert "guess-123456" not in caplog.text and PASSWORDS["ann"] not in caplog.text
    assert "sign-in failed for user 'ann'" in caplog.text
    assert site.sign_in("bob")  # another account from elsewhere is not locked out...


def test_the_database_holds_no_password_nor_session_token(site: Site) -> None:
    site.sign_in("ann")
    token = site.client.cookies["monitor_session"]
    db = sqlite3.connect(site.root / "monitor.db")
    dump = "\n".join(db.iterdump())
    db.close()
    assert PASSWORDS["ann"] not in dump and token not in dump
    assert "$argon2id$" in dump


# ------------------------------------------------------------ feed text is untrusted


def test_a_script_in_a_title_shows_as_text(site: Site) -> None:
    site.sign_in("bob")
    page = site.client.get("/matches").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt; Clashes in Tripoli" in page
    r = site.client.get("/matches")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    api = site.client.get("/api/matches").json()
    assert SCRIPT_TITLE in [m["title"] for m in api]  # JSON carries the text as it came


# ------------------------------------------------------------ matches


def test_matches_newest_first_highlighted_with_their_other_sources(site: Site) -> None:
    site.sign_in("bob")
    page = site.client.get("/matches").text
    assert "<mark>Tripoli</mark>" in page and "<mark>Libya</mark>" in page
    assert "Also reported by 1 other source" in page
    api = site.client.get("/api/matches").json()
    stamps = [m["matched_at"] for m in api]
    assert stamps == sorted(stamps, reverse=True)
    story = [m for m in api if m["also"]]
    assert story and story[0]["also"][0]["feed_url"] in site.feeds
    only_b = site.client.get("/api/matches", params={"feed": site.feeds[1]}).json()
    assert {m["feed_url"] for m in only_b} == {site.feeds[1]}
    assert site.client.get("/api/matches", params={"watchlist": "nope"}).json() == []
    assert site.client.get("/api/matches", params={"until": "2000-01-01"}).json() == []
    today = datetime.now(UTC).date().isoformat()
    assert len(site.client.get("/api/matches", params={"since": today}).json()) == len(api)
    assert site.client.get("/matches", params={"since": "yesterday"}).status_code == 400


# ------------------------------------------------------------ watchlists


def test_the_editor_shows_a_parse_error_with_its_rule_and_column(site: Site) -> None:
    site.sign_in("ann")
    csrf = page_csrf(site.client.get("/watchlists/libya").text)
    r = site.client.post("/watchlists", data={
        "csrf": csrf, "new": "0", "name": "libya", "rules": "Libya\nTripoli AND (Haftar",
        "actors": "", "action": "save"})
    assert r.status_code == 422
    assert "rule 2, column 13: unbalanced parenthesis" in r.text
    assert 'data-line="2" data-column="13"' in r.text
    assert "Tripoli AND (Haftar" in r.text  # the edit is kept for fixing
    r = site.client.put("/api/watchlists/libya", headers={"X-CSRF-Token": csrf},
                        json={"rules": ["Libya", "@nobody AND x"]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["line"] == 2 and "unknown actor @nobody" in r.text


def test_preview_shows_what_an_edit_adds_and_drops_then_save_is_audited(site: Site) -> None:
    csrf = site.sign_in("ann")
    saved = site.client.get("/api/watchlists/libya").json()
    edited = {**saved, "rules": ["Haftar"]}
    r = site.client.post("/api/watchlists/libya/preview", headers={"X-CSRF-Token": csrf},
                         json={"definition": edited, "days": 7})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["scanned"] == 3 and p["matched"] == 2 and p["saved_matched"] == 3
    assert p["added_total"] == 0 and p["dropped_total"] == 1
    assert p["dropped"][0]["title"] == SCRIPT_TITLE
    assert site.client.get("/api/watchlists/libya").json() == saved  # nothing saved
    r = site.client.put("/api/watchlists/libya", headers={"X-CSRF-Token": csrf}, json=edited)
    assert r.status_code == 200, r.text
    entry = r.json()
    assert (entry["actor"], entry["action"], entry["kind"], entry["target"]) == (
        "ann", "update", "watchlist", "libya")
    assert entry["after"]["rules"] == ["Haftar"] and entry["before"]["rules"] == saved["rules"]
    assert any(line.startswith("+") and "Haftar" in line for line in entry["diff"])
    audit = site.client.get("/api/audit", params={"kind": "watchlist"}).json()
    assert audit[0]["id"] == entry["id"]
    page = site.client.get("/audit").text
    assert "ann" in page and "update watchlist <strong>libya</strong>" in page


def test_a_new_watchlist_from_the_pages(site: Site) -> None:
    site.sign_in("ann")
    csrf = page_csrf(site.client.get("/new-watchlist").text)
    form = {"csrf": csrf, "new": "1", "name": "haftar", "description": "the LNA",
            "rules": "@haftar", "actors": "@haftar Khalifa Haftar | Haftar | =LNA",
            "days": "30"}
    r = site.client.post("/watchlists", data={**form, "action": "preview"})
    assert r.status_code == 200, r.text
    assert "matches <strong>2</strong>" in r.text and "Nothing is saved yet" in r.text
    r = site.client.post("/watchlists", data={**form, "action": "save"},
                         follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/watchlists/haftar?saved=1"
    saved = site.client.get("/api/watchlists/haftar").json()
    assert saved["actors"][0]["aliases"] == ["Haftar", {"text": "LNA", "case_sensitive": True}]
    assert saved["rules"] == ["@haftar"]
    r = site.client.post("/watchlists", data={**form, "action": "save"})
    assert r.status_code == 409  # a new watchlist never overwrites one of the same name


# ------------------------------------------------------------ feeds


def test_feeds_add_by_discovery_pause_resume_remove(site: Site, feed_server: FeedServer
                                                    ) -> None:
    feed = feed_server.serve("/c.xml", rss(STORY, title="Wire C"))
    page = feed_server.serve(
        "/news.html", '<!doctype html><html><head><link rel="alternate" '
        'type="application/rss+xml" href="/c.xml"></head><body>news</body></html>',
        content_type="text/html")
    csrf = site.sign_in("ann")
    h = {"X-CSRF-Token": csrf}
    r = site.client.post("/api/feeds", headers=h, json={"url": page})
    assert r.status_code == 201, r.text
    assert r.json()["url"] == feed and "found the feed" in r.json()["note"]
    rows = {f["url"]: f for f in site.client.get("/api/feeds").json()}
    assert rows[feed]["status"] == "new" and rows[site.feeds[0]]["status"] == "ok"
    assert site.client.post("/api/feeds/pause", headers=h, json={"url": feed}).status_code == 200
    assert {f["url"]: f for f in site.client.get("/api/feeds").json()}[feed]["status"] == "paused"
    assert "paused" in site.client.get("/feeds").text
    csrf_page = page_csrf(site.client.get("/feeds").text)
    r = site.client.post("/feeds/resume", data={"csrf": csrf_page, "url": feed},
                         follow_redirects=False)
    assert r.status_code == 303
    assert site.client.delete("/api/feeds", headers=h, params={"url": feed}).status_code == 200
    assert feed not in {f["url"] for f in site.client.get("/api/feeds").json()}
    actions = [(e["action"], e["actor"]) for e in
               site.client.get("/api/audit", params={"target": feed}).json()]
    assert actions == [("delete", "ann"), ("resume", "ann"), ("pause", "ann"),
                       ("create", "ann")]
    r = site.client.post("/api/feeds", headers=h, json={"url": feed_server.url("/none")})
    assert r.status_code == 422


# ------------------------------------------------------------ channels


def test_channels_are_masked_and_a_test_alert_is_sent(site: Site) -> None:
    csrf = site.sign_in("ann")
    page = site.client.get("/channels").text
    api = site.client.get("/api/channels").json()
    for shown in (page, str(api)):
        assert "hunter2secret" not in shown
    assert "desk" in page and "****" in page
    r = site.client.post("/api/channels/file/test", headers={"X-CSRF-Token": csrf})
    assert r.json() == {"channel": "file", "sent": True, "error": None}
    assert "test alert" in (site.root / "alerts.log").read_text()
    r = site.client.post("/channels/test", data={"csrf": csrf, "name": "file"})
    assert "Sent a test alert to file" in r.text
    assert site.client.post("/api/channels/nope/test",
                            headers={"X-CSRF-Token": csrf}).status_code == 404


# ------------------------------------------------------------ the API's description


def test_the_openapi_document_lists_every_endpoint(site: Site) -> None:
    doc: dict[str, Any] = site.client.get("/api/openapi.json").json()
    paths = doc["paths"]
    for path, methods in {
        "/api/session": {"get", "post", "delete"},
        "/api/matches": {"get"},
        "/api/watchlists": {"get"},
        "/api/watchlists/{name}": {"get", "put", "delete"},
        "/api/watchlists/{name}/preview": {"post"},
        "/api/feeds": {"get", "post", "delete"},
        "/api/feeds/pause": {"post"},
        "/api/feeds/resume": {"post"},
        "/api/channels": {"get"},
        "/api/channels/{name}/test": {"post"},
        "/api/audit": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    assert not [p for p in paths if not p.startswith("/api/")]  # pages are not API
    assert "MatchOut" in doc["components"]["schemas"]


def test_the_openapi_document_says_how_to_sign_in(site: Site) -> None:
    doc: dict[str, Any] = site.client.get("/api/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["session"] == {"type": "apiKey", "in": "cookie", "name": "monitor_session"}
    assert schemes["csrf"] == {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"}
    assert "security" not in doc["paths"]["/api/session"]["post"]
    assert doc["paths"]["/api/feeds"]["get"]["security"] == [{"session": []}]
    assert doc["paths"]["/api/watchlists/{name}"]["put"]["security"] == [
        {"session": [], "csrf": []}]


# ------------------------------------------------------------ the command line


def test_users_from_the_command_line(workspace: Workspace, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import json

    workspace.write(feeds=[])
    cfg = ["--config", str(workspace.config)]
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main([*cfg, "users", "add", "carol", "--role", "admin", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main([*cfg, "users", "add", "dan", "--role", "analyst", "--password-stdin"]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("another password\n"))
    assert main([*cfg, "users", "add", "carol", "--role", "analyst",
                 "--password-stdin"]) == 1
    capsys.readouterr()
    assert main([*cfg, "users", "list", "--json"]) == 0
    assert [(u["name"], u["role"]) for u in json.loads(capsys.readouterr().out)] == [
        ("carol", "admin")]
    assert main([*cfg, "users", "remove", "carol"]) == 0
    assert main([*cfg, "users", "remove", "carol"]) == 1
    err = capsys.readouterr().err
    assert "a long password" not in err and "no user named 'carol'" in err
    db = sqlite3.connect(workspace.db)
    rows = db.execute("select action, kind, target from audit where kind = 'user' "
                      "order by id").fetchall()
    db.close()
    assert rows == [("create", "user", "carol"), ("delete", "user", "carol")]


def test_an_oversized_body_is_refused_before_it_is_read(site: Site) -> None:
    r = site.client.post("/login", content=b"name=" + b"a" * 2_000_000,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


def test_monitor_web_serves_the_console_until_sigterm(workspace: Workspace) -> None:
    import signal
    import subprocess
    import sys

    import httpx
    from servers import free_port

    workspace.write(feeds=[])
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config",
                             str(workspace.config), "web", "--listen", f"127.0.0.1:{port}"],
                            cwd=workspace.root, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for _ in range(200):  # the log lines of the start, up to the console's
            line = proc.stderr.readline()
            if not line or "serving the console" in line:
                break
        assert "serving the console" in line, line
        with httpx.Client(trust_env=False, timeout=30) as client:
            r = client.get(f"http://127.0.0.1:{port}/matches", follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login")
            assert client.get(f"http://127.0.0.1:{port}/api/feeds").status_code == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

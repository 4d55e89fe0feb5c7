"""The console in a real browser: Playwright driving Debian's Chromium (no browser
download) against the console served by uvicorn on 127.0.0.1.

An admin signs in, edits a rule, sees the preview, saves, and finds the edit in the
audit log; an analyst signs in, finds no edit controls, and a forged POST is refused.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Workspace
from servers import FeedServer, rss

from monitor.config import load_config
from monitor.daemon import build, run_once
from monitor.store import Accounts
from monitor.web.passwords import hash_password
from monitor.web.serve import ConsoleServer
from monitor.web.wiring import console_for

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's Chromium is not installed at /usr/bin/chromium "
                       "(`make test` installs it with apt-get when it can)"),
]
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the playwright package is not installed")

ADMIN, ANALYST = ("ann", "ann's long password"), ("bob", "bob's long password")


@dataclass
class Console:
    url: str


@pytest.fixture
def console(workspace: Workspace, feed_server: FeedServer) -> Iterator[Console]:
    a = feed_server.serve("/a.xml", rss(
        {"title": "Haftar's forces push toward Tripoli", "guid": "1",
         "description": "Fighting near Tripoli, Libya."},
        {"title": "Markets calm in Benghazi", "guid": "2", "description": "Libya trade."}))
    workspace.write(feeds=[a])
    app = build(load_config(workspace.config))
    asyncio.run(run_once(app))
    accounts = Accounts(app.store.engine)
    for (name, password), role in ((ADMIN, "admin"), (ANALYST, "analyst")):
        accounts.add_user(name, hash_password(password), role, datetime.now(UTC))
    server = ConsoleServer("127.0.0.1", 0, console_for(lambda: app))
    try:
        yield Console(f"http://127.0.0.1:{server.port}")
    finally:
        server.close()


@pytest.fixture
def browser(console: Console) -> Iterator[Any]:
    """After the console: sync_playwright runs an event loop on this thread."""
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--no-sandbox", "--disable-background-networking"])
        try:
            yield b
        finally:
            b.close()


def sign_in(browser: Any, console: Console, who: tuple[str, str]) -> Any:
    page = browser.new_context().new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{console.url}/watchlists/libya")
    assert "/login" in page.url  # sent to sign in first, and back after
    page.fill("input[name=name]", who[0])
    page.fill("input[name=password]", who[1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{console.url}/watchlists/libya")
    return page


def test_an_admin_edits_previews_saves_and_finds_the_edit_in_the_audit_log(
        console: Console, browser: Any) -> None:
    page = sign_in(browser, console, ADMIN)
    expect = sync_api.expect
    rules = page.locator("textarea[name=rules]")
    assert "Libya" in rules.input_value()
    rules.fill("Haftar\nTripoli AND (Libya")
    page.click("button[value=preview]")
    expect(page.locator("ul.errors")).to_contain_text("rule 2, column 13")
    rules.fill("Haftar")
    page.click("button[value=preview]")
    preview = page.locator("section.preview")
    expect(preview).to_contain_text("Nothing is saved yet")
    expect(preview.locator("strong.dropped")).to_have_text("1")
    expect(preview.locator("ul.dropped")).to_contain_text("Markets calm in Benghazi")
    page.click("button[value=save]")
    expect(page.locator("p.ok")).to_have_text("Saved.")
    assert page.locator("textarea[name=rules]").input_value() == "Haftar"
    page.click("nav >> text=Audit log")
    entry = page.locator("tr.audit-entry").first
    expect(entry).to_contain_text("ann")
    expect(entry).to_contain_text("update watchlist libya")
    entry.locator("summary").click()
    expect(entry.locator("pre.diff .add")).to_contain_text(['"Haftar"'])


def test_an_analyst_has_no_edit_controls_and_a_forged_post_is_refused(
        console: Console, browser: Any) -> None:
    page = sign_in(browser, console, ANALYST)
    sync_api.expect(page.locator("ol.rules")).to_contain_text("Libya")
    assert page.locator("textarea").count() == 0
    assert page.locator("button[value=save]").count() == 0
    page.goto(f"{console.url}/feeds")
    assert page.locator("form[action='/feeds/add']").count() == 0
    assert page.get_by_role("button", name="Pause").count() == 0
    # the analyst's own session and CSRF token (from the sign-out form), forging an edit
    status = page.evaluate("""async () => {
        const csrf = document.querySelector("input[name=csrf]").value;
        const body = new URLSearchParams({csrf, new: "0", name: "libya", rules: "Libya",
                                          actors: "", action: "save"});
        const page = await fetch("/watchlists", {method: "POST", body});
        const api = await fetch("/api/watchlists/libya", {method: "PUT",
            headers: {"X-CSRF-Token": csrf, "Content-Type": "application/json"},
            body: JSON.stringify({rules: ["Anything"]})});
        return [page.status, api.status];
    }""")
    assert status == [403, 403]
    page.goto(f"{console.url}/audit")
    actors = page.locator("tr.audit-entry td:nth-child(2)").all_inner_texts()
    assert actors and set(actors) == {"config-file"}  # nothing by bob went through


def test_chromium_is_the_one_debian_ships() -> None:
    assert shutil.which("chromium") == str(CHROMIUM)

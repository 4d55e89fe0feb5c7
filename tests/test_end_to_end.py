"""The whole path as a user runs it: `monitor run --once` as a real process, feeds from a
real HTTP server, alerts into a real SMTP server, a real SQLite file."""

from __future__ import annotations

import json
import sqlite3

from conftest import Workspace
from servers import FeedServer, SmtpServer, rss

SEED_TITLE = "U.S. calls on Haftar to halt his offensive on Tripoli"


def seed_item(article: str) -> dict[str, str]:
    return {
        "title": SEED_TITLE,
        "link": "https://news.example.org/libya/haftar-tripoli",
        "guid": "https://news.example.org/libya/haftar-tripoli",
        "pubDate": "Sun, 29 Sep 2019 10:00:00 +0000",
        "description": article,
    }


DECOYS = [
    {"title": "Tripoli, Lebanon: protests fill Al-Nour square",
     "link": "https://news.example.org/lebanon/tripoli",
     "description": "Thousands gathered in Tripoli, Lebanon's second city, on Sunday "
                    "to protest against the government in Beirut."},
    {"title": "Berlin hosts conference on urban cycling",
     "link": "https://news.example.org/germany/cycling",
     "description": "Mayors from across Europe met at a conference in Berlin to compare "
                    "bicycle lanes and traffic calming."},
]


def test_seed_article_alerts_once_by_email_and_decoys_stay_quiet(
    workspace: Workspace, feed_server: FeedServer, smtp_server: SmtpServer, seed_article: str
) -> None:
    feed = feed_server.serve("/libya.xml", rss(seed_item(seed_article), *DECOYS,
                                               title="Desk wire"))
    workspace.write(feeds=[feed], channels=[("desk-email", smtp_server.url())])

    first = workspace.monitor("run", "--once")
    assert first.code == 0, first.err
    assert "3 new items, 1 matches" in first.out
    assert len(smtp_server.messages) == 1
    msg = smtp_server.messages[0]
    assert msg["Subject"] == f"[libya] {SEED_TITLE}"
    body = SmtpServer.text(msg)
    assert "Watchlist: libya" in body
    assert "Rule: Libya OR ليبيا" in body
    assert "Rule: @khalifa-haftar OR @lna OR @sarraj" in body
    assert "Matched: " in body and "Haftar" in body and "LNA" in body and "Sarraj" in body
    assert f"Feed: Desk wire <{feed}>" in body
    assert "Link: https://news.example.org/libya/haftar-tripoli" in body
    assert "Published: 2019-09-29 10:00 UTC" in body
    html = msg.get_body(preferencelist=("html",))
    assert html is not None  # e-mail is HTML, with apprise's plain-text part beside it
    # the snippet highlights the words that fired
    assert "<strong>Haftar Khalifa</strong>" in str(html.get_content())

    second = workspace.monitor("run", "--once")
    assert second.code == 0, second.err
    assert "0 new items" in second.out
    assert len(smtp_server.messages) == 1  # nothing more

    with sqlite3.connect(workspace.db) as db:
        assert db.execute("select count(*) from items").fetchone() == (3,)
        assert db.execute("select count(*) from matches").fetchone() == (1,)
        assert db.execute("select status, count(*) from outbox group by status").fetchall() == [
            ("sent", 1)]


def test_second_poll_is_conditional(workspace: Workspace, feed_server: FeedServer,
                                    seed_article: str) -> None:
    feed = feed_server.serve("/etag.xml", rss(seed_item(seed_article)), ETag='"v1"',
                             **{"Last-Modified": "Sun, 29 Sep 2019 10:00:00 GMT"})
    workspace.write(feeds=[feed])
    assert workspace.monitor("run", "--once").code == 0
    assert workspace.monitor("run", "--once").code == 0
    first, second = feed_server.hits("/etag.xml")
    assert "if-none-match" not in first.headers
    assert second.headers["if-none-match"] == '"v1"'
    assert second.headers["if-modified-since"] == "Sun, 29 Sep 2019 10:00:00 GMT"


def test_broken_feeds_beside_a_good_one(workspace: Workspace, feed_server: FeedServer,
                                        smtp_server: SmtpServer, seed_article: str) -> None:
    good = feed_server.serve("/good.xml", rss(seed_item(seed_article)))
    error = feed_server.serve("/error.xml", "oops", status=500, content_type="text/plain")
    html = feed_server.serve("/page.html", "<!DOCTYPE html><html><body>Hi</body></html>",
                             content_type="text/html")
    workspace.write(feeds=[error, html, good], channels=[("desk-email", smtp_server.url())])

    run = workspace.monitor("run", "--once")
    assert run.code == 0, run.err
    assert "polled 3 feeds (2 failed)" in run.out
    assert len(smtp_server.messages) == 1

    listing = workspace.monitor("feeds", "list", "--json")
    assert listing.code == 0, listing.err
    feeds = {f["url"]: f for f in json.loads(listing.out)}
    assert feeds[good]["status"] == "ok" and feeds[good]["last_error"] is None
    assert feeds[error]["last_error"] == "HTTP 500 Internal Server Error"
    assert feeds[error]["consecutive_failures"] == 1
    assert feeds[html]["last_error"] == "not a feed: the URL returned an HTML page"

    table = workspace.monitor("feeds", "list")
    assert "HTTP 500 Internal Server Error" in table.out


def test_failed_delivery_stays_pending_and_is_retried_without_duplicates(
    workspace: Workspace, feed_server: FeedServer, seed_article: str
) -> None:
    smtp = SmtpServer()  # not started yet: the channel is down
    feed = feed_server.serve("/libya.xml", rss(seed_item(seed_article)))
    workspace.write(feeds=[feed], channels=[("desk-email", smtp.url())])

    down = workspace.monitor("run", "--once")
    assert down.code == 0, down.err
    assert "1 failed" in down.out and "channel failed: desk-email" in down.out
    pending = json.loads(workspace.monitor("alerts", "list", "--json").out)
    assert [(a["channel"], a["attempts"]) for a in pending] == [("desk-email", 1)]
    assert "did not accept the alert" in pending[0]["last_error"]

    with smtp:
        up = workspace.monitor("run", "--once")
        assert up.code == 0, up.err
        assert "1 sent" in up.out
        again = workspace.monitor("run", "--once")
        assert "0 sent" in again.out
    assert len(smtp.messages) == 1
    assert json.loads(workspace.monitor("alerts", "list", "--json").out) == []


def test_channel_secret_never_reaches_output_or_database(
    workspace: Workspace, feed_server: FeedServer, seed_article: str
) -> None:
    secret = "s3cr3t-Pa55word"
    feed = feed_server.serve("/libya.xml", rss(seed_item(seed_article)))
    dead_port = SmtpServer().port
    url = (f"mailto://analyst:${{SMTP_PASS}}@127.0.0.1:{dead_port}"
           "?from=monitor@example.org&to=desk@example.org&mode=insecure")
    workspace.write(feeds=[feed], channels=[("desk-email", url)])
    env = {"SMTP_PASS": secret}

    outputs = [
        workspace.monitor("--verbose", "run", "--once", env=env),
        workspace.monitor("alerts", "list", env=env),
        workspace.monitor("test-alert", "desk-email", env=env),
        workspace.monitor("check", env=env),
    ]
    assert outputs[0].code == 0 and outputs[2].code == 1
    for out in outputs:
        assert secret not in out.out and secret not in out.err
    assert "****" in outputs[2].err  # apprise's privacy form names the channel
    assert secret.encode() not in workspace.db.read_bytes()
    missing = workspace.monitor("check")  # without the variable
    assert missing.code == 1
    assert "monitor.toml: channel[0].url: environment variable SMTP_PASS is not set" in missing.err

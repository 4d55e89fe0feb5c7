"""The adversarial corpus: each case is a body (a file beside this one, or built here
when it is large or binary), how the local server serves it, and what must come of it.

    entries   the poll succeeds and stores this many new items
    error     the poll fails and the feed's error contains this text
    matches   (with entries) this many of them match the Libya watchlist
    never     text that must appear in no stored field and no rendered alert
    heavy     slow or large: marked ``adversarial_heavy`` (``make test`` runs it)

Serving (``serve``): ``plain`` (status, headers, Content-Length), ``gzip``/``deflate``/
``raw-deflate`` (compressed on the fly), ``chunked`` (no Content-Length, connection
closed at the end), ``trickle`` (one byte a second), ``hang`` (never answers),
``endless`` (bytes until the client leaves), ``redirect`` (to ``location``).
Large bodies are generated, never committed.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASSWD = "root:x:0:0"  # what /etc/passwd would show if it were ever read
LOL = "lollollollol"


@dataclass(frozen=True)
class Case:
    name: str
    body: str | bytes | Callable[[], bytes] = b""
    """A file name in this folder (str ending in a known suffix), bytes, or a generator."""
    serve: str = "plain"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/rss+xml; charset=utf-8"
    location: str = ""
    """For ``redirect``: an absolute URL, or a path on the corpus server."""
    entries: int | None = None
    error: str | None = None
    matches: int | None = None
    never: tuple[str, ...] = ()
    heavy: bool = False
    also_requested: tuple[str, ...] = ()
    """Paths besides the case's own that the fetch may request (its redirect targets)."""

    def data(self) -> bytes:
        if callable(self.body):
            return self.body()
        if isinstance(self.body, str):
            return (HERE / self.body).read_bytes()
        return self.body


def rss(items: str, *, decl: str = '<?xml version="1.0" encoding="utf-8"?>',
        head: str = "") -> bytes:
    return (f'{decl}\n{head}<rss version="2.0"><channel><title>Corpus</title>'
            f"<link>http://example.org/</link><description>d</description>{items}"
            "</channel></rss>").encode()


def item(title: str = "Clashes near Tripoli airport", guid: str | None = "g1",
         description: str = "Fighting south of Tripoli.", extra: str = "") -> str:
    g = f"<guid>{guid}</guid>" if guid is not None else ""
    return (f"<item><title>{title}</title>{g}<link>http://example.org/{guid or 'x'}</link>"
            f"<description>{description}</description>{extra}</item>")


ONE = rss(item())


def _laughs() -> bytes:
    ents = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)]
    return rss(item(title="&lol9;"), head="<!DOCTYPE rss [\n" + "\n".join(ents) + "\n]>\n")


def _quadratic() -> bytes:
    return rss(item(description="&a;" * 100_000),
               head='<!DOCTYPE rss [\n<!ENTITY a "' + "A" * 50_000 + '">\n]>\n')


def _entity_utf16() -> bytes:
    text = rss(item(title="&x;"), decl='<?xml version="1.0" encoding="utf-16"?>',
               head='<!DOCTYPE rss [\n<!ENTITY x SYSTEM "file:///etc/passwd">\n]>\n').decode()
    return text.encode("utf-16")


@cache
def _bomb() -> bytes:
    """200 MB of zeros, gzipped to about 200 kB."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * 1_000_000
    return b"".join(z.compress(chunk) for _ in range(200)) + z.flush()


def _many(n: int) -> Callable[[], bytes]:
    def build() -> bytes:
        return rss("".join(item(title=f"Report {i} from Tripoli", guid=f"n{i}",
                                description=f"Item {i}.") for i in range(n)))
    return build


def _slow_author() -> bytes:
    return rss(item(extra="<author>" + "a" * 400_000 + "</author>"))


def _json(doc: object) -> bytes:
    return json.dumps(doc).encode()


JSONFEED = "https://jsonfeed.org/version/1.1"

CASES: list[Case] = [
    # ------------------------------------------------------------ entities, DOCTYPE
    Case("billion-laughs", _laughs, error="declares XML entities", never=(LOL,)),
    Case("quadratic-blowup", _quadratic, error="declares XML entities", never=("A" * 1000,)),
    Case("xxe-file", "xxe-file.xml", error="declares XML entities", never=(PASSWD,)),
    Case("xxe-parameter-entity", "xxe-parameter.xml", error="declares XML entities",
         never=(PASSWD,)),
    Case("xxe-http", "xxe-http.xml", error="declares XML entities"),
    Case("xxe-utf16", _entity_utf16, error="declares XML entities", never=(PASSWD,)),
    Case("xxe-atom", "xxe-atom.xml", error="declares XML entities", never=(PASSWD,)),
    Case("doctype-system-file", "doctype-system.xml", entries=1, matches=1, never=(PASSWD,)),
    Case("doctype-netscape-091", "rss091-netscape.xml", entries=1, matches=1),
    Case("xinclude", "xinclude.xml", entries=1, never=(PASSWD,)),
    # ------------------------------------------------------------ content encodings
    Case("gzip", ONE, serve="gzip", entries=1, matches=1),
    Case("deflate", ONE, serve="deflate", entries=1, matches=1),
    Case("raw-deflate", ONE, serve="raw-deflate", entries=1, matches=1),
    Case("gzip-bomb", _bomb, headers={"Content-Encoding": "gzip"},
         error="body larger than max_body_bytes"),
    Case("stacked-gzip", lambda: gzip.compress(gzip.compress(ONE)),
         headers={"Content-Encoding": "gzip, gzip"}, error="stacked content encodings"),
    Case("brotli-claimed", ONE, headers={"Content-Encoding": "br"},
         error="unsupported content encoding"),
    Case("gzip-corrupt", b"\x1f\x8b\x08\x00garbage-not-deflate" * 10,
         headers={"Content-Encoding": "gzip"}, error="could not decode"),
    Case("gzip-truncated", lambda: gzip.compress(_many(200)())[:2000],
         headers={"Content-Encoding": "gzip"}, error="compressed stream is truncated"),
    # ------------------------------------------------------------ size and time
    Case("declared-50mb", b"", serve="declared-50mb", error="body larger than max_body_bytes"),
    Case("streamed-50mb", b"", serve="streamed-50mb", error="body larger than max_body_bytes",
         heavy=True),
    Case("endless", b"", serve="endless", error="body larger than max_body_bytes"),
    Case("trickle", ONE, serve="trickle", error="timed out after"),
    Case("hang", b"", serve="hang", error="timed out after"),
    Case("slow-headers", b"", serve="slow-headers", error="timed out after"),
    # ------------------------------------------------------------ redirects
    Case("redirect-loop", serve="redirect", location="/redirect-loop",
         error="too many redirects"),
    Case("redirect-chain", serve="redirect", location="/redirect-chain-1",
         error="too many redirects", also_requested=tuple(f"/redirect-chain-{i}"
                                                           for i in range(1, 10))),
    Case("redirect-ok", serve="redirect", location="/gzip", entries=1, matches=1,
         also_requested=("/gzip",)),
    Case("redirect-private", serve="redirect", location="http://10.1.2.3/feed",
         error="private or reserved address"),
    Case("redirect-metadata", serve="redirect",
         location="http://169.254.169.254/latest/meta-data/", error="private or reserved"),
    Case("redirect-ipv6-loopback", serve="redirect", location="http://[::1]:9/feed",
         error="private or reserved"),
    Case("redirect-zero", serve="redirect", location="http://0.0.0.0:9/feed",
         error="private or reserved"),
    Case("redirect-file", serve="redirect", location="file:///etc/passwd",
         error="only http and https URLs are fetched", never=(PASSWD,)),
    # ------------------------------------------------------------ charsets
    Case("utf8-no-charset", rss(item(), decl=""), content_type="application/xml",
         entries=1, matches=1),
    Case("wrong-charset-header", rss(item(title="طرابلس: clashes")),
         content_type="application/rss+xml; charset=iso-8859-1", entries=1),
    Case("utf16-bom", lambda: rss(item(title="طرابلس Tripoli"),
                                   decl='<?xml version="1.0" encoding="utf-16"?>'
                                   ).decode().encode("utf-16"),
         content_type="application/rss+xml", entries=1, matches=1),
    Case("utf16-be-no-bom", lambda: rss(item(), decl='<?xml version="1.0" encoding="utf-16be"?>'
                                        ).decode().encode("utf-16-be"),
         content_type="application/rss+xml", entries=1, matches=1),
    Case("windows-1256", "windows-1256.xml", content_type="application/rss+xml",
         entries=1, matches=1),
    Case("windows-1256-undeclared", lambda: rss(item(title="اشتباكات في طرابلس"),
                                                 decl="").decode().encode("cp1256"),
         content_type="application/rss+xml", entries=1),
    Case("invalid-utf8", rss(item(title="Tripoli \xff\xfe bytes")).replace(
        "\xff\xfe".encode(), b"\xff\xfe"), entries=1, matches=1),
    Case("lone-surrogate-ref", rss(item(title="Tripoli &#xD800; &#xDFFF;")), entries=1),
    Case("nul-bytes", rss(item(title="Tripoli\0\0 nul")), entries=1),
    Case("nul-char-ref", rss(item(title="Tripoli &#0; &#x0;")), entries=1),
    Case("bom-and-space", b"\xef\xbb\xbf  \n" + ONE, entries=1, matches=1),
    # ------------------------------------------------------------ dates
    Case("date-year-10000", rss(item(extra="<pubDate>Sat, 01 Jan 10000 00:00:00 GMT</pubDate>")),
         entries=1),
    Case("date-no-timezone", rss(item(extra="<pubDate>2026-01-19 10:00:00</pubDate>")),
         entries=1),
    Case("date-far-future", rss(item(extra="<pubDate>Fri, 31 Dec 9999 23:59:59 GMT</pubDate>")),
         entries=1),
    Case("date-garbage", rss(item(extra="<pubDate>" + "99" * 500 + "</pubDate>")), entries=1),
    Case("atom-date-overflow", "atom-dates.xml", content_type="application/atom+xml",
         entries=2),
    # ------------------------------------------------------------ identity
    Case("duplicate-guids-within", rss(item(guid="same") * 3), entries=1),
    Case("duplicate-guids-across-a", rss(item(guid="shared")), entries=1),
    Case("duplicate-guids-across-b", rss(item(guid="shared")), entries=1),
    Case("no-guid-no-link", rss("<item><title>Tripoli one</title></item>"
                                "<item><title>Tripoli two</title></item>"
                                "<item><title>Tripoli one</title></item>"), entries=2),
    Case("blank-guid", rss(item(guid="   ") + item(guid="", title="Other Tripoli")), entries=2),
    Case("huge-guid", rss(item(guid="g" * 200_000)), entries=1),
    # ------------------------------------------------------------ not a feed
    Case("html-page", "page.html", content_type="text/html", error="returned an HTML page"),
    Case("html-advertising", "advertising.html", content_type="text/html",
         error="it advertises http://example.org/feed.xml"),
    Case("empty-body", b"", error="not a feed: empty body"),
    Case("whitespace-body", b" \r\n\t \n", error="not a feed"),
    Case("png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, content_type="image/png",
         error="not a feed"),
    Case("http-500", ONE, status=500, error="HTTP 500"),
    Case("http-429-retry-after", ONE, status=429, headers={"Retry-After": "99999999999999"},
         error="HTTP 429"),
    # ------------------------------------------------------------ JSON Feed
    Case("jsonfeed", "feed.json", content_type="application/feed+json", entries=2, matches=1),
    Case("json-not-jsonfeed", _json({"hello": "world"}), content_type="application/json",
         error="without a jsonfeed.org version"),
    Case("json-wrong-types", _json({"version": JSONFEED, "title": 5, "items": [
        {"id": 1, "title": ["Tripoli"], "content_text": {"x": 1}, "url": 7,
         "date_published": 12}, "not an item", None, {"id": None}]}),
         content_type="application/feed+json", entries=2),
    Case("json-deep-nesting", b"[" * 200_000 + b"]" * 200_000,
         content_type="application/json", error="JSON nested too deeply"),
    Case("json-huge-number", b'{"version": "' + JSONFEED.encode() + b'", "x": '
         + b"9" * 100_000 + b"}", content_type="application/json", error="unreadable JSON"),
    Case("json-invalid", b'{"version": ', content_type="application/json",
         error="invalid JSON"),
    # ------------------------------------------------------------ hostile text
    Case("script-in-title", "script.xml", entries=2, matches=2),
    Case("javascript-link", rss(item(guid=None).replace(
        "<link>http://example.org/x</link>", "<link>javascript:alert(document.cookie)</link>")),
         entries=1, matches=1),
    Case("slack-injection", "slack.xml", entries=1, matches=1),
    Case("crlf-title", rss(item(title="Tripoli&#13;&#10;Bcc: all@example.org&#13;&#10;X: y")),
         entries=1, matches=1),
    Case("very-long-title", rss(item(title="Tripoli " + "word " * 400_000)), entries=1,
         matches=1),
    Case("bidi-override", rss(item(title="Tripoli \u202egnp.exe\u202c")), entries=1, matches=1,
         never=("\u202e",)),
    Case("terminal-escape", rss(item(title="Tripoli &#x1b;[31mred&#x1b;[0m")), entries=1,
         matches=1),
    # ------------------------------------------------------------ scale and slow parsing
    Case("20000-items", _many(20_000), entries=1000, matches=1000, heavy=True),
    Case("author-regex", _slow_author, error="parsing took longer than", heavy=True),
    Case("unterminated-markup", rss(item(description="&lt;a " * 100_000)).replace(
        b"&lt;", b"<")[:-40], entries=1),
    Case("unclosed-comment", rss(item()).replace(b"<item>", b"<!-- <item>", 1), entries=0),
    Case("unterminated-cdata", rss(item(description="<![CDATA[ Tripoli " + "x" * 10_000)),
         entries=1),
    Case("deep-nesting", rss(item(description="<div>" * 50_000)), entries=1),
    Case("many-attributes", rss(item(extra="<x " + " ".join(f'a{i}="v"' for i in range(50_000))
                                     + "/>")), error="parsing took longer than", heavy=True),
    Case("charref-out-of-range", rss(item(title="Tripoli &#x110000; &#99999999999999999999;")),
         entries=1, matches=1),
]

"""Configuration: the settings file (TOML), the watchlists (YAML) and the feed list (OPML).

``load_config(path)`` reads all three and returns a validated ``Config``, or raises
``ConfigError`` listing every problem found, each with its file and field
(``monitor.toml: channel[0].url: environment variable SMTP_PASS is not set``).

Secrets: channel and database URLs may hold ``${NAME}``, expanded from the
environment. The expanded URL is kept in a ``SecretStr`` so it never shows in a repr,
a log line or an error message.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from . import __version__
from .errors import ConfigError, FeedError, Problem
from .match import EVERY, ActorSpec, AliasSpec, WatchlistSpec, compile_errors, slugify
from .opml import parse_opml

__all__ = [
    "EVERY",
    "ChannelSettings",
    "Config",
    "FeedSettings",
    "ParseSettings",
    "RetentionSettings",
    "Settings",
    "WebSettings",
    "WebSubSettings",
    "default_config_path",
    "dump_watchlists",
    "load_config",
    "parse_duration",
    "parse_watchlists",
    "watchlist_specs",
]

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """``"15m"``, ``"1h30m"``, ``"20s"``, ``"7d"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        pos, seconds = 0, 0.0
        for m in _DURATION_RE.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not text or pos != len(text):
            raise ValueError(f"{value!r} is not a duration; write e.g. '90s', '15m', '1h30m', '7d'")
    else:
        raise ValueError(f"{value!r} is not a duration; write e.g. '15m'")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.strip()


class FetchSettings(_Model):
    default_interval: Duration = timedelta(minutes=15)
    timeout: Duration = timedelta(seconds=20)
    max_body_bytes: int = Field(default=10_000_000, gt=0)
    concurrency: int = Field(default=50, ge=1, le=1000)
    user_agent: str = f"monitor/{__version__} (news-feed watch daemon)"
    allow_private_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    check_every: Duration = timedelta(seconds=5)
    """How often the daemon looks for feeds that are due and alerts to send."""
    per_host: int = Field(default=4, ge=1, le=100)
    """Requests at once to one host."""
    adaptive: bool = False
    """Follow each feed's publishing rate between adaptive_floor and adaptive_ceiling."""
    adaptive_floor: Duration = timedelta(minutes=5)
    adaptive_ceiling: Duration = timedelta(hours=6)


class ParseSettings(_Model):
    timeout: Duration = timedelta(seconds=30)
    """The longest one feed may take to parse; then its worker process is killed."""
    max_memory_bytes: int = Field(default=1_073_741_824, ge=64 * 1024 * 1024)
    """The address space of each parse worker (RLIMIT_AS)."""
    workers: int | None = Field(default=None, ge=1, le=64)
    """Parses at once, each in its own process; default: the CPUs, at most 4."""
    max_entries: int = Field(default=1000, ge=1, le=100_000)
    """Entries read of one feed (the first ones; feeds list the newest first)."""


class DatabaseSettings(_Model):
    url: SecretStr = SecretStr("sqlite:///var/monitor.db")
    lease: Duration = timedelta(minutes=5)
    """How long a worker's claim on a feed lasts: a worker that dies mid-poll leaves
    its feeds to the others after this. Must outlast ``[fetch] timeout``."""
    claim_batch: int = Field(default=0, ge=0, le=10_000)
    """Feeds claimed per tick at most (0: three times ``[fetch] concurrency``: a poll holds
    its claim until it is written, and the polls waiting on the parse workers and on
    the store must leave room for enough fetches to keep the parse workers busy)."""


class FeedSettings(_Model):
    url: str
    title: str | None = None
    interval: Duration | None = None
    adaptive: bool | None = None
    """Overrides ``[fetch] adaptive`` for this feed."""
    headers: dict[str, SecretStr] = {}
    """Extra request headers; values may hold ``${ENV}`` and are kept secret."""
    username: str | None = None
    password: SecretStr | None = None
    """Basic auth, with ``username``; may hold ``${ENV}``."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class AlertSettings(_Model):
    retry_after: Duration = timedelta(minutes=1)
    """First wait before a failed alert is sent again; doubles on each failure."""
    max_retry_after: Duration = timedelta(hours=1)
    max_attempts: int = Field(default=10, ge=1, le=1000)
    """Attempts before an alert becomes a dead letter (``monitor alerts retry``)."""
    story_window: Duration = timedelta(hours=48)
    """How far back an item may find the same story in another feed."""
    admin_channel: str | None = None
    """The channel told when a feed fails for longer than ``feed_failing_after``."""
    feed_failing_after: Duration = timedelta(hours=6)


_QUIET_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_CRON_RE = re.compile(r"^\S+(\s+\S+){4}$")
TEMPLATE_KINDS = ("subject", "text", "html", "slack")


class ChannelSettings(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    url: SecretStr
    watchlists: list[str] = []
    min_rules: int = Field(default=1, ge=1)
    """Only matches where at least this many of the watchlist's rules fired."""
    mode: Literal["instant", "digest"] = "instant"
    digest_schedule: str | None = None
    """Cron (minute hour day month weekday) at which a digest channel sends."""
    timezone: str = "UTC"
    max_per_hour: int | None = Field(default=None, ge=1)
    quiet_hours: str | None = None
    """``"HH:MM-HH:MM"`` in ``timezone``: alerts wait and go as one digest after."""
    timeout: Duration = timedelta(seconds=60)
    """The longest one message may take; then the attempt counts as failed."""
    concurrency: int = Field(default=1, ge=1, le=32)
    """Messages in flight at once on this channel (each in a thread of its own)."""
    templates: dict[str, str] = {}
    """Per format (subject, text, html, slack): a Jinja2 file replacing the default,
    relative to the settings file."""

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not a time zone; write e.g. 'Africa/Tripoli'") from exc
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet(cls, value: str | None) -> str | None:
        if value is not None and not _QUIET_RE.match(value.replace(" ", "")):
            raise ValueError(f"{value!r} is not a range of hours; write e.g. '22:00-07:00'")
        return None if value is None else value.replace(" ", "")

    @field_validator("digest_schedule")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is not None and not _CRON_RE.match(value.strip()):
            raise ValueError(f"{value!r} is not a cron schedule; write five fields, "
                             "e.g. '0 7 * * *' (minute hour day month weekday)")
        return None if value is None else value.strip()

    @field_validator("templates")
    @classmethod
    def _check_templates(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(TEMPLATE_KINDS))
        if unknown:
            raise ValueError(f"unknown template {', '.join(unknown)}; "
                             f"the formats are {', '.join(TEMPLATE_KINDS)}")
        return value

    @model_validator(mode="after")
    def _digest_needs_schedule(self) -> ChannelSettings:
        if self.mode == "digest" and not self.digest_schedule:
            raise ValueError("mode = \"digest\" needs a digest_schedule, e.g. \"0 7 * * *\"")
        return self


def _listen(value: str) -> str:
    host, sep, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not 0 < number < 65536:
        raise ValueError(f"{value!r} is not an address and port; write e.g. '127.0.0.1:9180'")
    return value.strip()


class WebSettings(_Model):
    listen: str | None = None
    """``host:port`` for /metrics and /healthz; None (the default) serves nothing."""
    max_pending_alerts: int = Field(default=1000, ge=1)
    """/healthz fails while more alerts than this wait in the outbox."""
    console: str | None = None
    """``host:port`` for the web console and its JSON API (docs/web.md); None (the
    default): the daemon serves no console."""
    session_lifetime: Duration = timedelta(hours=12)
    """How long a console sign-in lasts."""
    secure_cookie: bool = False
    """Mark the session cookie Secure: set it when the console is behind HTTPS."""

    @field_validator("listen", "console")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        return None if value is None else _listen(value)

    @property
    def address(self) -> tuple[str, int] | None:
        return _host_port(self.listen)

    @property
    def console_address(self) -> tuple[str, int] | None:
        return _host_port(self.console)


def _host_port(listen: str | None) -> tuple[str, int] | None:
    if listen is None:
        return None
    host, _, port = listen.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


class WebSubSettings(_Model):
    enabled: bool = False
    """Subscribe to the hubs feeds advertise (WebSub); needs [web] listen."""
    callback_base: str | None = None
    """How hubs reach [web] listen, e.g. "https://monitor.example.org" behind a proxy."""
    lease: Duration = timedelta(days=7)
    """The lease asked of hubs (hub.lease_seconds); renewed before it ends."""

    @field_validator("callback_base")
    @classmethod
    def _check_base(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value).rstrip("/")


class RetentionSettings(_Model):
    items: Duration = timedelta(days=30)
    """Unmatched items are deleted this long after a feed last served them."""
    matched_items: Duration = timedelta(days=365)
    """Matched items, their matches and sent alerts are kept this long."""


class Settings(_Model):
    watchlists: str = "watchlists.yaml"
    feeds: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    database: DatabaseSettings = DatabaseSettings()
    fetch: FetchSettings = FetchSettings()
    parse: ParseSettings = ParseSettings()
    alerts: AlertSettings = AlertSettings()
    web: WebSettings = WebSettings()
    websub: WebSubSettings = WebSubSettings()
    retention: RetentionSettings = RetentionSettings()
    feed: list[FeedSettings] = []
    channel: list[ChannelSettings] = []

    @model_validator(mode="after")
    def _lease_outlasts_a_fetch(self) -> Settings:
        if self.database.lease <= self.fetch.timeout:
            raise ValueError(
                f"database.lease ({self.database.lease}) must be longer than fetch.timeout "
                f"({self.fetch.timeout}): a claim must outlast the poll it covers")
        return self

    @model_validator(mode="after")
    def _websub_needs_web(self) -> Settings:
        if self.websub.enabled and not (self.websub.callback_base and self.web.listen):
            raise ValueError("websub.enabled needs websub.callback_base (how hubs reach "
                             "this daemon) and web.listen (where it answers them)")
        return self


# ---------------------------------------------------------------- watchlists file


class _AliasModel(_Model):
    text: str = Field(min_length=1)
    case_sensitive: bool = False


class _ActorModel(_Model):
    name: str = Field(min_length=1)
    slug: str | None = Field(default=None, pattern=r"^[\w-]+$")
    aliases: list[str | _AliasModel] = []


class _WatchlistModel(_Model):
    name: str = Field(pattern=r"^[\w.-]+$")
    description: str = ""
    actors: list[_ActorModel] = []
    rules: list[str] = Field(min_length=1)


class _WatchlistsFile(_Model):
    watchlists: list[_WatchlistModel] = Field(min_length=1)


@dataclass(frozen=True)
class Config:
    """Everything the daemon needs from the configuration files, validated."""

    path: Path
    settings: Settings
    feeds: tuple[FeedSettings, ...]
    watchlists: tuple[WatchlistSpec, ...]
    templates: dict[str, dict[str, str]] = field(default_factory=dict)
    """channel name -> format -> the text of its own template."""

    @property
    def channels(self) -> list[ChannelSettings]:
        return self.settings.channel

    def interval(self, feed: FeedSettings) -> timedelta:
        return feed.interval or self.settings.fetch.default_interval


def default_config_path() -> Path:
    return Path(os.environ.get("MONITOR_CONFIG", "config/monitor.toml"))


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the settings file and the files it names. Raises ConfigError."""
    path = Path(path)
    settings = _load_settings(path)
    problems: list[Problem] = []
    base = path.parent
    specs: tuple[WatchlistSpec, ...] = ()
    try:
        specs = load_watchlists(base / settings.watchlists)
    except ConfigError as exc:
        problems += exc.problems
    feeds = list(settings.feed)
    if settings.feeds:
        try:
            feeds += load_opml(base / settings.feeds)
        except ConfigError as exc:
            problems += exc.problems
    names = {w.name for w in specs}
    for i, ch in enumerate(settings.channel):
        for j, wl in enumerate(ch.watchlists):
            if specs and wl not in names and wl != EVERY:
                problems.append(Problem(
                    path.name, f"channel[{i}].watchlists[{j}]",
                    f"no watchlist named {wl!r} in {settings.watchlists} "
                    f"(there: {', '.join(sorted(names))})",
                ))
    admin = settings.alerts.admin_channel
    if admin is not None and admin not in {c.name for c in settings.channel}:
        problems.append(Problem(path.name, "alerts.admin_channel",
                                f"no channel named {admin!r} (define it with [[channel]])"))
    seen: dict[str, int] = {}
    for i, ch in enumerate(settings.channel):
        if ch.name in seen:
            problems.append(Problem(path.name, f"channel[{i}].name",
                                    f"channel name {ch.name!r} is used twice"))
        seen.setdefault(ch.name, i)
    templates: dict[str, dict[str, str]] = {}
    for i, ch in enumerate(settings.channel):
        for kind, rel in ch.templates.items():
            try:
                text = (base / rel).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem(path.name, f"channel[{i}].templates.{kind}",
                                        f"cannot read {rel}: {exc}"))
                continue
            templates.setdefault(ch.name, {})[kind] = text
    if problems:
        raise ConfigError(problems)
    return Config(path, settings, tuple(_dedup_feeds(feeds)), specs, templates)


def _dedup_feeds(feeds: list[FeedSettings]) -> list[FeedSettings]:
    by_url: dict[str, FeedSettings] = {}
    for f in feeds:
        by_url.setdefault(f.url, f)  # [[feed]] tables come first and win over OPML
    return list(by_url.values())


def _load_settings(path: Path) -> Settings:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError([Problem(str(path), "", "no such file")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(path.name, "", f"not valid TOML: {exc}")]) from exc
    problems = _expand_secrets(raw, path.name)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems += _problems(exc, path.name)
        raise ConfigError(problems) from exc
    if problems:
        raise ConfigError(problems)
    return settings


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_secrets(raw: dict[str, Any], file: str) -> list[Problem]:
    """Expand ``${NAME}`` in channel URLs and the database URL, in place."""
    places: list[tuple[dict[str, Any], str, str]] = []
    if isinstance(raw.get("database"), dict):
        places.append((raw["database"], "url", "database.url"))
    channels = raw.get("channel")
    if isinstance(channels, list):
        places += [(c, "url", f"channel[{i}].url") for i, c in enumerate(channels)
                   if isinstance(c, dict)]
    feeds = raw.get("feed")
    for i, f in enumerate(feeds if isinstance(feeds, list) else []):
        if not isinstance(f, dict):
            continue
        places.append((f, "password", f"feed[{i}].password"))
        if isinstance(f.get("headers"), dict):
            places += [(f["headers"], k, f"feed[{i}].headers.{k}") for k in f["headers"]]
    problems = []
    for table, key, where in places:
        value = table.get(key)
        if not isinstance(value, str):
            continue
        missing = [n for n in _ENV_RE.findall(value) if n not in os.environ]
        if missing:
            problems.append(Problem(file, where, "environment variable "
                                    f"{', '.join(missing)} is not set"))
            table[key] = ""  # keep validating the rest of the file
        else:
            table[key] = _ENV_RE.sub(lambda m: os.environ[m.group(1)], value)
    return problems


def _problems(exc: ValidationError, file: str) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ""
        for part in err["loc"]:
            if isinstance(part, int):
                where += f"[{part}]"
            elif part in ("str", "_AliasModel"):
                continue  # pydantic's name for a union branch, not a place in the file
            else:
                where += f".{part}" if where else str(part)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling)"
        out.append(Problem(file, where, message))
    return out


def load_watchlists(path: Path) -> tuple[WatchlistSpec, ...]:
    """Read and check the watchlists file: structure, actors, and every rule."""
    try:
        text = _read_capped(path)
    except FileNotFoundError as exc:
        raise ConfigError([Problem(str(path), "", "no such file")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc}")]) from exc
    return parse_watchlists(text, path.name)


def parse_watchlists(text: str, file: str) -> tuple[WatchlistSpec, ...]:
    """Check watchlists given as YAML text in the watchlists.yaml format (``file``
    names it in errors): structure, actors, and every rule. Raises ConfigError."""
    try:
        _refuse_yaml_bombs(text, file)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(file, where, f"not valid YAML: {reason}")]) from exc
    return watchlist_specs(raw, file)


def dump_watchlists(definitions: list[dict[str, Any]]) -> str:
    """Watchlist definitions as the text of a watchlists.yaml file."""
    return yaml.safe_dump({"watchlists": definitions}, sort_keys=False, allow_unicode=True,
                          width=100, default_flow_style=False)


def watchlist_specs(raw: Any, file: str) -> tuple[WatchlistSpec, ...]:
    """Check watchlists given as data (``{"watchlists": [definition, ...]}``)."""
    try:
        model = _WatchlistsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, file)) from exc
    specs, problems = [], []
    seen: set[str] = set()
    for i, wl in enumerate(model.watchlists):
        if wl.name in seen:
            problems.append(Problem(file, f"watchlists[{i}].name",
                                    f"watchlist name {wl.name!r} is used twice"))
        seen.add(wl.name)
        spec = WatchlistSpec(
            name=wl.name,
            description=wl.description,
            rules=tuple(wl.rules),
            actors=tuple(
                ActorSpec(
                    a.name,
                    a.slug or slugify(a.name),
                    tuple(AliasSpec(al) if isinstance(al, str)
                          else AliasSpec(al.text, al.case_sensitive) for al in a.aliases),
                )
                for a in wl.actors
            ),
        )
        problems += [Problem(file, f"watchlists[{i}].{e.where}", str(e))
                     for e in compile_errors(spec)]
        specs.append(spec)
    if problems:
        raise ConfigError(problems)
    return tuple(specs)


MAX_FILE_BYTES = 5_000_000
"""The largest watchlists or OPML file read: far past any real one."""
MAX_YAML_ALIASES = 100
"""YAML aliases (``*name``) allowed in the watchlists: PyYAML's safe_load shares aliased
nodes, so ten nested lines of twelve aliases stand for 62 trillion strings (the "billion
laughs" of YAML), and whatever walks the result (validation, compiling, storing the
definition) pays for every one."""


def _read_capped(path: Path) -> str:
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError([Problem(path.name, "", f"larger than {MAX_FILE_BYTES:,} bytes; "
                                   "refused")])
    return data.decode("utf-8")


def _refuse_yaml_bombs(text: str, file: str) -> None:
    aliases = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, yaml.AliasToken):
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                mark = token.start_mark
                raise ConfigError([Problem(
                    file, f"line {mark.line + 1}, column {mark.column + 1}",
                    f"more than {MAX_YAML_ALIASES} YAML aliases (*name); refused, since "
                    "aliases can expand a small file into billions of items")])


def load_opml(path: Path) -> list[FeedSettings]:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError([Problem(path.name, "", f"larger than {MAX_FILE_BYTES:,} bytes; "
                                       "refused")])
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc.strerror}")]) from exc
    try:
        entries = parse_opml(data)
    except FeedError as exc:
        raise ConfigError([Problem(path.name, "", str(exc))]) from exc
    feeds, problems = [], []
    for i, entry in enumerate(entries):
        try:
            feeds.append(FeedSettings(url=entry.url, title=entry.title))
        except ValidationError as exc:
            problems += [Problem(path.name, f"outline[{i}] ({entry.title or entry.url})", p.message)
                         for p in _problems(exc, path.name)]
    if problems:
        raise ConfigError(problems)
    return feeds

"""What the pages show, computed from data: highlighted snippets, feed health, audit
diffs, and the watchlist editor's text form. Pure: no I/O, no clock."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..feed_health import feed_status
from ..match import WatchlistSpec, compile_errors
from ..match.watchlist import ActorSpec, AliasSpec, slugify

__all__ = [
    "EditorError",
    "actors_text",
    "audit_diff",
    "definition_from_form",
    "editor_errors",
    "feed_status",
    "segments",
    "spec_of",
]


def segments(text: str, marks: Sequence[Sequence[int]]) -> list[tuple[str, bool]]:
    """``text`` cut at the stored ``marks``: (piece, highlighted). The template escapes
    each piece and wraps the highlighted ones in <mark>."""
    out, last = [], 0
    for start, end in sorted((int(a), int(b)) for a, b in marks):
        if start < last or start > len(text):
            continue
        out += [(text[last:start], False), (text[start:end], True)]
        last = end
    out.append((text[last:], False))
    return [(t, m) for t, m in out if t]


def audit_diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """A unified diff of the two states as sorted, indented JSON."""
    def lines(value: dict[str, Any] | None) -> list[str]:
        if value is None:
            return []
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    return list(difflib.unified_diff(lines(before), lines(after), "before", "after",
                                     lineterm="", n=2))


# ------------------------------------------------------------ the watchlist editor
#
# Rules: one per line (blank lines are skipped, so "rule N" counts rules). Actors: one
# per line, ``Name | alias | alias``; an alias written ``=LNA`` matches case-sensitively;
# a line may start with ``@slug`` to give the actor a slug other than the one made from
# its name.

_SLUG = re.compile(r"^@([\w-]+)\s+")


def actors_text(actors: Sequence[dict[str, Any]]) -> str:
    lines = []
    for a in actors:
        parts = [str(a["name"])]
        slug = a.get("slug")
        prefix = f"@{slug} " if slug and slug != slugify(str(a["name"])) else ""
        for al in a.get("aliases", ()):
            if isinstance(al, dict):
                parts.append(("=" if al.get("case_sensitive") else "") + str(al["text"]))
            else:
                parts.append(str(al))
        lines.append(prefix + " | ".join(parts))
    return "\n".join(lines)


def rules_text(rules: Sequence[str]) -> str:
    return "\n".join(rules)


def definition_from_form(name: str, description: str, rules: str,
                         actors: str) -> dict[str, Any]:
    """The watchlists.yaml entry the editor's fields describe."""
    parsed_rules = [line.strip() for line in rules.splitlines() if line.strip()]
    parsed_actors: list[dict[str, Any]] = []
    for line in actors.splitlines():
        line = line.strip()
        if not line:
            continue
        slug = None
        m = _SLUG.match(line)
        if m:
            slug, line = m.group(1), line[m.end():]
        name_part, *aliases = [p.strip() for p in line.split("|")]
        actor: dict[str, Any] = {"name": name_part, "aliases": [
            {"text": al[1:], "case_sensitive": True} if al.startswith("=") else al
            for al in aliases if al and al != "="]}
        if slug:
            actor["slug"] = slug
        parsed_actors.append(actor)
    definition: dict[str, Any] = {"name": name.strip(), "actors": parsed_actors,
                                  "rules": parsed_rules}
    if description.strip():
        definition["description"] = description.strip()
    return definition


def spec_of(definition: dict[str, Any]) -> WatchlistSpec:
    """A definition (watchlists.yaml's form, or the stored one) as a WatchlistSpec."""
    actors = []
    for a in definition.get("actors", ()):
        aliases = tuple(AliasSpec(al) if isinstance(al, str)
                        else AliasSpec(al["text"], bool(al.get("case_sensitive", False)))
                        for al in a.get("aliases", ()))
        actors.append(ActorSpec(a["name"], a.get("slug") or slugify(a["name"]), aliases))
    rules = tuple(str(r) for r in definition.get("rules", ()))
    return WatchlistSpec(name=definition["name"], rules=rules,
                         description=definition.get("description", ""), actors=tuple(actors))


@dataclass(frozen=True)
class EditorError:
    """A problem with the edited watchlist: the box it is in (``rules``, ``actors`` or
    ``""``), the line in that box (1-based, or None), the column (1-based, or None),
    and why."""

    box: str
    line: int | None
    column: int | None
    message: str


_AT = re.compile(r"^(rules|actors)\[(\d+)\]")


def editor_errors(definition: dict[str, Any]) -> list[EditorError]:
    """Every rule and actor error of the edited watchlist, with line and column."""
    try:
        spec = spec_of(definition)
    except (KeyError, TypeError, AttributeError) as exc:
        return [EditorError("", None, None, f"malformed watchlist: {exc}")]
    out = []
    for e in compile_errors(spec):
        m = _AT.match(e.where)
        if m is None:
            out.append(EditorError("rules" if e.where == "rules" else "", None, None, e.reason))
        else:
            rule = m.group(1) == "rules"
            out.append(EditorError(m.group(1), int(m.group(2)) + 1,
                                   e.column if rule else None,
                                   e.reason if rule else f"{e.where}: {e.reason}"))
    return out

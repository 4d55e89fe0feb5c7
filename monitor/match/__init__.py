"""Matching: the query language, actors and aliases, compiled watchlists, snippets."""

from .engine import Document, evaluate
from .highlight import Snippet, snippet
from .matcher import Matcher, compile_matcher
from .query import parse
from .watchlist import (
    EVERY,
    ActorSpec,
    AliasSpec,
    RuleHit,
    TermHit,
    Watchlist,
    WatchlistError,
    WatchlistMatch,
    WatchlistSpec,
    compile_errors,
    compile_watchlist,
    slugify,
)

__all__ = [
    "EVERY",
    "ActorSpec",
    "AliasSpec",
    "Document",
    "Matcher",
    "RuleHit",
    "Snippet",
    "TermHit",
    "Watchlist",
    "WatchlistError",
    "WatchlistMatch",
    "WatchlistSpec",
    "compile_errors",
    "compile_matcher",
    "compile_watchlist",
    "evaluate",
    "parse",
    "slugify",
    "snippet",
]

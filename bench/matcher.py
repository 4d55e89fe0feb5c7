"""Items per second, normalization included, for 10, 1,000 and 10,000 rules.

    python -m bench.matcher [--items N] [--rules 10,1000,10000] [--budget SECONDS]

For each rule count, in the same run and on the same items:

- ``matcher``: ``Document.of`` (clean, fold, words), ``Matcher.match`` and a snippet per
  match — what the poller does for every new item; the Aho-Corasick prefilter picks the
  candidate rules;
- ``plain``: ``Document.of`` and ``Watchlist.match`` on every watchlist, every rule
  evaluated (the path without the prefilter);
- ``naive``: one regular expression per rule (its words, case-insensitive) searched in
  the raw text, the loop a first version would write.

``candidates`` is the mean number of rules the prefilter selects per item, ``matched``
the share of items that match at least one rule; the last two columns are the
matcher's items/s on the items for which the prefilter selects no rule (``quiet``) and
on the items that match (each reports its rules, words, offsets and a snippet).

Rates are items per second of this process's CPU time (``time.process_time``), so
other work on the machine counts less against them. The normalization and matcher
rates are the best of ``--passes`` passes over the items (a pass is a fraction of a
second, and one disturbed by the rest of the machine would otherwise be the figure).
Slow paths make one pass, stopped after ``--budget`` CPU seconds, and report the rate
over the items done.
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from collections.abc import Callable, Sequence

from monitor.match import Document, Matcher, WatchlistSpec, compile_watchlist, snippet
from monitor.match.watchlist import Watchlist

from .item_corpus import Item, items, rules

_TERM_RE = re.compile(r'"[^"]*"|[^\s()"]+')
_OPERATORS = {"AND", "OR", "NOT"}


def _watchlists(rule_texts: Sequence[str], per_list: int = 100) -> list[Watchlist]:
    return [compile_watchlist(WatchlistSpec(f"w{i}", tuple(rule_texts[i : i + per_list])))
            for i in range(0, len(rule_texts), per_list)]


def _naive_regex(rule: str) -> re.Pattern[str]:
    terms = []
    for t in _TERM_RE.findall(rule):
        if t in _OPERATORS or "NEAR/" in t:
            continue
        t = t.split(":", 1)[-1].strip('"')
        terms.append(re.escape(t[:-1]) + r"\w*" if t.endswith("*") else re.escape(t))
    return re.compile(r"\b(?:" + "|".join(terms) + r")\b", re.IGNORECASE)


def _rate(step: Callable[[Item], object], corpus: Sequence[Item], budget: float) -> float:
    start = time.process_time()
    done = 0
    for item in corpus:
        step(item)
        done += 1
        if done >= 3 and time.process_time() - start > budget:
            break
    return done / (time.process_time() - start)


def _best_rate(step: Callable[[Item], object], corpus: Sequence[Item], budget: float,
               passes: int) -> float:
    return max(_rate(step, corpus, budget) for _ in range(passes))


def _doc(item: Item) -> Document:
    return Document.of(title=item.title, summary=item.summary, content=item.content)


def _measure(n: int, corpus: Sequence[Item], budget: float, passes: int) -> str:
    texts = rules(n)
    watchlists = _watchlists(texts)
    matcher = Matcher.of(watchlists)
    sample = corpus[:1000]
    matched = sum(bool(matcher.match(_doc(i))) for i in sample) / len(sample)
    candidates = sum(len(matcher.candidates(_doc(i))) for i in sample) / len(sample)

    def fast_step(i: Item) -> None:
        doc = _doc(i)
        for m in matcher.match(doc):
            snippet(doc, m.terms)

    fast = _best_rate(fast_step, corpus, budget, passes)
    quiet = [i for i in sample if not matcher.candidates(_doc(i))]
    loud = [i for i in sample if matcher.match(_doc(i))]
    split = "  ".join(f"{_best_rate(fast_step, part, budget, passes):>7,.0f}" if part
                      else f"{'-':>7}" for part in (quiet, loud))

    def plain_step(i: Item) -> None:
        doc = _doc(i)
        for wl in watchlists:
            wl.match(doc)

    plain = _rate(plain_step, corpus, budget)
    regexes = [_naive_regex(t) for t in texts]

    def naive_step(i: Item) -> None:
        text = "\n".join((i.title, i.summary, i.content))
        for rx in regexes:
            rx.search(text)

    naive = _rate(naive_step, corpus, budget)
    return (f"{n:>7,}  {fast:>8,.0f} it/s  {plain:>8,.0f} it/s  {naive:>8,.0f} it/s  "
            f"{candidates:>10.2f}  {matched:>7.1%}  {split}")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.matcher", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--rules", default="10,1000,10000")
    p.add_argument("--budget", type=float, default=10.0, help="CPU seconds per slow path")
    p.add_argument("--passes", type=int, default=3,
                   help="passes of the matcher and normalization, the best reported")
    args = p.parse_args(argv)
    corpus = items(args.items)
    chars = sum(len(i.title) + len(i.summary) + len(i.content) for i in corpus) / len(corpus)
    print(f"{len(corpus)} items of {chars:.0f} chars; Python {platform.python_version()}, "
          f"{platform.machine()}, one core, CPU time")
    for item in corpus:  # warm the word memo, as a running daemon has
        _doc(item).fields["content"].scan  # noqa: B018 (computed for its side effect)
    norm = _best_rate(lambda i: [ft.scan for ft in _doc(i).fields.values()], corpus,
                      args.budget, args.passes)
    print(f"normalization alone (clean, fold, words): {norm:,.0f} items/s")
    print(f"{'rules':>7}  {'matcher':>13}  {'plain':>13}  {'naive regex':>13}  "
          f"{'candidates':>10}  {'matched':>7}  {'quiet':>7}  {'matched':>7}")
    for n in (int(x) for x in args.rules.split(",")):
        print(_measure(n, corpus, args.budget, args.passes), flush=True)


if __name__ == "__main__":
    main()

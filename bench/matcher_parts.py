"""Where an item's time goes in the matcher, part by part, per item.

    python -m bench.matcher_parts [--items N]

The parts ``bench.matcher`` adds up: ``clean``, ``Document.of``, the scan strings, the
Aho-Corasick scan with 10 and with 10,000 rules, and a matched item's whole step. CPU
time (``time.process_time``), best of seven passes, so a busy machine counts less.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from monitor.match import Matcher, snippet
from monitor.text import clean

from .item_corpus import Item, items, rules
from .matcher import _doc, _watchlists


def _best(step: Callable[[], object], n: int, reps: int = 7) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.process_time()
        step()
        best = min(best, time.process_time() - start)
    return best / n * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.matcher_parts", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=2_000)
    args = p.parse_args(argv)
    corpus = items(args.items)
    matchers = {n: Matcher.of(_watchlists(rules(n))) for n in (10, 10_000)}
    big = matchers[10_000]
    docs = [_doc(i) for i in corpus]
    for doc in docs:  # the scan strings, computed once
        for ft in doc.fields.values():
            ft.padded_bytes  # noqa: B018 (computed for its side effect)
    loud = [i for i in corpus if big.match(_doc(i))]
    n = len(corpus)

    def fields(i: Item) -> tuple[str, str, str]:
        return i.title, i.summary, i.content

    def matched() -> None:
        for i in loud:
            doc = _doc(i)
            for m in big.match(doc):
                snippet(doc, m.terms)

    print(f"{n} items; µs per item, CPU time, best of 7")
    parts: dict[str, Callable[[], object]] = {
        "clean, three fields": lambda: [list(map(clean, fields(i))) for i in corpus],
        "Document.of": lambda: [_doc(i) for i in corpus],
        "Document.of and scan strings":
            lambda: [[f.padded_bytes for f in _doc(i).fields.values()] for i in corpus],
    }
    for label, step in parts.items():
        print(f"  {label:<30} {_best(step, n):6.1f}")
    for rule_count, matcher in matchers.items():
        cost = _best(lambda m=matcher: [m.candidates(doc) for doc in docs], n)
        print(f"  {f'prefilter scan, {rule_count:,} rules':<30} {cost:6.1f}")
    print(f"  {'a matched item, whole step':<30} {_best(matched, len(loud)):6.1f}"
          f"  ({len(loud)} of {n} items match at 10,000 rules)")


if __name__ == "__main__":
    main()

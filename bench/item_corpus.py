"""A seeded synthetic corpus: news-like items of about 2,000 characters, and rules.

Items are mostly common words (Zipf-distributed) with a few capitalised names, accents,
typographic apostrophes and possessives; rules name those entities with every operator,
so some items match a few rules and most rules match nothing, as in a real watch.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

__all__ = ["Item", "items", "rules"]

_ACCENTED = "éèàçüöñ"


@dataclass(frozen=True)
class Item:
    title: str
    summary: str
    content: str


def _word(rng: random.Random, lo: int, hi: int) -> str:
    letters = string.ascii_lowercase + _ACCENTED * (rng.random() < 0.05)
    return "".join(rng.choice(letters) for _ in range(rng.randint(lo, hi)))


class _Vocabulary:
    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.common = [_word(rng, 1, 9) for _ in range(5_000)]
        self.weights = [1 / (i + 1) for i in range(len(self.common))]
        self.names = sorted({_word(rng, 5, 10).capitalize() for _ in range(100_000)})


def items(n: int, seed: int = 1, chars: int = 2_000) -> list[Item]:
    vocab = _Vocabulary(0)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choices(vocab.common, vocab.weights, k=chars // 5)
        for _ in range(4):  # a few names, some possessive
            name = rng.choice(vocab.names) + ("’s" if rng.random() < 0.2 else "")
            words[rng.randrange(len(words))] = name
        for i in range(0, len(words), rng.randint(10, 20)):
            words[i] += rng.choice([",", ".", ".", ";"])
        text = " ".join(words)[:chars]
        title = text[:70].rsplit(" ", 1)[0].capitalize()
        # Stripped, as html_to_text leaves every stored field.
        out.append(Item(title.strip(), text[70:300].strip(), text[300:].strip()))
    return out


def rules(n: int, seed: int = 2) -> list[str]:
    vocab = _Vocabulary(0)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.sample(vocab.names, 2)
        shape = rng.randrange(8)
        out.append([
            a,
            f'"{a} {b}"',
            f"{a} AND {b}",
            f"{a} OR {b}",
            f"{a} NEAR/5 {b}",
            f"{a} AND NOT {b}",
            f"{a[:5]}*",
            f"title:{a} OR {b}",
        ][shape])
    return out

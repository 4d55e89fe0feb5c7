"""Item identity and stories. Pure.

An item is stored once per feed. Its identity is its guid, else its link, else a hash
of its content; the stored key is a SHA-256 of that, so keys have one length.

Wire copy is syndicated: the same story reaches many feeds with the same or a lightly
edited title and body. Two items are the same story when, within a window, their
normalized titles are equal, or the 64-bit SimHashes of their bodies (three-word
shingles) differ in at most ``MAX_DISTANCE`` bits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import accumulate

from .match.scan import scan_keys
from .parse import Entry
from .text import clean

__all__ = [
    "MAX_DISTANCE",
    "StoryCandidate",
    "StoryIndex",
    "StoryKeys",
    "content_hash",
    "hamming",
    "identity",
    "simhash",
    "story_keys",
    "title_key",
]

MAX_DISTANCE = 10
"""Bits two SimHashes may differ by and still be the same story. News bodies are short:
a lightly edited wire copy differs by 2-8 bits, unrelated texts by about 32 (±4)."""
_MIN_WORDS = 8
"""Texts shorter than this are too short for the SimHash to mean anything."""


def content_hash(entry: Entry) -> str:
    """A hash of what a reader sees: title, summary and content."""
    h = hashlib.sha256()
    for part in (entry.title, entry.summary, entry.content):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def identity(entry: Entry) -> str:
    """The key an item is known by within its feed."""
    if entry.guid:
        basis = "guid:" + entry.guid
    elif entry.link:
        basis = "link:" + entry.link
    else:
        basis = "hash:" + content_hash(entry)
    return hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()


def _words(text: str) -> list[str]:
    """The folded keys of the words of ``text`` (``tokenize``'s, read as the matcher
    reads them: a key holds no space)."""
    keys = scan_keys(clean(text))
    return keys.split(" ") if keys else []


def title_key(title: str) -> str | None:
    """The title folded to its words (case, accents, punctuation ignored), hashed; None
    for a title too short to identify a story (``Update``, ``Breaking news``)."""
    words = _words(title)
    if len(words) < 4:
        return None
    return hashlib.sha256(" ".join(words).encode("utf-8", "surrogatepass")).hexdigest()


def simhash(text: str, shingle: int = 3) -> str | None:
    """A 64-bit SimHash of the word shingles of ``text``, as 16 hex digits; None for a
    text too short to compare.

    Bit ``b`` is set when more than half the shingles' BLAKE2b-64 hashes (big-endian)
    have it set. The hashes are computed and counted in C: the shingles' digests are
    laid end to end, and each bit's count is read from the column of its byte (a
    strided slice) through a translation table, not shingle by shingle in Python."""
    words = _words(text)
    if len(words) < _MIN_WORDS:
        return None
    # Each shingle is a slice of the words joined by spaces, encoded once: its bytes
    # run from the start of its first word to the end of its last.
    joined = " ".join(words).encode("utf-8", "surrogatepass")
    starts = [0, *accumulate(map((1).__add__, map(len, joined.split(b" "))))]
    blank = _BLAKE2B_64()
    hashes = []
    for start, stop in zip(starts, starts[shingle:], strict=False):  # copies: cheaper
        h = blank.copy()
        h.update(joined[start:stop - 1])
        hashes.append(h.digest())
    shingles = len(hashes)
    digests = b"".join(hashes)
    value = 0
    for byte in range(8):
        column = digests[byte::8]
        shift = 8 * (7 - byte)  # the first byte of a big-endian digest is the highest
        for bit, table in enumerate(_BIT_TABLES):
            if 2 * column.translate(table).count(1) > shingles:
                value |= 1 << (shift + bit)
    return f"{value:016x}"


_BLAKE2B_64 = partial(hashlib.blake2b, digest_size=8)
_BIT_TABLES = tuple(bytes((v >> bit) & 1 for v in range(256)) for bit in range(8))
"""For each bit of a byte: the table that maps a byte to that bit (0 or 1)."""


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


@dataclass(frozen=True)
class StoryKeys:
    title_key: str | None
    simhash: str | None


def story_keys(title: str, body: str) -> StoryKeys:
    """The title's key, and the SimHash of the body (outlets rewrite titles more than
    bodies), or of title and body together when the body alone is too short."""
    return StoryKeys(title_key(title), simhash(body) or simhash(f"{title}\n{body}"))


@dataclass(frozen=True)
class StoryCandidate:
    """An item already stored, as far as clustering needs it."""

    item_id: int
    story_id: int | None
    feed_id: int
    fetched_at: datetime
    title_key: str | None
    simhash: str | None
    bits: int | None = field(init=False, repr=False, compare=False)
    """``simhash`` as a number, read once: every new matched item is compared with
    every candidate."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", None if self.simhash is None else int(self.simhash, 16))


_BITS = 64
_SCANS = 16
"""Scans of the candidates before ``StoryIndex`` builds bands: building them costs
about 15 scans (2.5 against 0.16 µs a candidate)."""


class StoryIndex:
    """Story candidates as ``find`` reads them: by title key, and by the bands of their
    SimHashes. A cold cycle compares every new matched item with every matched item
    before it; the bands leave about a fifth of the candidates to compare, not all.

    Two SimHashes within ``d`` bits of each other are equal in at least one of ``d + 1``
    bands of their 64 bits (the pigeonhole principle): ``find`` compares only the
    candidates that share a band with the item (at 10 bits, eleven bands of 5 or 6 bits:
    two random SimHashes share one with a chance of 0.2). The bands of each ``max_distance`` it
    is asked for are built once ``find`` has scanned every candidate ``scans`` times
    (a build costs about as much: a batch with few matched items only scans), then
    kept up to date by ``add``."""

    def __init__(self, candidates: Iterable[StoryCandidate] = (), *, scans: int = _SCANS
                 ) -> None:
        self._all = list(candidates)
        self._bits = [-1 if c.bits is None else c.bits for c in self._all]
        """Per candidate, its SimHash; -1 (no SimHash) is never near one."""
        self._titles: dict[str, list[int]] = {}
        for i, c in enumerate(self._all):
            if c.title_key is not None:
                self._titles.setdefault(c.title_key, []).append(i)
        self._banded: dict[int, _Bands] = {}
        """Per ``max_distance``, the candidates with a SimHash by band."""
        self._scans = scans
        """Finds left that scan every candidate before bands are built."""

    def add(self, c: StoryCandidate) -> None:
        i = len(self._all)
        if c.title_key is not None:
            self._titles.setdefault(c.title_key, []).append(i)
        self._bits.append(-1 if c.bits is None else c.bits)
        self._all.append(c)
        if c.bits is not None:
            for bands in self._banded.values():
                bands.add(c.bits, i)

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[StoryCandidate]:
        return iter(self._all)

    def __getitem__(self, i: int) -> StoryCandidate:
        """The ``i``-th candidate, in the order given and added."""
        return self._all[i]

    def find(self, keys: StoryKeys, *, now: datetime, window: timedelta,
             max_distance: int = MAX_DISTANCE) -> int | None:
        """The story (its first item's id) that an item with ``keys`` belongs to, among
        the candidates fetched within ``window`` before ``now``; None for a new story.
        The earliest matching story wins, so a story keeps one id."""
        best = self.earliest(keys, now=now, window=window, max_distance=max_distance)
        return None if best is None else best[1]

    def earliest(self, keys: StoryKeys, *, now: datetime, window: timedelta,
                 max_distance: int = MAX_DISTANCE) -> tuple[datetime, int] | None:
        """``find``'s answer with the time its earliest item was fetched, so the answers
        of two indexes compare (the smaller wins)."""
        near = list(self._titles.get(keys.title_key, ())) if keys.title_key is not None else []
        if keys.simhash is not None:
            near += self._near(int(keys.simhash, 16), max_distance)
        best: tuple[datetime, int] | None = None
        since = now - window
        for i in near:
            c = self._all[i]
            if c.fetched_at < since:
                continue
            story = c.story_id if c.story_id is not None else c.item_id
            if best is None or (c.fetched_at, story) < best:
                best = (c.fetched_at, story)
        return best

    def _near(self, bits: int, max_distance: int) -> list[int]:
        """The candidates whose SimHash is within ``max_distance`` bits of ``bits``."""
        all_bits = self._bits
        bands = self._banded.get(max_distance)
        if bands is None and (self._scans > 0 or not 0 <= max_distance < _BITS):
            self._scans -= 1  # (no band to look up for a distance below 0 or of 64 bits)
            return [i for i, b in enumerate(all_bits)
                    if b >= 0 and (bits ^ b).bit_count() <= max_distance]
        if bands is None:
            bands = self._banded[max_distance] = _Bands(max_distance + 1)
            for i, b in enumerate(all_bits):
                if b >= 0:
                    bands.add(b, i)
        return [i for i in bands.sharing(bits) if (bits ^ all_bits[i]).bit_count() <= max_distance]


class _Bands:
    """Numbers of 64 bits, by the value of each of ``n`` bands of their bits (the widths
    differ by one at most)."""

    def __init__(self, n: int) -> None:
        self.bands: list[tuple[int, int, dict[int, list[int]]]] = []
        """Per band: its shift, its mask, and the indices of the numbers by its value."""
        shift = 0
        for band in range(n):
            width = _BITS // n + (band < _BITS % n)
            self.bands.append((shift, (1 << width) - 1, {}))
            shift += width

    def add(self, bits: int, i: int) -> None:
        for shift, mask, table in self.bands:
            table.setdefault((bits >> shift) & mask, []).append(i)

    def sharing(self, bits: int) -> set[int]:
        """The indices of the numbers equal to ``bits`` in at least one band."""
        out: set[int] = set()
        for shift, mask, table in self.bands:
            found = table.get((bits >> shift) & mask)
            if found is not None:
                out.update(found)
        return out

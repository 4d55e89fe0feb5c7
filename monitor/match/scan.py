"""The scan string of a field, fast: its folded words joined by single spaces. Pure.

``joined_keys`` (monitor/text.py) reads a text chunk by chunk through a memo: correct
for every script, but it makes a Python object of every chunk, about 70 µs for a
2,000-character item. Most news text is Latin-1 with a few typographic marks (’ “ ” – —
…), and there the fold of a word is the fold of each of its characters. So
``scan_keys`` folds such a text whole, in C:

1. ``’`` becomes ``'`` and the typographic separators a space (one for one);
2. the text is encoded as Latin-1 (any other character: the general path);
3. one ``bytes.translate`` folds every character: letters and digits to their key
   (``É`` -> ``e``), every other character to a space. The table is computed from
   ``word_forms`` itself, one character at a time; the characters whose key is not
   one Latin-1 character (``ß`` -> ``ss``, ``µ`` -> ``μ``, ``¼``) map to NUL, and a
   text that holds one takes the general path;
4. apostrophes that do not join two word characters become spaces, and a trailing
   possessive (``'s``, repeated) is removed, with two regular expressions that only
   run when the text holds an apostrophe;
5. runs of spaces are squeezed, and the ends stripped.

Every other text takes ``joined_keys``. The result is the same either way: a property
test compares the two paths and ``tokenize`` on random text.
"""

from __future__ import annotations

import re
from itertools import accumulate, compress

from ..text import TYPOGRAPHIC_SEPARATORS, WORD_RE, joined_keys, word_forms

__all__ = ["RunOffsets", "drop_possessives", "keys_of_fold", "latin1_fold", "latin1_keys",
           "scan_keys", "squeeze_fold"]

_FALLBACK = 0  # NUL: a character whose key is not one Latin-1 character


def _fold_table() -> bytes:
    table = bytearray(b" " * 256)
    for code in range(256):
        char = chr(code)
        if char == "_" or not WORD_RE.fullmatch(char):  # tokenize blanks "_" first
            continue
        key = word_forms(char)[0]
        table[code] = ord(key) if len(key) == 1 and ord(key) < 256 else _FALLBACK
    table[ord("'")] = ord("'")
    return bytes(table)


_TABLE = _fold_table()
# After the table, the text holds word bytes, "'" and " " only (a NUL sends it away).
_LONE_APOSTROPHE_RE = re.compile(rb"'(?:(?![^ '])|(?<![^ ']'))")  # not between two words
_POSSESSIVE_RE = re.compile(rb"'s(?:'s)*(?![^ ])")  # at the end of a word
_SQUEEZES = 12  # halvings of a run of spaces: runs up to 4,096 long; longer, the general path


def latin1_fold(text: str) -> bytes | None:
    """Steps 1 to 4 but the possessives: one byte per character of ``text`` (already
    ``clean``), each word's folded letters at the word's own offsets and a space
    elsewhere; None if ``text`` needs the general path."""
    if not text.isascii():
        text = text.replace("\u2019", "'")
        for mark in TYPOGRAPHIC_SEPARATORS:
            if mark in text:
                text = text.replace(mark, " ")
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        return None
    folded = raw.translate(_TABLE)
    if b"\0" in folded:
        return None
    return _LONE_APOSTROPHE_RE.sub(b" ", folded) if b"'" in folded else folded


def squeeze_fold(folded: bytes) -> bytes | None:
    """Steps 4 and 5 on ``latin1_fold``'s bytes: the scan string, as Latin-1 bytes
    (None: a run of spaces too long to squeeze, for the general path)."""
    if b"'" in folded:
        folded = drop_possessives(folded)
    for _ in range(_SQUEEZES):
        if b"  " not in folded:
            return folded.strip(b" ")
        folded = folded.replace(b"  ", b" ")
    return None


def drop_possessives(folded: bytes) -> bytes:
    """Step 4's possessives removed from ``latin1_fold``'s bytes (``'s`` ending a word)."""
    return _POSSESSIVE_RE.sub(b"", folded)


def keys_of_fold(folded: bytes) -> str | None:
    """``squeeze_fold``, decoded: the scan string (None: the general path)."""
    keys = squeeze_fold(folded)
    return None if keys is None else keys.decode("latin-1")


def latin1_keys(text: str) -> str | None:
    """``joined_keys(text)`` for a Latin-1 text (with typographic marks), or None if the
    text holds another character (then the general path is needed)."""
    folded = latin1_fold(text)
    return None if folded is None else keys_of_fold(folded)


def scan_keys(text: str) -> str:
    """The folded keys of the words of ``text`` (already ``clean``), in order, separated
    by single spaces: ``joined_keys(text)``, by the fast path where it applies."""
    keys = latin1_keys(text)
    return joined_keys(text) if keys is None else keys


class RunOffsets:
    """``WordOffsets`` for a text on the fast path: word i is the i-th run of non-space
    bytes of ``latin1_fold(text)``. Found in C loops, from the pieces between single
    spaces (an empty piece is a shared object): their ends, and which are not empty."""

    def __init__(self, folded: bytes) -> None:
        self._pieces = pieces = folded.split(b" ")
        self._ends = list(accumulate(map((1).__add__, map(len, pieces))))  # end + 1
        self._words = list(compress(range(len(pieces)), pieces))  # the non-empty pieces

    def __len__(self) -> int:
        return len(self._words)

    def __getitem__(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self._words):
            raise IndexError(i)
        k = self._words[i]
        end = self._ends[k] - 1
        return end - len(self._pieces[k]), end

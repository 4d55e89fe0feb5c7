"""Text normalization: markup to plain text, Unicode folding, tokens with positions.

Pure functions, no I/O. The same ``fold`` is applied to the words of a rule and to
the words of an item, so whatever one side folds away, the other does too.

- ``html_to_text`` strips markup and decodes entities. Inline elements join their
  text (``Trip<b>oli</b>`` reads "Tripoli"); block elements and ``<br>`` separate
  words; ``<script>`` and ``<style>`` are dropped.
- ``clean`` removes what is invisible to a reader: soft hyphens, zero-width and
  bidi-control characters; it composes the text (NFC). What remains is what alerts
  quote, typographic apostrophes included.
- ``tokenize`` finds the words of cleaned text and gives each its offsets in that
  text, its folded key and its folded-but-cased form (for case-sensitive aliases).
- ``fold``: NFKC (width, ligatures), casefold, diacritics removed, Arabic letter
  variants unified, tatweel dropped, typographic apostrophes made ``'``, and a
  trailing possessive (``'s``) removed. A folded key folds to itself.
- ``joined_keys``, ``cased_sequence`` and ``WordOffsets`` read the same words as
  ``tokenize``, faster, for the matcher: the text is split on white space and each
  distinct chunk is folded once, through a memo. (Latin-1 text takes a faster path
  still, ``monitor/match/scan.py``, checked against these.)
- ``clitic_forms``: an Arabic word with a joined conjunction or preposition.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from html import unescape
from html.parser import HTMLParser
from itertools import accumulate, chain
from typing import TypeVar

__all__ = [
    "TYPOGRAPHIC_SEPARATORS",
    "WORD_RE",
    "Token",
    "WordOffsets",
    "cased_sequence",
    "clean",
    "clitic_forms",
    "fold",
    "html_to_text",
    "joined_keys",
    "key_of",
    "tokenize",
    "word_forms",
]

_T = TypeVar("_T")

# Characters a reader does not see: soft hyphen, zero-width space/joiners, word
# joiner, BOM, Arabic letter mark, bidi marks, embeddings, overrides and isolates.
_INVISIBLE = dict.fromkeys(
    map(
        ord,
        "\u00ad\u200b\u200c\u200d\u2060\ufeff\u061c\u200e\u200f"
        "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
    )
)
_APOSTROPHES = str.maketrans({c: "'" for c in "\u2019\u2018\u02bc\u2032\u00b4\u0060\uff07"})

# Arabic: alef with hamza or madda -> alef, alef wasla -> alef, taa marbuta -> haa,
# alef maqsura -> yaa; tatweel is dropped (harakat go with the other diacritics).
_ARABIC = str.maketrans(
    {"\u0623": "\u0627", "\u0625": "\u0627", "\u0622": "\u0627", "\u0671": "\u0627",
     "\u0629": "\u0647", "\u0649": "\u064a", "\u0640": None}
)

# A word: letters and digits, with the combining marks that may sit on them, joined
# by inner apostrophes ("O'Brien"). Hyphens, dots and slashes separate words.
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
    "\u06d6-\u06ed\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
)
# One character class is several times faster than ``(?:[^\W_]|[marks])``; the
# underscore (a ``\w`` character that is not a letter) is blanked first, one for one,
# so the offsets are those of the text itself.
_WORD_RE = re.compile(rf"[\w{_MARKS}]+(?:['\u2019\u02bc][\w{_MARKS}]+)*")
WORD_RE = _WORD_RE
"""A word of ``tokenize`` (after "_" is blanked): for the fast scan (match/scan.py)."""

TYPOGRAPHIC_SEPARATORS = "\u2018\u201c\u201d\u2013\u2014\u2026"
"""‘ “ ” – — …: marks of news text outside Latin-1 that are not word characters, are
visible and composed (NFC). With ’ they let most text take the fast paths."""

_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
    "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "ul",
})
_DROPPED_TAGS = frozenset({"script", "style", "template", "noscript"})


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a text: its offsets in the cleaned text and its folded forms."""

    key: str
    """Folded: what a case-insensitive term compares with."""
    cased: str
    """Folded but with its case kept: what a case-sensitive alias compares with."""
    start: int
    end: int


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._dropped = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED_TAGS:
            self._dropped += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED_TAGS:
            self._dropped = max(0, self._dropped - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._dropped:
            self.parts.append(data)


# Runs of blanks other than a lone space (which stays as it is): matching every single
# space made the substitution the costliest step of reading a feed.
_SPACES_RE = re.compile(r" [ \t\r\f\v\u00a0]+|[\t\r\f\v\u00a0][ \t\r\f\v\u00a0]*")


def _has_blank_run(text: str) -> bool:
    """Whether ``_SPACES_RE`` has anything to replace: a space followed by a blank, or a
    blank other than a space. Substring searches (C) answer in a fraction of the time
    the expression takes to try every space of a text that has nothing to replace."""
    return ("  " in text or "\t" in text or "\r" in text or "\f" in text or "\v" in text
            or "\u00a0" in text)


# Tags without attributes of elements whose text is read as it stands: the block
# elements, and inline ones that HTMLParser treats as any other (no raw text, no
# dropped content).
_PLAIN_TAG_RE = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*) ?/?>|</([a-zA-Z][a-zA-Z0-9]*)>")
_INLINE_TAGS = frozenset({"a", "abbr", "b", "cite", "code", "em", "i", "mark", "q", "s",
                          "small", "span", "strong", "sub", "sup", "u"})


def _plain_markup(markup: str) -> list[str] | None:
    """``_TextExtractor``'s parts of ``markup`` whose every ``<`` opens a plain tag
    (``_PLAIN_TAG_RE``) of a block or ``_INLINE_TAGS`` element; None for other markup.
    HTMLParser reads such markup as the text between the tags, each piece with its
    references decoded, and a tag as a line break if it is a block's: one split (C)
    finds the same pieces without a Python call per tag."""
    pieces = _PLAIN_TAG_RE.split(markup)  # text, start tag, end tag, text, …
    parts = []
    for i in range(0, len(pieces) - 1, 3):
        text, tag = pieces[i], (pieces[i + 1] or pieces[i + 2]).lower()
        if "<" in text:
            return None
        if text:
            parts.append(unescape(text) if "&" in text else text)
        if tag in _BLOCK_TAGS:
            parts.append("\n")
        elif tag not in _INLINE_TAGS:
            return None
    text = pieces[-1]
    if "<" in text:
        return None
    if text:
        parts.append(unescape(text) if "&" in text else text)
    return parts


def _markup_text(markup: str) -> str:
    """The text ``_TextExtractor`` reads in ``markup``, by a faster path where one gives
    the same text."""
    if "<" not in markup:
        # HTMLParser reads text without a tag as one piece, its references decoded.
        return unescape(markup) if "&" in markup else markup
    parts = _plain_markup(markup)
    if parts is None:
        parser = _TextExtractor()
        parser.feed(markup)
        parser.close()
        parts = parser.parts
    return "".join(parts)


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment: tags stripped, entities decoded, space collapsed
    (a run of white space holding a line break becomes that line break)."""
    text = _markup_text(markup)
    if _has_blank_run(text):
        text = _SPACES_RE.sub(" ", text)
    if "\n" in text:  # each line stripped, empty ones dropped: ``\s*\n\s*`` -> ``\n``
        return "\n".join(line for line in map(str.strip, text.split("\n")) if line)
    return text.strip()


# ``str.translate`` with a dict walks a non-ASCII text character by character in Python
# objects; a regular expression finds the (rare) invisible characters far faster.
_INVISIBLE_RE = re.compile("[" + "".join(map(chr, _INVISIBLE)) + "]")


def _is_latin1(text: str) -> bool:
    """Whether ``text`` is Latin-1 once ’ and the typographic separators are set aside."""
    probe = text.replace("\u2019", "'")
    for mark in TYPOGRAPHIC_SEPARATORS:
        if mark in probe:
            probe = probe.replace(mark, " ")
    try:
        probe.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def clean(text: str) -> str:
    """Remove invisible characters and compose (NFC)."""
    if text.isascii():
        return text
    if _is_latin1(text):
        # Latin-1 letters are precomposed and ’ and the separators compose with
        # nothing: such a text is NFC, and its only invisible character is U+00AD.
        return text.replace("\u00ad", "") if "\u00ad" in text else text
    text = _INVISIBLE_RE.sub("", text)
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text


def _strip(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = unicodedata.normalize("NFKC", bare).translate(_ARABIC).translate(_APOSTROPHES)
    # A few ligatures expand to several words ("ﷺ"); a word's key holds no space.
    return "".join(folded.split()) if " " in folded else folded


def _unpossessed(word: str) -> str:
    while word.endswith(("'s", "'S")):
        word = word[:-2]
    return word


def _fold_cased(word: str) -> str:
    # ASCII letters, digits and "'" have nothing to decompose, map or compose.
    return _unpossessed(word if word.isascii() else _strip(word))


def key_of(cased: str) -> str:
    """The key of a word from its cased form (``Token.cased`` -> ``Token.key``)."""
    key = cased.casefold()
    # Case folding can decompose again ("ǰ" -> "j" + caron): strip once more, so
    # that a key folds to itself.
    return key if key.isascii() else _unpossessed(_strip(key))


@lru_cache(maxsize=1 << 16)
def word_forms(word: str) -> tuple[str, str]:
    """``(key, cased)`` of one word as ``tokenize`` finds it (see ``Token``).

    Memoized: news text repeats its words, and this is the hot path of matching.
    """
    cased = _fold_cased(word)
    return key_of(cased), cased


def _read_chunk(chunk: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The keys and the cased forms of the words of one chunk, in order."""
    forms = [word_forms(w) for w in _WORD_RE.findall(chunk.replace("_", " "))]
    return (tuple(key for key, cased in forms if cased),
            tuple(cased for _, cased in forms if cased))


_MEMO_SIZE = 1 << 16  # chunks per memo; the scan memo and word_forms hold ~20 MB when full


class _Memo(dict[str, _T]):
    """chunk -> what ``read`` makes of it; emptied when full. A memo of a pure function:
    it changes no result, only how often the chunk is read. A dict subclass with
    ``__missing__`` answers a hit in C, about twice as fast as ``lru_cache``."""

    def __init__(self, read: Callable[[str], _T]) -> None:
        super().__init__()
        self.read = read

    def __missing__(self, chunk: str) -> _T:
        if len(self) >= _MEMO_SIZE:
            self.clear()
        value = self[chunk] = self.read(chunk)
        return value


_KEYS: _Memo[tuple[str, ...]] = _Memo(lambda c: _read_chunk(c)[0])
_CASED: _Memo[tuple[str, ...]] = _Memo(lambda c: _read_chunk(c)[1])
_JOINED: _Memo[str] = _Memo(lambda c: " ".join(_read_chunk(c)[0]))


# A word never spans white space, so the faster readers below split the text on it
# (in C), read each chunk once, and let a memo answer the chunks news text repeats:
# several times faster than ``tokenize``, and the same words (a property test checks).

def joined_keys(text: str) -> str:
    """The folded keys of the words of ``text`` (already ``clean``), in order, separated
    by single spaces: what the prefilter scans and the matcher searches."""
    return " ".join(filter(None, map(_JOINED.__getitem__, text.split())))


def cased_sequence(text: str) -> tuple[str, ...]:
    """The cased forms of the words of ``text`` in order: ``tokenize``'s ``cased``."""
    return tuple(chain.from_iterable(map(_CASED.__getitem__, text.split())))


def _read_spans(chunk: str) -> tuple[tuple[int, int], ...]:
    return tuple((m.start(), m.end()) for m in _WORD_RE.finditer(chunk.replace("_", " "))
                 if word_forms(m.group())[1])


_SPANS: _Memo[tuple[tuple[int, int], ...]] = _Memo(_read_spans)
_SPACE_RE = re.compile(r"(\s+)")  # the white space of str.split(), kept


class WordOffsets:
    """The (start, end) offsets of the i-th word of ``text`` (``tokenize``'s offsets),
    found without reading the words one by one: matching needs the offsets of the few
    words that fired, not of every word."""

    def __init__(self, text: str) -> None:
        self._chunks = chunks = text.split()
        self._words = list(accumulate(map(len, map(_KEYS.__getitem__, chunks))))
        lengths = list(map(len, chunks))
        if sum(lengths) + len(chunks) - 1 == len(text):
            # One white-space character between chunks, none around them: the usual
            # case after html_to_text, and the chunk starts follow from their lengths.
            self._skip, self._step = 0, 1
            self._starts = [0, *accumulate(map((1).__add__, lengths))]
        else:
            # Chunks and the white space between them, alternately; only the first and
            # the last piece can be empty (the text starts or ends with white space).
            pieces = _SPACE_RE.split(text)
            self._skip = 2 if pieces and pieces[0] == "" else 0
            self._step = 2
            self._starts = [0, *accumulate(map(len, pieces))]

    def __len__(self) -> int:
        return self._words[-1] if self._words else 0

    def __getitem__(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = bisect_right(self._words, i)
        j = i - (self._words[k - 1] if k else 0)
        chunk_start = self._starts[self._step * k + self._skip]
        start, end = _SPANS[self._chunks[k]][j]
        return chunk_start + start, chunk_start + end


# Arabic writes conjunctions and prepositions joined to the next word: و (and), ف (so),
# ب (in, with), ل (for), ك (like), and pairs of them. The article ال joins too, and ل
# before it drops its alef (ل + الجيش = للجيش).
_PROCLITICS = ("و", "ف", "ب", "ل", "ك", "وب", "ول", "فب", "فل", "وك", "فك")
_BEFORE_ARTICLE = ("و", "ف", "ب", "ك", "وب", "فب", "وك", "فك")
_BEFORE_ARTICLE_LAM = ("ل", "ول", "فل")


@lru_cache(maxsize=1 << 12)
def clitic_forms(key: str) -> tuple[str, ...]:
    """The other forms an Arabic word's key takes with a joined conjunction or
    preposition (``طرابلس``: ``وطرابلس``, ``بطرابلس``, …); none for other scripts.

    Words of fewer than three letters take only و, which is safe: ``لد`` must not
    match ``بلد``.
    """
    if not key or not "\u0621" <= key[0] <= "\u064a":
        return ()
    if key.startswith("\u0627\u0644") and len(key) > 3:  # ال + a word
        return (*(p + key for p in _BEFORE_ARTICLE),
                *(p + key[1:] for p in _BEFORE_ARTICLE_LAM))
    if len(key) < 3:
        return ("و" + key,)
    return tuple(p + key for p in _PROCLITICS)


def fold(word: str) -> str:
    """The matching key of one word (see the module docstring)."""
    return key_of(_fold_cased(clean(word)))


def tokenize(text: str) -> list[Token]:
    """The words of ``text`` (already ``clean``) with their offsets and folded forms."""
    tokens = []
    for m in _WORD_RE.finditer(text.replace("_", " ")):
        key, cased = word_forms(m.group())
        if cased:
            tokens.append(Token(key, cased, m.start(), m.end()))
    return tokens

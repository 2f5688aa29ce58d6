"""Cutting text into units that chunks are packed from, at the strongest boundary that fits.

A cut is made at the strongest boundary that keeps a chunk within its size:
a markdown heading (chunks never cross one), a blank line between
paragraphs, a sentence end (``. ! ?`` before a space, or ``。！？；``), a line
break, a space, and only as a last resort between two characters of a
CJK run or inside one enormous word.  A *unit* is what lies between two cuts
(a sentence, a line or a hard-split piece); :mod:`ragkit.chunking.packing`
groups units into chunks.

Sizes are in **approximate tokens** (:func:`approx_tokens`), an estimate of
all-MiniLM's BERT word-pieces that needs no tokenizer.  The defaults, 250
with 38 (15%) of overlap, were chosen with ``benchmarks/compare_chunking.py``:
the best hybrid nDCG@10 of the sizes measured (100, 200, 250, 300) on SciFact
and within 0.002 of it on XQuAD, while about 95% of chunks still fit in the
model's 256-piece window (at 300, a third of them no longer do).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import ClassVar, NamedTuple

from ..scripts import CJK_CHAR, CJK_RANGES

__all__ = ["DEFAULT_SETTINGS", "ChunkerSettings", "approx_tokens"]

# Scripts written without spaces, where BERT's tokenizer yields about one piece
# per character (see ragkit.scripts).
_CJK = CJK_RANGES
_TOKEN_RE = rf"(?:[{_CJK}]|[^\W{_CJK}]+|[^\w\s])"  # a CJK char, a word, a punctuation mark
_TOKEN = re.compile(_TOKEN_RE)
_LONG_WORD = re.compile(rf"[^\W{_CJK}]{{7,}}")
_CJK_CHAR = CJK_CHAR
_CHARS_PER_PIECE = 7  # a long word costs one extra piece per 7 characters

_MARKER = re.compile(  # a fence line or an ATX heading line
    r"^ {0,3}(?:(?P<fence>`{3,}|~{3,})|(?P<hashes>#{1,6})(?=[ \t\r]|$)(?P<title>[^\n]*))",
    re.MULTILINE,
)
_CLOSING_HASHES = re.compile(r"(?:^|[ \t])#+[ \t]*$")
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)|[。！？；]+[」』”’）]*")
_NON_SPACE = re.compile(r"\S")
_LAST_WORD_END = re.compile(r".*\S(?=\s)", re.DOTALL)


@dataclass(frozen=True)
class ChunkerSettings:
    """Target chunk size and overlap between neighbours, in approximate tokens."""

    size: int = 250
    overlap: int = 38
    unit: ClassVar[str] = "approx_tokens"

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"chunk size must be positive, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise ValueError(
                f"overlap must be at least 0 and below the size ({self.size}), got {self.overlap}"
            )

    def as_dict(self) -> dict[str, int | str]:
        """The settings as recorded in an index manifest."""
        return {"size": self.size, "overlap": self.overlap, "unit": self.unit}


DEFAULT_SETTINGS = ChunkerSettings()


class _Unit(NamedTuple):
    """A run of text never cut by packing: a sentence, a line or a hard-split piece.

    ``mode`` and ``glue`` say how to regenerate the units from this one on
    (see :class:`~ragkit.chunking.streaming._Restart`).
    """

    start: int
    end: int
    tokens: int
    paragraph: int
    mode: str = "fresh"
    glue: bool = False
    sentence_end: int = -1  # of a word-cut sentence, if known


@dataclass(frozen=True)
class _Outline:
    """Markdown heading path and open code fence, as marker lines are met in order."""

    path: tuple[tuple[int, str], ...] = ()
    fence: str = ""

    @property
    def heading(self) -> str:
        return " > ".join(title for _, title in self.path if title)

    def after(self, m: re.Match[str]) -> _Outline | None:
        """The outline after marker ``m``; None when ``m`` changes nothing."""
        if m["fence"]:
            marker = m["fence"]
            if not self.fence:
                return replace(self, fence=marker)
            if marker[0] == self.fence[0] and len(marker) >= len(self.fence):
                return replace(self, fence="")
            return None
        if self.fence:  # '#' lines inside code are comments, not headings
            return None
        level = len(m["hashes"])
        title = _CLOSING_HASHES.sub("", m["title"].strip()).strip()
        return _Outline((*(h for h in self.path if h[0] < level), (level, title)))


def approx_tokens(text: str) -> int:
    """Estimate the BERT word-pieces in ``text`` (the unit of chunk sizes).

    Each CJK, kana or hangul character counts 1, each punctuation mark 1, each
    other word 1 plus 1 per 7 characters.

    >>> approx_tokens("Hello, world!")
    4
    >>> approx_tokens("internationalization")
    3
    >>> approx_tokens("熊猫吃竹子。")
    6
    >>> approx_tokens("  ")
    0
    """
    extra = sum(len(word) // _CHARS_PER_PIECE for word in _LONG_WORD.findall(text))
    return len(_TOKEN.findall(text)) + extra


def _sections(
    text: str, markdown: bool, start: int, end: int, outline: _Outline = _Outline(),
    glue: bool = False,
) -> list[tuple[int, int, str, bool]]:
    """(start, end, heading path, starts with a heading line) of each section.

    ``outline`` and ``glue`` describe the section ``start`` is in.
    """
    if not markdown:
        return [(start, end, "", False)]
    sections: list[tuple[int, int, str, bool]] = []
    heading = outline.heading
    for m in _MARKER.finditer(text, start, end):
        new = outline.after(m)
        if new is None:
            continue
        outline = new
        if m["hashes"]:
            sections.append((start, m.start(), heading, glue))
            start, heading, glue = m.start(), outline.heading, True
    sections.append((start, end, heading, glue))
    return [s for s in sections if s[1] > s[0]]


def _units(
    text: str, start: int, end: int, settings: ChunkerSettings, has_heading_line: bool,
    mode: str = "fresh", open_end: int | None = None, sentence_end: int = -1,
) -> list[_Unit]:
    """The section's sentences (or smaller pieces), each at most ``settings.size`` tokens.

    ``mode`` and ``sentence_end`` say how the first sentence is cut (see
    :class:`~ragkit.chunking.streaming._Restart`).  With ``open_end`` (== ``end``),
    more text follows: the units stop before the first one that text could change.
    """
    units: list[_Unit] = []
    paragraph = 0
    glue = has_heading_line  # a lone heading line is packed with the paragraph after it
    for p, q in _paragraphs(text, start, end):
        before, joins, seam = len(units), glue, -1  # no line break yet since the seam
        for a, b in _sentences(text, p, q, sentence_end):
            for unit in _fitted(text, a, b, settings, paragraph, mode, q == open_end == b):
                if unit is None:
                    return units
                joins = joins and (seam < 0 or "\n" not in text[seam : unit.start])
                seam = unit.start
                units.append(unit._replace(glue=True) if joins else unit)
            mode, sentence_end = "fresh", -1
        if len(units) == before:
            continue
        if not (glue and "\n" not in text[units[before].start : units[-1].end]):
            paragraph += 1
        glue = False
    return units


def _paragraphs(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Blank-line separated blocks of ``text[start:end]``."""
    pos = start
    for m in _BLANK_LINES.finditer(text, start, end):
        yield pos, m.start()
        pos = m.end()
    yield pos, end


def _sentences(text: str, start: int, end: int, first_end: int = -1) -> Iterator[tuple[int, int]]:
    """Sentence pieces of a paragraph; their concatenation is the paragraph.

    ``first_end``: where the first one is already known to end.
    """
    cut = start
    if first_end > start:
        yield start, first_end
        cut = first_end
    for m in _SENTENCE_END.finditer(text, start, end):
        yield cut, m.end()
        cut = m.end()
    if cut < end:
        yield cut, end


def _fitted(
    text: str, start: int, end: int, settings: ChunkerSettings, paragraph: int,
    mode: str = "fresh", is_open: bool = False,
) -> Iterator[_Unit | None]:
    """A trimmed sentence as one unit, or cut at line breaks and then words to fit.

    ``mode`` "lines" or "hard" resumes a sentence already known not to fit
    (see :class:`~ragkit.chunking.streaming._Restart`).  ``is_open``: the sentence
    runs on past ``end``; None is yielded in place of the first unit the rest
    could change.
    """
    size = settings.size
    # Word-split pieces leave room for the overlap, so every chunk of a long run gets one.
    piece = size - settings.overlap
    a, b = _trim(text, start, end)
    if a == b:
        return
    tokens = _tokens_if_fit(text, a, b, size) if mode == "fresh" else None
    if tokens is not None:
        yield None if is_open else _Unit(a, b, tokens, paragraph)
        return
    for line in re.finditer(r"[^\n]+", text[a:b]):
        la, lb = _trim(text, a + line.start(), a + line.end())
        if la == lb:
            continue
        last = is_open and lb == b
        whole = (la, lb) == (a, b) and mode == "fresh"  # known not to fit
        fits = not whole and not (mode == "hard" and la == a)
        tokens = _tokens_if_fit(text, la, lb, size) if fits else None
        if tokens is not None:
            yield None if last else _Unit(la, lb, tokens, paragraph, "lines")
        else:
            known = -1 if is_open else end
            for x, y, n in _hard_split(text, la, lb, piece, last):
                yield _Unit(x, y, n, paragraph, "hard", sentence_end=known)
            if last:
                yield None


def _tokens_if_fit(text: str, start: int, end: int, size: int) -> int | None:
    """``approx_tokens(text[start:end])`` if it is at most ``size``, else None."""
    # Counting a prefix first spares a full pass over a megabyte-long line:
    # a prefix never has more tokens than the whole.
    probe = start + 8 * _CHARS_PER_PIECE * size
    if end > probe and approx_tokens(text[start:probe]) > size:
        return None
    tokens = approx_tokens(text[start:end])
    return tokens if tokens <= size else None


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Offsets of ``text[start:end]`` without its surrounding whitespace."""
    m = _NON_SPACE.search(text, start, end)
    if m is None:
        return start, start
    piece = text[m.start() : end]
    return m.start(), m.start() + len(piece.rstrip())


@lru_cache(maxsize=16)
def _piece_pattern(tokens: int) -> re.Pattern[str]:
    """Up to ``tokens`` tokens with the whitespace between them, matched in C."""
    return re.compile(rf"{_TOKEN_RE}(?:\s*{_TOKEN_RE}){{0,{tokens - 1}}}")


@lru_cache(maxsize=16)
def _giant_word(size: int) -> re.Pattern[str]:
    """A word too long for one chunk: it costs more than ``size`` tokens alone."""
    return re.compile(rf"[^\W{_CJK}]{{{_CHARS_PER_PIECE * size}}}")


def _hard_split(
    text: str, start: int, end: int, size: int, is_open: bool = False
) -> Iterator[tuple[int, int, int]]:
    """Cut a line with no sentence end into pieces of at most ``size`` tokens.

    ``is_open``: the line runs on past ``end``; stop before a piece that could see it.
    """
    pos = start
    while pos < end:
        # A piece that fits has under 7 * size visible characters; looking no
        # further keeps a megabyte-long "word" (base64, minified data) linear.
        window = min(end, pos + 8 * _CHARS_PER_PIECE * size)
        if is_open and window == end:
            return
        if _giant_word(size).match(text, pos, window):  # 7 * size - 1 letters cost size
            stop, tokens = pos + _CHARS_PER_PIECE * size - 1, size
        else:
            m = _piece_pattern(size).match(text, pos, window)
            stop = _back_to_space(text, pos, m.end() if m else window, end)
            tokens = approx_tokens(text[pos:stop])
            if tokens > size:  # long words weigh more than one token each
                stop, tokens = _fit_tokens(text, pos, window, size)
        yield pos, stop, tokens
        nxt = _NON_SPACE.search(text, stop, end)
        pos = nxt.start() if nxt else end


def _back_to_space(text: str, start: int, stop: int, end: int) -> int:
    """Move a cut that falls between two latin tokens back to the last space."""
    if stop >= end or text[stop].isspace():
        return stop
    if _CJK_CHAR.match(text, stop) or _CJK_CHAR.match(text, stop - 1):
        return stop  # CJK has no spaces: any character boundary will do
    m = _LAST_WORD_END.match(text, start, stop)
    return m.end() if m and m.end() - start > (stop - start) // 2 else stop


def _fit_tokens(text: str, start: int, end: int, size: int) -> tuple[int, int]:
    """Take whole tokens up to ``size`` (the first one always fits: no giant words here)."""
    total, stop = 0, start
    for m in _TOKEN.finditer(text, start, end):
        cost = 1 + len(m.group()) // _CHARS_PER_PIECE
        if total + cost > size:
            break
        total, stop = total + cost, m.end()
    return stop, total

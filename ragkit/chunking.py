"""Cutting text into overlapping chunks that follow its structure.

A cut is made at the strongest boundary that keeps a chunk within its size:
a markdown heading (chunks never cross one), a blank line between
paragraphs, a sentence end (``. ! ?`` before a space, or ``。！？；``), a line
break, a space, and only as a last resort between two characters of a
CJK run or inside one enormous word.

Sizes are in **approximate tokens** (:func:`approx_tokens`), an estimate of
all-MiniLM's BERT word-pieces that needs no tokenizer.  The defaults, 200
with 30 of overlap, leave room for the heading path inside the model's
256-piece window.

Every chunk is a :class:`Span` of its source: ``text == source[start:end]``
with no surrounding whitespace, so a citation can point at exact offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, NamedTuple

__all__ = ["ChunkerSettings", "Span", "approx_tokens", "chunk_text"]

# Scripts written without spaces, where BERT's tokenizer yields about one piece
# per character: hangul jamo, kana, CJK ideographs (with extensions), syllables.
_CJK = (
    "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f"
)
_TOKEN_RE = rf"(?:[{_CJK}]|[^\W{_CJK}]+|[^\w\s])"  # a CJK char, a word, a punctuation mark
_TOKEN = re.compile(_TOKEN_RE)
_LONG_WORD = re.compile(rf"[^\W{_CJK}]{{7,}}")
_CJK_CHAR = re.compile(f"[{_CJK}]")
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

    size: int = 200
    overlap: int = 30
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


@dataclass(frozen=True)
class Span:
    """One chunk: ``text == source[start:end]``, stripped, under its heading path."""

    start: int
    end: int
    text: str
    heading: str


class _Unit(NamedTuple):
    """A run of text never cut by packing: a sentence, a line or a hard-split piece."""

    start: int
    end: int
    tokens: int
    paragraph: int


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


def chunk_text(
    text: str, settings: ChunkerSettings = DEFAULT_SETTINGS, *, markdown: bool = False
) -> list[Span]:
    """Split ``text`` into spans of at most ``settings.size`` approximate tokens.

    >>> doc = "# Install\\n\\nRun it.\\n\\n## From source\\n\\nClone it."
    >>> for span in chunk_text(doc, markdown=True):
    ...     print(repr(span.heading), repr(span.text))
    'Install' '# Install\\n\\nRun it.'
    'Install > From source' '## From source\\n\\nClone it.'
    >>> [s.text for s in chunk_text("One. Two. Three.", ChunkerSettings(size=4, overlap=2))]
    ['One. Two.', 'Two. Three.']
    """
    spans: list[Span] = []
    for start, end, heading, has_heading_line in _sections(text, markdown):
        units = _units(text, start, end, settings, has_heading_line)
        spans.extend(_pack(text, units, settings, heading))
    return spans


def _sections(text: str, markdown: bool) -> list[tuple[int, int, str, bool]]:
    """(start, end, heading path, starts with a heading line) of each section."""
    if not markdown:
        return [(0, len(text), "", False)]
    sections: list[tuple[int, int, str, bool]] = []
    path: list[tuple[int, str]] = []
    start, heading, fence = 0, "", ""
    for m in _MARKER.finditer(text):
        if m["fence"]:
            marker = m["fence"]
            if not fence:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = ""
            continue
        if fence:  # '#' lines inside code are comments, not headings
            continue
        sections.append((start, m.start(), heading, bool(path)))
        level = len(m["hashes"])
        path = [(lvl, title) for lvl, title in path if lvl < level]
        path.append((level, _CLOSING_HASHES.sub("", m["title"].strip()).strip()))
        start, heading = m.start(), " > ".join(title for _, title in path if title)
    sections.append((start, len(text), heading, bool(path)))
    return [s for s in sections if s[1] > s[0]]


def _units(
    text: str, start: int, end: int, settings: ChunkerSettings, has_heading_line: bool
) -> list[_Unit]:
    """The section's sentences (or smaller pieces), each at most ``settings.size`` tokens."""
    units: list[_Unit] = []
    paragraph = 0
    glue = has_heading_line  # a lone heading line is packed with the paragraph after it
    for p, q in _paragraphs(text, start, end):
        before = len(units)
        for a, b in _sentences(text, p, q):
            units.extend(_fitted(text, a, b, settings, paragraph))
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


def _sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Sentence pieces of a paragraph; their concatenation is the paragraph."""
    cut = start
    for m in _SENTENCE_END.finditer(text, start, end):
        yield cut, m.end()
        cut = m.end()
    if cut < end:
        yield cut, end


def _fitted(
    text: str, start: int, end: int, settings: ChunkerSettings, paragraph: int
) -> Iterator[_Unit]:
    """A trimmed sentence as one unit, or cut at line breaks and then words to fit."""
    size = settings.size
    # Word-split pieces leave room for the overlap, so every chunk of a long run gets one.
    piece = size - settings.overlap
    a, b = _trim(text, start, end)
    if a == b:
        return
    tokens = _tokens_if_fit(text, a, b, size)
    if tokens is not None:
        yield _Unit(a, b, tokens, paragraph)
        return
    for line in re.finditer(r"[^\n]+", text[a:b]):
        la, lb = _trim(text, a + line.start(), a + line.end())
        if la == lb:
            continue
        tokens = _tokens_if_fit(text, la, lb, size) if (la, lb) != (a, b) else None
        if tokens is not None:
            yield _Unit(la, lb, tokens, paragraph)
        else:
            yield from (_Unit(x, y, n, paragraph) for x, y, n in _hard_split(text, la, lb, piece))


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


def _hard_split(text: str, start: int, end: int, size: int) -> Iterator[tuple[int, int, int]]:
    """Cut a line with no sentence end into pieces of at most ``size`` tokens."""
    pos = start
    while pos < end:
        # A piece that fits has under 7 * size visible characters; looking no
        # further keeps a megabyte-long "word" (base64, minified data) linear.
        window = min(end, pos + 8 * _CHARS_PER_PIECE * size)
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


def _pack(text: str, units: list[_Unit], settings: ChunkerSettings, heading: str) -> list[Span]:
    """Group a section's units into chunks, each overlapping the one before."""
    totals: dict[int, int] = {}
    for unit in units:
        totals[unit.paragraph] = totals.get(unit.paragraph, 0) + unit.tokens
    spans: list[Span] = []
    i, lead, lead_tokens = 0, -1, 0
    while i < len(units):
        start = units[i].start if lead < 0 else lead
        total, j = lead_tokens + units[i].tokens, i + 1
        while j < len(units) and _fits(units, totals, j, total, settings.size):
            total += units[j].tokens
            j += 1
        end = units[j - 1].end
        spans.append(Span(start, end, text[start:end], heading))
        if j < len(units):
            lead, lead_tokens = _overlap(text, units, totals, (i, j, start), settings)
        i = j
    return spans


def _fits(units: list[_Unit], totals: dict[int, int], j: int, total: int, size: int) -> bool:
    """Whether unit ``j`` joins the chunk; a new paragraph joins only if all of it fits."""
    unit = units[j]
    if unit.paragraph != units[j - 1].paragraph:
        return total + totals[unit.paragraph] <= size
    return total + unit.tokens <= size


def _overlap(
    text: str,
    units: list[_Unit],
    totals: dict[int, int],
    chunk: tuple[int, int, int],
    settings: ChunkerSettings,
) -> tuple[int, int]:
    """Where the next chunk starts (its lead-in from this one) and the lead's tokens.

    ``chunk`` is (first unit, next unit, start offset).  The lead is whole
    trailing units if any fit, else trailing words; it leaves room for what
    must follow it: the whole next paragraph if that fits in a chunk, else
    the next unit.  (-1, 0) means no overlap.
    """
    first, nxt, chunk_start = chunk
    unit = units[nxt]
    paragraph = totals[unit.paragraph]
    whole = unit.paragraph != units[nxt - 1].paragraph and paragraph <= settings.size
    budget = min(settings.overlap, settings.size - (paragraph if whole else unit.tokens))
    k, used = nxt, 0
    while (
        k - 1 >= first and units[k - 1].start > chunk_start and used + units[k - 1].tokens <= budget
    ):
        k -= 1
        used += units[k].tokens
    if k < nxt:
        return units[k].start, used
    return _trailing_words(text, units[nxt - 1], budget, chunk_start)


def _trailing_words(text: str, unit: _Unit, budget: int, floor: int) -> tuple[int, int]:
    """The longest tail of ``unit`` worth <= ``budget`` tokens that starts a word."""
    if budget <= 0:
        return -1, 0
    tail = list(_TOKEN.finditer(text, unit.start, unit.end))
    used, best, fallback = 0, (-1, 0), (-1, 0)
    for m in reversed(tail):
        cost = 1 + len(m.group()) // _CHARS_PER_PIECE
        if m.start() <= floor or used + cost > budget:
            break
        used += cost
        fallback = (m.start(), used)
        if text[m.start() - 1].isspace() or _CJK_CHAR.match(text, m.start()):
            best = fallback
    return best if best[0] >= 0 else fallback

"""Chunking along a document's structure: headings, then paragraphs, sentences, words.

Sizes are in **approximate tokens**, an estimate of all-MiniLM's BERT
word-pieces that needs no tokenizer: every word counts 1 plus 1 per 7
characters, every CJK character 1, every punctuation mark 1.  The defaults
(200 with 30 overlap) keep a chunk, plus its heading path, inside the 256
word-piece window of ``all-minilm``.

Every chunk is a :class:`Span` of the source text: ``text == source[start:end]``
with surrounding whitespace trimmed, so citations can point at exact offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["ChunkerSettings", "Span", "approx_tokens", "chunk_text"]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
# A CJK character, a run of other word characters, or one punctuation mark.
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
_HEADING = re.compile(r"(#{1,6})[ \t]+(.*?)[ \t#]*$")
_FENCE = re.compile(r"\s{0,3}(```|~~~)")
# Sentence ends: . ! ? followed by space, or CJK enders, which need no space.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)|[。！？；]+")
_LONG_WORD = 7  # characters per extra token in a long word


@dataclass(frozen=True)
class ChunkerSettings:
    """Target chunk size and overlap, in approximate tokens."""

    size: int = 200
    overlap: int = 30
    unit: ClassVar[str] = "approx_tokens"

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"chunk size must be positive, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise ValueError(f"overlap must be between 0 and size-1, got {self.overlap}")

    def as_dict(self) -> dict[str, object]:
        """The settings as recorded in an index manifest."""
        return {"size": self.size, "overlap": self.overlap, "unit": self.unit}


@dataclass(frozen=True)
class Span:
    """One chunk: offsets into the source, its text and its heading path."""

    start: int
    end: int
    text: str
    heading: str


def approx_tokens(text: str) -> int:
    """Approximate word-piece count of ``text``.

    >>> approx_tokens("Hello, world!")
    4
    >>> approx_tokens("internationalization")  # one long word: 1 + 20 // 7
    3
    >>> approx_tokens("熊猫吃竹子。")
    6
    """
    tokens = _TOKEN.findall(text)
    return len(tokens) + sum(len(t) // _LONG_WORD for t in tokens)


@dataclass(frozen=True)
class _Unit:
    """An indivisible run of text (a sentence or line), with its paragraph number."""

    start: int
    end: int
    tokens: int
    paragraph: int


def chunk_text(
    text: str, settings: ChunkerSettings | None = None, *, markdown: bool = False
) -> list[Span]:
    """Split ``text`` into spans of at most ``settings.size`` approximate tokens.

    >>> [s.heading for s in chunk_text("# A\\n\\nintro\\n\\n## B\\n\\nbody", markdown=True)]
    ['A', 'A > B']
    >>> chunk_text("One. Two.", ChunkerSettings(size=2, overlap=0))
    [Span(start=0, end=4, text='One.', heading=''), Span(start=5, end=9, text='Two.', heading='')]
    """
    settings = settings or ChunkerSettings()
    spans: list[Span] = []
    for start, end, heading in _sections(text, markdown):
        units = list(_units(text, start, end, settings.size))
        for first, last in _pack(units, settings):
            a, b = units[first].start, units[last].end
            spans.append(Span(a, b, text[a:b], heading))
    return spans


def _sections(text: str, markdown: bool) -> Iterator[tuple[int, int, str]]:
    """(start, end, heading path) of each section; a heading line opens its section."""
    if not markdown:
        yield 0, len(text), ""
        return
    path: list[tuple[int, str]] = []
    start, heading, in_fence, pos = 0, "", False, 0
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _HEADING.match(line.rstrip("\r\n"))):
            if pos > start:
                yield start, pos, heading
            level = len(m.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, m.group(2))]
            start, heading = pos, " > ".join(title for _, title in path if title)
        pos += len(line)
    if pos > start:
        yield start, pos, heading


def _units(text: str, start: int, end: int, size: int) -> Iterator[_Unit]:
    """Sentences and lines of a section, each no bigger than ``size`` tokens."""
    paragraph = 0
    for block in re.finditer(r"[^\n]+(?:\n[ \t]*\S[^\n]*)*", text[start:end]):
        paragraph += 1
        base = start + block.start()
        for a, b in _sentences(block.group()):
            piece = text[base + a : base + b]
            if not piece.strip():
                continue
            a, b = _trim(text, base + a, base + b)
            tokens = approx_tokens(text[a:b])
            if tokens <= size:
                yield _Unit(a, b, tokens, paragraph)
            else:
                yield from _hard_split(text, a, b, size, paragraph)


def _sentences(block: str) -> Iterator[tuple[int, int]]:
    """Offsets of the lines of a block, each split further at sentence ends."""
    for line in re.finditer(r"[^\n]+", block):
        cut = line.start()
        for end in _SENTENCE_END.finditer(line.group()):
            stop = line.start() + end.end()
            yield cut, stop
            cut = stop
        if cut < line.end():
            yield cut, line.end()


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _hard_split(text: str, a: int, b: int, size: int, paragraph: int) -> Iterator[_Unit]:
    """Cut an oversized sentence between tokens (or inside a giant word)."""
    piece_start, count, last_end = a, 0, a
    for m in _TOKEN.finditer(text, a, b):
        cost = 1 + len(m.group()) // _LONG_WORD
        if cost > size:  # one word longer than a whole chunk: cut it into slices
            if count:
                yield _Unit(piece_start, last_end, count, paragraph)
            step = max(1, (size - 1) * _LONG_WORD)
            for s in range(m.start(), m.end(), step):
                e = min(s + step, m.end())
                yield _Unit(s, e, approx_tokens(text[s:e]), paragraph)
            piece_start, count, last_end = m.end(), 0, m.end()
            continue
        if count and count + cost > size:
            yield _Unit(piece_start, last_end, count, paragraph)
            count = 0
        if not count:
            piece_start = m.start()
        count += cost
        last_end = m.end()
    if count:
        yield _Unit(piece_start, last_end, count, paragraph)


def _pack(units: list[_Unit], settings: ChunkerSettings) -> Iterator[tuple[int, int]]:
    """Group consecutive units into chunks; yields (first, last) unit indexes."""
    i = 0
    while i < len(units):
        first, total, j = i, 0, i
        while j < len(units) and total + units[j].tokens <= settings.size:
            if j > i and _paragraph_break(units, i, j, total, settings.size):
                break
            total += units[j].tokens
            j += 1
        j = max(j, i + 1)  # a unit always fits on its own (units are <= size)
        yield first, j - 1
        if j >= len(units):
            return
        i = _overlap_start(units, first, j, settings)


def _paragraph_break(units: list[_Unit], i: int, j: int, total: int, size: int) -> bool:
    """End the chunk at a paragraph boundary when the next paragraph will not fit anyway."""
    if units[j].paragraph == units[j - 1].paragraph or total < size // 2:
        return False
    rest = sum(u.tokens for u in units[j:] if u.paragraph == units[j].paragraph)
    return total + rest > size


def _overlap_start(units: list[_Unit], first: int, nxt: int, settings: ChunkerSettings) -> int:
    """Index where the next chunk starts: back up over whole units worth <= overlap tokens."""
    start, budget = nxt, settings.overlap
    while start - 1 > first and units[start - 1].tokens <= budget:
        if units[start - 1].tokens + units[nxt].tokens > settings.size:
            break
        budget -= units[start - 1].tokens
        start -= 1
    room = settings.size - sum(u.tokens for u in units[start:nxt])
    return start if units[nxt].tokens <= room else nxt

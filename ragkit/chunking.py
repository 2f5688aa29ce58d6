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

A text too big to hold (a 50 MB log on one line) is chunked from an iterator
of pieces by :func:`chunk_stream`, which gives exactly the chunks
:func:`chunk_text` gives for the whole text.  Each round chunks the text held
so far, keeps the chunks that the text still to come cannot change, and
carries the rest into the next round: it restarts at the first unfinished
chunk, with that chunk's overlap and the way its first unit was being cut
(a whole sentence, line by line, or word by word), so nothing is cut at a
window's edge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import ClassVar, NamedTuple

__all__ = ["ChunkerSettings", "Span", "approx_tokens", "chunk_stream", "chunk_text"]

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
_MARKER_START = re.compile(r" {0,3}(?:[#`~]|$)")  # a line that may yet become a marker
#: Text :func:`chunk_stream` may carry from round to round before it cuts anyway.
MAX_CARRY = 8_000_000


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
    """A run of text never cut by packing: a sentence, a line or a hard-split piece.

    ``mode`` and ``glue`` say how to regenerate the units from this one on
    (see :class:`_Restart`).
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


@dataclass(frozen=True)
class _Restart:
    """Where a round of :func:`chunk_stream` picks up (absolute offsets).

    The units are regenerated from ``pos`` (a unit start, or a section start):
    ``mode`` "fresh" if a sentence starts there, "lines" if the sentence is
    being cut line by line, "hard" if the line is being cut word by word;
    ``glue``: a section's heading line may still join the paragraph there;
    ``sentence_end``: where a sentence cut word by word ends (-1: not known
    yet), as a resumed search could miss an end mark that straddles ``pos``.
    The first chunk starts at ``lead`` (its overlap; -1 for none).
    """

    pos: int = 0
    mode: str = "fresh"
    glue: bool = False
    sentence_end: int = -1
    lead: int = -1
    lead_tokens: int = 0
    outline: _Outline = _Outline()


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
    for start, end, heading, has_heading_line in _sections(text, markdown, 0, len(text)):
        units = _units(text, start, end, settings, has_heading_line)
        spans.extend(span for span, *_ in _packed(text, units, settings, heading))
    return spans


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


def _outline_at(text: str, start: int, stop: int, outline: _Outline) -> _Outline:
    """The outline in force at ``stop``, from the one at ``start``."""
    for m in _MARKER.finditer(text, start):
        if m.start() >= stop:
            break
        outline = outline.after(m) or outline
    return outline


def _units(
    text: str, start: int, end: int, settings: ChunkerSettings, has_heading_line: bool,
    mode: str = "fresh", open_end: int | None = None, sentence_end: int = -1,
) -> list[_Unit]:
    """The section's sentences (or smaller pieces), each at most ``settings.size`` tokens.

    ``mode`` and ``sentence_end`` say how the first sentence is cut (see
    :class:`_Restart`).  With
    ``open_end`` (== ``end``), more text follows: the units stop before the
    first one that text could change.
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
    (see :class:`_Restart`).  ``is_open``: the sentence runs on past ``end``;
    None is yielded in place of the first unit the rest could change.
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


def _totals(units: list[_Unit]) -> dict[int, int]:
    """Tokens per paragraph."""
    totals: dict[int, int] = {}
    for unit in units:
        totals[unit.paragraph] = totals.get(unit.paragraph, 0) + unit.tokens
    return totals


def _packed(
    text: str, units: list[_Unit], settings: ChunkerSettings, heading: str,
    lead: int = -1, lead_tokens: int = 0,
) -> Iterator[tuple[Span, int, int, int, int]]:
    """Group a section's units into chunks, each overlapping the one before.

    Yields each chunk with its first unit, the unit after it, and the lead
    (overlap offset, -1 for none, and its tokens) it started with.
    """
    totals = _totals(units)
    i = 0
    while i < len(units):
        start = units[i].start if lead < 0 else lead
        total, j = lead_tokens + units[i].tokens, i + 1
        while j < len(units) and _fits(units, totals, j, total, settings.size):
            total += units[j].tokens
            j += 1
        end = units[j - 1].end
        yield Span(start, end, text[start:end], heading), i, j, lead, lead_tokens
        if j < len(units):
            lead, lead_tokens = _overlap(text, units, totals, (i, j, start), settings)
        i = j


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


def chunk_stream(
    pieces: Iterable[str], settings: ChunkerSettings = DEFAULT_SETTINGS, *,
    markdown: bool = False, max_carry: int = MAX_CARRY,
) -> Iterator[Span]:
    """The chunks of ``"".join(pieces)``, found without holding the whole text.

    Offsets count from the start of the whole text, and the chunks are those
    of :func:`chunk_text`, unless more than ``max_carry`` characters give the
    chunker nowhere to stop (megabytes of blanks): the text is cut there.

    >>> pieces = ["One. Tw", "o. Thr", "ee."]
    >>> [(s.start, s.text) for s in chunk_stream(pieces, ChunkerSettings(size=4, overlap=2))]
    [(0, 'One. Two.'), (5, 'Two. Three.')]
    """
    buf, base, restart = "", 0, _Restart()
    for piece in pieces:
        buf += piece
        spans, restart = _round(buf, base, restart, settings, markdown)
        yield from spans
        keep = _keep(restart, base)
        if len(buf) - (keep - base) > max_carry:  # nowhere to stop: cut here
            yield from _round(buf, base, restart, settings, markdown, final=True)[0]
            outline = _outline_at(buf, restart.pos - base, len(buf), restart.outline)
            restart = _Restart(base + len(buf), outline=outline)
            keep = _keep(restart, base)
        buf, base = buf[keep - base :], keep
    yield from _round(buf, base, restart, settings, markdown, final=True)[0]


def _keep(restart: _Restart, base: int) -> int:
    """Where the text a round must carry starts: the lead, and a character before the restart
    (so that ``^`` does not match in mid-line)."""
    keep = max(base, restart.pos - 1)
    return min(keep, restart.lead) if restart.lead >= 0 else keep


def _round(
    buf: str, base: int, restart: _Restart, settings: ChunkerSettings, markdown: bool,
    final: bool = False,
) -> tuple[list[Span], _Restart]:
    """The finished chunks of ``buf`` (the text from offset ``base`` on), and the next restart."""
    start = restart.pos - base
    end = len(buf) if final else _view_end(buf, start, markdown)
    sections = _sections(buf, markdown, start, end, restart.outline, restart.glue)
    spans: list[Span] = []
    for n, (s, e, heading, glue) in enumerate(sections):
        resumed = s == start  # the section the restart point is in
        lead = _local(restart.lead, base, resumed)
        is_open = not final and n == len(sections) - 1
        units = _units(buf, s, e, settings, glue, restart.mode if resumed else "fresh",
                       e if is_open else None, _local(restart.sentence_end, base, resumed))
        done = _done_test(units, settings.size) if is_open else None
        for span, i, j, lead_i, tokens_i in _packed(
            buf, units, settings, heading, lead, restart.lead_tokens if resumed else 0
        ):
            if done and not done(i, j):
                unit = units[i]
                outline = _outline_at(buf, start, unit.start, restart.outline)
                return spans, _Restart(base + unit.start, unit.mode, unit.glue,
                                       _local(unit.sentence_end, -base),
                                       _local(lead_i, -base), tokens_i, outline)
            spans.append(Span(base + span.start, base + span.end, span.text, span.heading))
        if is_open and not resumed:  # a new section with nothing finished yet
            return spans, _Restart(base + s, outline=_outline_at(buf, start, s, restart.outline))
    return spans, restart


def _local(offset: int, base: int, applies: bool = True) -> int:
    """``offset`` moved by ``-base``; -1 stays -1 (as does anything that does not apply)."""
    return offset - base if applies and offset >= 0 else -1


def _done_test(units: list[_Unit], size: int) -> Callable[[int, int], bool]:
    """Whether the chunk of units ``i``..``j-1`` is final when text follows the last unit.

    Text to come can only add to the last paragraph: a chunk is final if it
    has a next unit to look at and did not weigh that paragraph's total,
    unless the total already exceeds the chunk size.
    """
    last = units[-1].paragraph if units else -1
    first = next((k for k, u in enumerate(units) if u.paragraph == last), len(units))
    settled = sum(u.tokens for u in units[first:]) > size
    return lambda i, j: j < len(units) and (settled or not i < first <= j)


def _view_end(buf: str, start: int, markdown: bool) -> int:
    """How far a round may read: all of ``buf``, but for a last markdown line that may
    yet turn out to be a heading or a fence."""
    if not markdown:
        return len(buf)
    line = buf.rfind("\n", start) + 1
    if not line and start and buf[start - 1] != "\n":
        return len(buf)  # the last line began before the restart: it is plain text
    line = max(line, start)
    return line if _MARKER_START.match(buf, line) else len(buf)

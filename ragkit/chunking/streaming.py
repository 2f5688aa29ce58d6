"""Chunking a text too big to hold, from an iterator of pieces (:func:`chunk_stream`).

A text too big to hold (a 50 MB log on one line) is chunked from an iterator
of pieces by :func:`chunk_stream`, which gives exactly the chunks
:func:`~ragkit.chunking.text.chunk_text` gives for the whole text.  Each round
chunks the text held so far, keeps the chunks that the text still to come
cannot change, and carries the rest into the next round: it restarts at the
first unfinished chunk, with that chunk's overlap and the way its first unit
was being cut (a whole sentence, line by line, or word by word), so nothing is
cut at a window's edge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from .chunk import Chunk
from .packing import _packed
from .units import (
    _MARKER,
    DEFAULT_SETTINGS,
    ChunkerSettings,
    _Outline,
    _sections,
    _Unit,
    _units,
)

__all__ = ["MAX_CARRY", "chunk_stream"]

_MARKER_START = re.compile(r" {0,3}(?:[#`~]|$)")  # a line that may yet become a marker
#: Text :func:`chunk_stream` may carry from round to round before it cuts anyway.
MAX_CARRY = 8_000_000


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
    outline: _Outline = _Outline()  # noqa: RUF009 - a frozen dataclass, safe to share


def chunk_stream(
    pieces: Iterable[str], settings: ChunkerSettings = DEFAULT_SETTINGS, *,
    markdown: bool = False, max_carry: int = MAX_CARRY,
) -> Iterator[Chunk]:
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
) -> tuple[list[Chunk], _Restart]:
    """The finished chunks of ``buf`` (the text from offset ``base`` on), and the next restart."""
    start = restart.pos - base
    end = len(buf) if final else _view_end(buf, start, markdown)
    sections = _sections(buf, markdown, start, end, restart.outline, restart.glue)
    spans: list[Chunk] = []
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
            spans.append(replace(span, start=base + span.start, end=base + span.end))
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


def _outline_at(text: str, start: int, stop: int, outline: _Outline) -> _Outline:
    """The outline in force at ``stop``, from the one at ``start``."""
    for m in _MARKER.finditer(text, start):
        if m.start() >= stop:
            break
        outline = outline.after(m) or outline
    return outline

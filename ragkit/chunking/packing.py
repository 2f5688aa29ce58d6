"""Packing units into chunks, each overlapping the one before.

A chunk takes whole units while they fit; a new paragraph joins only if all
of it fits.  The next chunk starts with a lead-in from this one: whole
trailing units if any fit the overlap, else trailing words.  Every chunk is a
:class:`~.chunk.Chunk` of its source: ``text == source[start:end]`` with no
surrounding whitespace, so a citation can point at exact offsets.
"""

from __future__ import annotations

from collections.abc import Iterator

from .chunk import Chunk
from .units import _CHARS_PER_PIECE, _CJK_CHAR, _TOKEN, ChunkerSettings, _Unit

__all__: list[str] = []  # the chunk type is :class:`.chunk.Chunk`


def _totals(units: list[_Unit]) -> dict[int, int]:
    """Tokens per paragraph."""
    totals: dict[int, int] = {}
    for unit in units:
        totals[unit.paragraph] = totals.get(unit.paragraph, 0) + unit.tokens
    return totals


def _packed(
    text: str, units: list[_Unit], settings: ChunkerSettings, heading: str,
    lead: int = -1, lead_tokens: int = 0,
) -> Iterator[tuple[Chunk, int, int, int, int]]:
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
        yield Chunk(text[start:end], start, end, heading), i, j, lead, lead_tokens
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

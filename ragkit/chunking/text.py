"""Cutting text into overlapping chunks that follow its structure.

The pipeline of one text: markdown sections → units, cut at the strongest
boundary that fits (:mod:`ragkit.chunking.units`) → chunks packed from units,
each overlapping the one before (:mod:`ragkit.chunking.packing`).
:func:`chunk_text` runs it over a whole text; :func:`chunk_stream`
(:mod:`ragkit.chunking.streaming`) over a text too big to hold, with the same
chunks and offsets.

Sizes are in **approximate tokens** (:func:`~ragkit.chunking.units.approx_tokens`).  Every chunk is
a :class:`~.chunk.Chunk` of its source: ``text == source[start:end]`` with no
surrounding whitespace, so a citation can point at exact offsets.
"""

from __future__ import annotations

from .chunk import Chunk
from .packing import _packed
from .units import DEFAULT_SETTINGS, ChunkerSettings, _sections, _units

__all__ = ["chunk_text"]


def chunk_text(
    text: str, settings: ChunkerSettings = DEFAULT_SETTINGS, *, markdown: bool = False
) -> list[Chunk]:
    """Split ``text`` into spans of at most ``settings.size`` approximate tokens.

    >>> doc = "# Install\\n\\nRun it.\\n\\n## From source\\n\\nClone it."
    >>> for span in chunk_text(doc, markdown=True):
    ...     print(repr(span.heading), repr(span.text))
    'Install' '# Install\\n\\nRun it.'
    'Install > From source' '## From source\\n\\nClone it.'
    >>> [s.text for s in chunk_text("One. Two. Three.", ChunkerSettings(size=4, overlap=2))]
    ['One. Two.', 'Two. Three.']
    """
    spans: list[Chunk] = []
    for start, end, heading, has_heading_line in _sections(text, markdown, 0, len(text)):
        units = _units(text, start, end, settings, has_heading_line)
        spans.extend(span for span, *_ in _packed(text, units, settings, heading))
    return spans

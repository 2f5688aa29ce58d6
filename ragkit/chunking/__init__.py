"""Chunking: text -> chunks.

Text is cut into units at the strongest boundary that fits (:mod:`.units`),
units are packed into overlapping chunks (:mod:`.packing`; each a :class:`.chunk.Chunk`,
the one chunk type from here to the store and back), over a whole text
(:mod:`.text`) or streamed in windows for a text too big to hold
(:mod:`.streaming`), with the same chunks.  The names below are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = ["Chunk", "ChunkerSettings", "approx_tokens", "chunk_stream", "chunk_text"]

# name -> module that defines it
_EXPORTS = {
    "ChunkerSettings": "units", "approx_tokens": "units",
    "Chunk": "chunk",
    "chunk_text": "text",
    "chunk_stream": "streaming",
}

if TYPE_CHECKING:
    from .chunk import Chunk
    from .streaming import chunk_stream
    from .text import chunk_text
    from .units import ChunkerSettings, approx_tokens


__getattr__ = lazy_exports(__name__, _EXPORTS)

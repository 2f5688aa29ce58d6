"""Chunking: text -> chunks.

Text is cut into units at the strongest boundary that fits (:mod:`.units`),
units are packed into overlapping chunks (:mod:`.packing`), over a whole text
(:mod:`.text`) or streamed in windows for a text too big to hold
(:mod:`.streaming`), with the same chunks.  The names below are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ChunkerSettings", "Span", "approx_tokens", "chunk_stream", "chunk_text"]

# name -> module that defines it
_EXPORTS = {
    "ChunkerSettings": "units", "approx_tokens": "units",
    "Span": "packing",
    "chunk_text": "text",
    "chunk_stream": "streaming",
}

if TYPE_CHECKING:
    from .packing import Span
    from .streaming import chunk_stream
    from .text import chunk_text
    from .units import ChunkerSettings, approx_tokens


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

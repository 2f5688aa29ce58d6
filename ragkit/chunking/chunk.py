"""The one chunk type, from the chunker through the store and back out of it.

The chunker makes a :class:`Chunk` of its source (``text == source[start:end]``,
stripped, under its heading path); ingest adds the page it came from; the store
gives it an ``id`` and the ``path`` of its file when it reads it back.  A
search result (:class:`ragkit.retrieval.Hit`) is a chunk plus its rank and scores.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Chunk"]


@dataclass(frozen=True)
class Chunk:
    """One chunk of a file's text and where it is.

    ``page``: the PDF page, slide, sheet... (see :func:`ragkit.loading.formats.location`);
    ``path`` and ``id`` are set once the chunk is stored (before: ``""`` and -1).
    """

    text: str
    start: int
    end: int
    heading: str = ""
    page: int | None = None
    path: str = ""
    id: int = -1

"""Retrieval: a query vector in, ranked :class:`Hit` objects out."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .store import Store

__all__ = ["Hit", "display_path", "search_vector"]


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk and where it came from."""

    rank: int
    score: float
    id: int
    path: str  # absolute path of the source file
    source: str  # the path as shown to users (relative to the working directory if inside it)
    page: int | None
    heading: str
    text: str
    start: int = 0
    end: int = 0

    @property
    def location(self) -> str:
        """``source:page`` for paged documents, else ``source``.

        >>> Hit(1, 0.5, 1, "/x/h.pdf", "h.pdf", 3, "", "t").location
        'h.pdf:3'
        """
        return f"{self.source}:{self.page}" if self.page is not None else self.source

    @property
    def citation(self) -> str:
        """Location plus heading path, as shown next to a passage."""
        return f"{self.location} — {self.heading}" if self.heading else self.location

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as ``ragkit search --json`` prints it."""
        return asdict(self)


def display_path(path: str, cwd: str | None = None) -> str:
    """Show ``path`` relative to the working directory when it lies inside it.

    >>> display_path("/home/u/docs/a.md", cwd="/home/u")
    'docs/a.md'
    >>> display_path("/srv/b.md", cwd="/home/u")
    '/srv/b.md'
    """
    base = cwd if cwd is not None else os.getcwd()
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return path


def search_vector(store: Store, vector: np.ndarray, k: int) -> list[Hit]:
    """The ``k`` chunks nearest to ``vector`` by cosine similarity, best first."""
    pairs = store.search(vector, k)
    chunks = store.chunks([cid for cid, _ in pairs])
    hits: list[Hit] = []
    for cid, score in pairs:
        chunk = chunks.get(cid)
        if chunk is None:  # removed by a writer between the two reads
            continue
        hits.append(
            Hit(len(hits) + 1, score, cid, chunk.path, display_path(chunk.path), chunk.page,
                chunk.heading, chunk.text, chunk.start, chunk.end)
        )
    return hits

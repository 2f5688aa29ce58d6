"""The store interface: what ingest, retrieval, ask, serve and mcp may call on an index.

Two stores implement it: :class:`ragkit.store.local.Store` (SQLite + FAISS in an
index folder) and :class:`ragkit.store.milvus.MilvusStore` (collections in a
Milvus server or a Milvus Lite file).  Nothing outside :mod:`ragkit.store` knows
which one it holds: :func:`ragkit.store.opening.open_store` picks it from the
index's manifest.

The contract both keep:

* Chunk ids are integers, unique in the index and never reused for other text.
* Reads inside one :meth:`IndexStore.reading` block see one state: whole files
  as committed, never part of a file being written.
* A :meth:`IndexStore.transaction` lands whole or not at all, as readers see it,
  also when the process is killed in the middle; a re-run of the ingest finds
  every file exactly once.
* Scores: :meth:`IndexStore.search` returns cosines (vectors are normalized),
  :meth:`IndexStore.keyword_search` BM25 scores (higher is better); fusion and
  abstention are not the store's business (:mod:`ragkit.retrieval`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..chunking.chunk import Chunk
from .tables import FileRecord

__all__ = ["IndexStore", "StoreWriter"]


class StoreWriter(Protocol):
    """The writes of one transaction (see :meth:`IndexStore.transaction`)."""

    def remove_file(self, path: str) -> None:
        """Forget a file and its chunks."""

    def add_chunks(self, path: str, rows: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Add chunks of a file (which :meth:`touch_file` records once all are in)."""

    def touch_file(self, record: FileRecord) -> None:
        """Record a file's hash, mtime, size and chunk count."""

    def rename_file(self, old: str, new: str) -> None:
        """Give a file and its chunks a new key (``new`` must not be indexed)."""


class IndexStore(Protocol):
    """One index: its manifest, files, chunks, vectors and keyword terms."""

    #: The index folder (for a Milvus index, the folder holding its manifest).
    root: Path
    #: What the index was built with (see :mod:`ragkit.store.manifest`).
    manifest: dict[str, Any]

    @property
    def dimension(self) -> int:
        """Length of the stored vectors."""

    def update_manifest(self, **fields: Any) -> None:
        """Set (or, given None, remove) optional manifest fields."""

    def close(self) -> None:
        """Release connections, locks and caches."""

    def lock(self) -> None:
        """Take the writer lock, or raise :class:`~ragkit.errors.IndexBusyError` at once."""

    def unlock(self) -> None:
        """Release the writer lock if this process holds it."""

    def reading(self) -> contextlib.AbstractContextManager[None]:
        """Make the reads of this thread inside the block see one committed state."""

    def files(self) -> dict[str, FileRecord]:
        """Every indexed file, keyed by path."""

    def count(self) -> int:
        """Number of chunks in the index."""

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """Fetch chunks by id (ids that no longer exist are left out)."""

    def chunk_ids(self, paths: Sequence[str]) -> list[int]:
        """Ids of every chunk of the files in ``paths``."""

    def search(
        self, vector: np.ndarray, k: int, ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """Inner-product search: ``k`` (chunk id, cosine) pairs, best first; ``ids`` filter."""

    def keyword_search(
        self, text: str, k: int, ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """BM25 keyword search: ``k`` (chunk id, score) pairs, best first; ``ids`` filter."""

    def cosines(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Cosine of ``vector`` with each stored chunk in ``ids``."""

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of the chunks in ``ids`` that exist."""

    def sample_texts(self, n: int) -> list[str]:
        """Up to ``n`` chunk texts spread over the index (for benchmark queries)."""

    def transaction(self) -> contextlib.AbstractContextManager[StoreWriter]:
        """Group writes: they all land, or none do, as readers see it."""

    def save_vectors(self) -> None:
        """After an ingest: persist or tidy what the writes left (caches, old versions)."""

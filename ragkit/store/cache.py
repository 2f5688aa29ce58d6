"""The FAISS side of the local store: the vector cache of one SQLite generation.

SQLite holds the truth (:mod:`ragkit.store.tables`); the FAISS index is a cache
of its vectors, tagged with the generation it matches.  A reader finds the
cache file for the current generation (``vectors-<gen>.faiss``) or rebuilds
the index from SQLite; a commit brings the index in memory to the new
generation (:meth:`VectorCache._catch_up`) instead of a reload.  Which kind of
index (exact or IVF) and why is in :mod:`ragkit.store.vectors`.

:class:`VectorCache` is a part of :class:`~ragkit.store.local.Store`, split out
by concept; it reads the store's rows through the store's own snapshot.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexCorruptError
from .layout import write_atomic
from .snapshots import Snapshots, apply_commit
from .snapshots import reads as _reads
from .tables import Writer, vectors_from_blobs
from .vectors import (
    needs_new_kind,
    new_exact_index,
    new_ivf_index,
    read_cache,
    training_size,
)

__all__ = ["StoreReads", "VectorCache"]



class StoreReads:
    """What the local store's mixins (its FAISS cache, its keyword search) read through it."""

    def generation(self) -> int:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def reading(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def _query(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        raise NotImplementedError


class VectorCache(StoreReads):
    """The FAISS cache of a :class:`~ragkit.store.local.Store` (a mixin of it)."""

    root: Path
    _published: tuple[int, Any]
    _snapshots: Snapshots

    # Provided by the store (besides the reads of :class:`StoreReads`).
    @property
    def dimension(self) -> int:
        raise NotImplementedError

    def _corrupt(self, detail: str) -> IndexCorruptError:
        raise NotImplementedError

    def _kinds(self) -> tuple[int, int]:
        """(chunks from which the index is IVF, chunks below which it goes back to exact)."""
        raise NotImplementedError

    @_reads
    def _vectors(self) -> Any:
        """The FAISS index of this snapshot's generation, loading or rebuilding it.

        One loaded or rebuilt here (another process committed) is published
        for later searches, unless a newer one already is.
        """
        generation = self.generation()
        published, current = self._published
        if current is not None and published == generation:
            return current
        index = read_cache(self._faiss_path(generation), self.dimension)
        if index is None or index.ntotal != self.count():
            index = self._rebuild_vectors()
        if current is None or generation > published:
            self._published = (generation, index)
        return index

    def _rebuild_vectors(self) -> Any:
        """Recreate the FAISS index from the vectors stored in SQLite.

        Exact below the store's ``APPROX_THRESHOLD`` chunks; above, an IVF index trained
        on an evenly spaced sample, then filled in blocks (peak memory: the index).
        """
        count = self.count()
        if count >= self._kinds()[0]:
            index = new_ivf_index(self.dimension, count, self._sample_vectors(count))
        else:
            index = new_exact_index(self.dimension)
        cursor = self._query("SELECT id, vector FROM chunks ORDER BY id")
        while rows := cursor.fetchmany(4096):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            index.add_with_ids(self._stored_vectors(rows), ids)
        return index

    def _stored_vectors(self, rows: Sequence[tuple[int, Any]]) -> np.ndarray:
        """The vectors of (id, blob) ``rows``; a damaged one is :class:`IndexCorruptError`."""
        try:
            return vectors_from_blobs(rows, self.dimension)
        except ValueError as exc:
            raise self._corrupt(str(exc)) from None

    def _sample_vectors(self, count: int) -> np.ndarray:
        """:func:`~ragkit.store.vectors.training_size` vectors, spread evenly over the ids."""
        wanted = training_size(count)
        top = int(self._query("SELECT MAX(id) FROM chunks").fetchone()[0] or 0)
        step = max(1, top // wanted)
        rows = self._query("SELECT id, vector FROM chunks WHERE id % ? = 0 LIMIT ?",
                           (step, wanted)).fetchall()
        return self._stored_vectors(rows)

    def _faiss_path(self, generation: int) -> Path:
        return self.root / f"vectors-{generation}.faiss"

    def save_vectors(self) -> None:
        """Write the FAISS cache for the current generation and drop older ones.

        An index that crossed ``APPROX_THRESHOLD`` (or shrank below
        ``EXACT_BELOW``) is rebuilt in the other kind first.
        """
        import faiss

        with self.reading():  # searches may read the index meanwhile; a commit may not change it
            generation, index = self.generation(), self._vectors()
            if needs_new_kind(index, *self._kinds()):
                index = self._rebuild_vectors()
                self._published = (generation, index)
            path = self._faiss_path(generation)
            if not path.exists():
                write_atomic(path, lambda name: faiss.write_index(index, name))
        for old in self.root.glob("vectors-*.faiss"):
            if old != path:
                with contextlib.suppress(OSError):
                    old.unlink()

    def _catch_up(self, writer: Writer, db: sqlite3.Connection) -> None:
        """Bring the published FAISS index to the generation just committed (gate held alone).

        One that is not the previous generation's, or that this fails to
        update, is dropped, to be reloaded by the next search.
        """
        row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        generation = int(row[0])
        before, index = self._published
        self._published = (-1, None)
        if index is not None and before == generation - 1:
            apply_commit(index, db, writer.removed, writer.new_ids, self.dimension)
            self._published = (generation, index)


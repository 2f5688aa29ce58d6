"""On-disk storage of one index: SQLite holds the truth, FAISS is a cache of it.

The folder's files (``manifest.json``, ``chunks.sqlite``, ``vectors-<gen>.faiss``,
``.lock``) and which of them ragkit may delete: :mod:`ragkit.store.layout`.

Why this shape: a crash or Ctrl-C must never leave an index that fails to load.
SQLite commits each batch of whole files in one transaction and bumps a
generation counter in the same transaction.  The FAISS file is written under
a new name (temp file + rename) tagged with the generation it matches, so a
reader either finds the file for the current generation or rebuilds the
vectors from SQLite.  No vector can exist without its chunk, or the reverse.

Searches during an ingest, from threads sharing this object or from other
processes, see whole committed files only and never touch a FAISS index
while it changes: each search runs in one read snapshot (:meth:`Store.reading`,
:mod:`ragkit.store.snapshots`) and a commit updates the FAISS index under an
exclusive lock.

Large indexes: from APPROX_THRESHOLD chunks on, the vector cache is an
approximate IVF index; why, and how the kind is chosen, is in
:mod:`ragkit.store.vectors`.  The SQLite schema, rows and writer are in
:mod:`ragkit.store.tables`, the FAISS cache in :mod:`ragkit.store.cache`, keyword
search in :mod:`ragkit.store.fulltext`, the folder's file names and atomic writes
in :mod:`ragkit.store.layout`.  The interface every store implements is
:mod:`ragkit.store.base`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexCorruptError
from .cache import VectorCache
from .fulltext import KeywordSearch
from .layout import (
    DATABASE,
    MANIFEST,
    index_spec,
    read_manifest,
    release_lock,
    take_lock,
    write_manifest,
)
from .manifest import complete_manifest
from .snapshots import Snapshots
from .snapshots import reads as _reads
from .tables import (
    Chunk,
    FileRecord,
    Writer,
    _short,
    connect_reader,
    connect_writer,
    generation_of,
    path_from_db,
    path_to_db,
)
from .vectors import is_ivf, vectors_by_id
from .vectors import search as search_vectors

__all__ = ["APPROX_THRESHOLD", "Store"]

log = logging.getLogger("ragkit")

#: From this many chunks on, the vector cache is an approximate IVF index.
APPROX_THRESHOLD = 50_000
#: An IVF index goes back to exact search when it shrinks below this.
EXACT_BELOW = APPROX_THRESHOLD // 2
#: A filtered search over at most this many ids is exact over just those ids.
EXACT_SUBSET_MAX = 20_000


class Store(KeywordSearch, VectorCache):
    """One index directory: manifest, SQLite database and FAISS vectors."""

    def __init__(self, root: Path, manifest: dict[str, Any], db: sqlite3.Connection) -> None:
        self.root = root
        self.manifest = manifest
        self._db = db  # read-only unless this store created the index; reads use snapshots
        self._writer_db: sqlite3.Connection | None = None  # opened by the first transaction
        # Every read: a pooled connection in one read transaction, holding the gate that a
        # commit takes alone while it updates the FAISS index.
        self._snapshots = self._new_snapshots()
        # (generation, FAISS index), replaced whole; loaded lazily: `ragkit indexes info`
        # never needs it.  Only a commit changes the index itself, holding the gate alone.
        self._published: tuple[int, Any] = (-1, None)
        self._lock_fh: Any = None
        self._counted = (-1, 0)  # (generation, chunks) so searches need not count each time
        # (generation, chunks holding each keyword) for the rarest-terms budget
        self._term_counts: tuple[int, dict[str, int]] = (-1, {})
        #: Called after each commit (a first build publishes the index at its first one).
        self.after_commit: Callable[[], None] | None = None

    def _new_snapshots(self) -> Snapshots:
        return Snapshots(lambda: connect_reader(self.root / DATABASE, index_spec(self.root)),
                         self._damaged)

    # -- opening -----------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, manifest: dict[str, Any]) -> Store:
        """Create an empty index at ``root`` (which must not hold one yet).

        ``manifest`` needs ``embed_model`` and ``dimension``; the other fields
        default to those of a new index (:func:`~ragkit.store.manifest.complete_manifest`).
        """
        root.mkdir(parents=True, exist_ok=True)
        manifest = complete_manifest(manifest)
        db = connect_writer(root / DATABASE, index_spec(root), create=True)
        write_manifest(root, manifest)
        store = cls(root, manifest, db)
        store._writer_db = db
        return store

    @classmethod
    def open(cls, root: Path) -> Store:
        """Open an existing index for reading (a transaction opens it for writing too).

        Unreadable files raise :class:`IndexCorruptError`, an index made by a
        newer ragkit :class:`IndexVersionError`.  Nothing is written: a missing
        or empty database is an error, not a new index.
        """
        manifest = read_manifest(root)
        path = root / DATABASE
        try:
            size = path.stat().st_size
        except OSError as exc:
            detail = "file is missing" if isinstance(exc, FileNotFoundError) else _short(exc)
            raise IndexCorruptError(str(path), detail, index_spec(root)) from None
        if size == 0:
            raise IndexCorruptError(str(path), "file is empty", index_spec(root))
        return cls(root, manifest, connect_reader(path, index_spec(root)))

    def update_manifest(self, **fields: Any) -> None:
        """Set (or, given None, remove) optional manifest fields, written atomically."""
        manifest = {k: v for k, v in {**self.manifest, **fields}.items() if v is not None}
        write_manifest(self.root, manifest)
        self.manifest = manifest

    @staticmethod
    def exists(root: Path) -> bool:
        """Whether ``root`` holds an index."""
        return (root / MANIFEST).exists()

    def close(self) -> None:
        """Release the database, the write lock and the vectors (after running searches)."""
        self.unlock()
        self._snapshots.close()
        if self._writer_db is not None and self._writer_db is not self._db:
            self._writer_db.close()
        self._writer_db = None
        self._db.close()
        self._published = (-1, None)

    # -- locking -----------------------------------------------------------------

    def lock(self) -> None:
        """Take the single-writer lock, or raise :class:`IndexBusyError` at once."""
        self._lock_fh = take_lock(self.root)

    def unlock(self) -> None:
        """Release the writer lock if this process holds it."""
        release_lock(self._lock_fh)
        self._lock_fh = None

    # -- reading -----------------------------------------------------------------

    def reading(self) -> contextlib.AbstractContextManager[None]:
        """Make every read of this thread inside the block see one committed state.

        The SQLite rows and the FAISS vectors are those of one generation: no
        part of a file being written, no chunk without its vector.  A commit
        in this process waits for the block to end, so keep it short (a
        search, not a query embedding).  Nested blocks share the outer one.
        """
        return self._snapshots.reading()

    def _damaged(self, exc: sqlite3.DatabaseError) -> IndexCorruptError:
        return IndexCorruptError(str(self.root / DATABASE), _short(exc), index_spec(self.root))

    @property
    def dimension(self) -> int:
        """Length of the stored vectors."""
        return int(self.manifest["dimension"])

    @_reads
    def generation(self) -> int:
        """Counter bumped by every committed write."""
        try:
            return generation_of(self._query("SELECT value FROM meta WHERE key='generation'"))
        except ValueError as exc:
            raise self._corrupt(str(exc)) from None

    @_reads
    def files(self) -> dict[str, FileRecord]:
        """Every indexed file, keyed by path."""
        rows = self._query("SELECT path, sha256, mtime_ns, size, chunks FROM files")
        records = (FileRecord(path_from_db(r[0]), *r[1:]) for r in rows)
        return {record.path: record for record in records}

    @_reads
    def count(self) -> int:
        """Number of chunks stored (counted once per generation)."""
        generation = self.generation()
        counted = self._counted
        if counted[0] != generation:
            counted = (generation, int(self._query("SELECT COUNT(*) FROM chunks").fetchone()[0]))
            self._counted = counted
        return counted[1]

    @_reads
    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """Fetch chunks by id (ids that no longer exist are left out)."""
        found: dict[int, Chunk] = {}
        for start in range(0, len(ids), 500):
            part = [int(i) for i in ids[start : start + 500]]
            marks = ",".join("?" * len(part))
            rows = self._query(
                "SELECT id, path, page, start, end, heading, text FROM chunks "
                f"WHERE id IN ({marks})",
                part,
            )
            found.update({r[0]: Chunk(id=r[0], path=path_from_db(r[1]), page=r[2], start=r[3],
                                       end=r[4], heading=r[5], text=r[6]) for r in rows})
        return found

    @_reads
    def search(
        self, vector: np.ndarray, k: int, ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """Inner-product search: ``k`` (chunk id, cosine) pairs, best first.

        Exact below :data:`APPROX_THRESHOLD` chunks, approximate (IVF) above.
        With ``ids``, only those chunks are candidates (a path filter).
        """
        index = self._vectors()
        if index.ntotal == 0 or (ids is not None and len(ids) == 0):
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        return search_vectors(index, query, k, ids, EXACT_SUBSET_MAX)

    @property
    def approximate(self) -> bool:
        """Whether searches use the approximate (IVF) index."""
        return is_ivf(self._vectors())

    @_reads
    def cosines(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Cosine of ``vector`` with each stored chunk in ``ids`` (vectors are normalized)."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        return {cid: float(v @ query) for cid, v in self.vectors(ids).items()}

    @_reads
    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of the chunks in ``ids`` that exist."""
        if not len(ids):
            return {}
        return vectors_by_id(self._vectors(), ids)

    @_reads
    def sample_texts(self, n: int) -> list[str]:
        """Up to ``n`` chunk texts spread evenly over the index (for benchmark queries)."""
        top = int(self._query("SELECT MAX(id) FROM chunks").fetchone()[0] or 0)
        step = max(1, top // max(1, n))
        rows = self._query("SELECT text FROM chunks WHERE id % ? = 0 LIMIT ?", (step, n))
        return [r[0] for r in rows]

    @_reads
    def chunk_ids(self, paths: Sequence[str]) -> list[int]:
        """Ids of every chunk of the files in ``paths``."""
        found: list[int] = []
        for start in range(0, len(paths), 500):
            part = [path_to_db(p) for p in paths[start : start + 500]]
            marks = ",".join("?" * len(part))
            rows = self._query(f"SELECT id FROM chunks WHERE path IN ({marks})", part)
            found.extend(r[0] for r in rows)
        return found

    def _query(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Run a read in this thread's snapshot; a damaged database is IndexCorruptError."""
        db = self._snapshots.db  # callers are wrapped in reading() (see _reads)
        assert db is not None
        try:
            return db.execute(sql, tuple(args))
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from exc

    def _kinds(self) -> tuple[int, int]:
        return APPROX_THRESHOLD, EXACT_BELOW  # read at each call: tests lower them

    def _corrupt(self, detail: str) -> IndexCorruptError:
        return IndexCorruptError(str(self.root / DATABASE), detail, index_spec(self.root))

    # -- writing -----------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Writer]:
        """Group writes; they all land, with one generation bump, or none do.

        Searches see none of them before the commit.  The FAISS index is not
        touched until then: the commit holds the gate alone while it commits
        and brings the index to the new generation (:meth:`_catch_up`).
        """
        self._vectors()  # loaded now, so that the commit updates it instead of a reload
        db = self._writable()
        writer = Writer(db, self.dimension)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield writer
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
            with self._snapshots.gate.exclusive():
                db.execute("COMMIT")
                self._catch_up(writer, db)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if self.after_commit is not None:
            self.after_commit()

    def move_to(self, root: Path) -> None:
        """Move the whole index folder to ``root`` (absent, or an empty folder), between writes.

        One ``rename``: the index appears at ``root`` complete, or not at all.
        """
        # Reconnect: SQLite refuses to write a database file that moved while open.
        if self._writer_db is not None and self._writer_db is not self._db:
            self._writer_db.close()
        self._snapshots.close()
        self._db.close()
        try:
            os.rename(self.root, root)
            self.root = root
        finally:
            self._db = self._writer_db = self._connect_writer()
            self._snapshots = self._new_snapshots()

    def _writable(self) -> sqlite3.Connection:
        """The connection that writes, opened on first use (reads keep the read-only one)."""
        if self._writer_db is None:
            self._writer_db = self._connect_writer()
        return self._writer_db

    def _connect_writer(self) -> sqlite3.Connection:
        return connect_writer(self.root / DATABASE, index_spec(self.root))

"""On-disk storage of one index: SQLite holds the truth, FAISS is a cache of it.

Layout of ``indexes/<name>/``::

    manifest.json         embedding model, dimension, chunker settings, ragkit version
    chunks.sqlite         files, chunks (text, metadata and the vector bytes), the FTS5
                          keyword index over them, generation counter
    vectors-<gen>.faiss   FAISS index matching generation <gen>: exact IndexIDMap2(IndexFlatIP)
                          below APPROX_THRESHOLD chunks, IVF (IndexIVFFlat) from there on
    .lock                 held (flock) by the one process writing the index

Why this shape: a crash or Ctrl-C must never leave an index that fails to load.
SQLite commits each batch of whole files in one transaction and bumps a
generation counter in the same transaction.  The FAISS file is written under
a new name (temp file + rename) tagged with the generation it matches, so a
reader either finds the file for the current generation or rebuilds the
vectors from SQLite.  No vector can exist without its chunk, or the reverse.

Large indexes: from APPROX_THRESHOLD chunks on, the vector cache is an
approximate IVF index; why, and how the kind is chosen, is in
:mod:`ragkit.vectors`.  The SQLite schema, rows and writer are in
:mod:`ragkit.tables`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexBusyError, IndexCorruptError
from .home import index_home
from .keywords import fts_query, rarest_terms
from .tables import _SCHEMA, ChunkRow, FileRecord, StoredChunk, _Writer
from .vectors import (
    is_ivf,
    ivf_lists,
    needs_new_kind,
    new_exact_index,
    new_ivf_index,
    training_size,
    vectors_by_id,
)
from .vectors import ivf_probes as ivf_probes  # re-exported
from .vectors import search as search_vectors

__all__ = ["APPROX_THRESHOLD", "ChunkRow", "FileRecord", "Store", "StoredChunk", "ivf_lists",
           "new_exact_index", "new_ivf_index"]

log = logging.getLogger("ragkit")

MANIFEST = "manifest.json"
DATABASE = "chunks.sqlite"
LOCKFILE = ".lock"
FORMAT_VERSION = 1

#: From this many chunks on, the vector cache is an approximate IVF index.
APPROX_THRESHOLD = 50_000
#: An IVF index goes back to exact search when it shrinks below this.
EXACT_BELOW = APPROX_THRESHOLD // 2
#: A filtered search over at most this many ids is exact over just those ids.
EXACT_SUBSET_MAX = 20_000
#: Past APPROX_THRESHOLD chunks, keyword search scores the query's rarest terms that
#: together occur in at most this many chunks (FTS5 scores about 1 chunk per microsecond);
#: if even the rarest term is in more, it alone is scored when it is in at most 8 times as
#: many, and otherwise the query has no keyword worth scoring.
KEYWORD_BUDGET = 400


def _write_atomic(path: Path, data: bytes | Callable[[str], None]) -> None:
    """Write ``path`` so readers see the old file or the new one, never half.

    ``data`` is the bytes, or a function that writes the file named by its argument.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                data(tmp)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def index_spec(root: Path) -> str:
    """How to name the index in ``root`` on the command line, for error messages.

    Its bare name when it lives in the index home (``index_home()``), else its path,
    so ``--index SPEC`` in a suggested command reaches this very index.
    """
    try:
        in_home = root.resolve().parent == index_home().resolve()
    except OSError:
        in_home = False
    return root.name if in_home else str(root)


class Store:
    """One index directory: manifest, SQLite database and FAISS vectors."""

    def __init__(self, root: Path, manifest: dict[str, Any], db: sqlite3.Connection) -> None:
        self.root = root
        self.manifest = manifest
        self._db = db
        self._faiss: Any = None  # loaded lazily: `ragkit indexes info` never needs it
        self._faiss_generation = -1
        self._lock_fh: Any = None
        self._counted = (-1, 0)  # (generation, chunks) so searches need not count each time
        self._term_counts: dict[str, int] = {}  # chunks holding a keyword, this generation
        self._terms_generation = -1

    # -- opening -----------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, manifest: dict[str, Any]) -> Store:
        """Create an empty index at ``root`` (which must not hold one yet)."""
        root.mkdir(parents=True, exist_ok=True)
        manifest = {"format_version": FORMAT_VERSION, **manifest}
        db = cls._connect(root / DATABASE)
        _write_atomic(root / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
        return cls(root, manifest, db)

    @classmethod
    def open(cls, root: Path) -> Store:
        """Open an existing index; unreadable files raise :class:`IndexCorruptError`."""
        manifest_path = root / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict) or "dimension" not in manifest:
                raise ValueError("missing fields")
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(str(manifest_path), _short(exc), index_spec(root)) from exc
        if not (root / DATABASE).exists():
            raise IndexCorruptError(str(root / DATABASE), "file is missing", index_spec(root))
        return cls(root, manifest, cls._connect(root / DATABASE))

    @staticmethod
    def exists(root: Path) -> bool:
        """Whether ``root`` holds an index."""
        return (root / MANIFEST).exists()

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        """Open the database in WAL mode so searches read while an ingest writes."""
        try:
            db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(str(path), _short(exc), index_spec(path.parent)) from exc
        return db

    def close(self) -> None:
        """Release the database, the write lock and the vectors."""
        self.unlock()
        self._db.close()
        self._faiss = None

    # -- locking -----------------------------------------------------------------

    def lock(self) -> None:
        """Take the single-writer lock, or raise :class:`IndexBusyError` at once."""
        fh = open(self.root / LOCKFILE, "a+")  # noqa: SIM115 - held until unlock()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise IndexBusyError(str(self.root)) from None
        self._lock_fh = fh

    def unlock(self) -> None:
        """Release the writer lock if this process holds it."""
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # -- reading -----------------------------------------------------------------

    @property
    def dimension(self) -> int:
        """Length of the stored vectors."""
        return int(self.manifest["dimension"])

    def generation(self) -> int:
        """Counter bumped by every committed write."""
        row = self._query("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0])

    def files(self) -> dict[str, FileRecord]:
        """Every indexed file, keyed by path."""
        rows = self._query("SELECT path, sha256, mtime_ns, size, chunks FROM files")
        return {r[0]: FileRecord(*r) for r in rows}

    def count(self) -> int:
        """Number of chunks stored (counted once per generation)."""
        generation = self.generation()
        if self._counted[0] != generation:
            count = int(self._query("SELECT COUNT(*) FROM chunks").fetchone()[0])
            self._counted = (generation, count)
        return self._counted[1]

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        """Fetch chunks by id (ids that no longer exist are left out)."""
        found: dict[int, StoredChunk] = {}
        for start in range(0, len(ids), 500):
            part = [int(i) for i in ids[start : start + 500]]
            marks = ",".join("?" * len(part))
            rows = self._query(
                "SELECT id, path, page, start, end, heading, text FROM chunks "
                f"WHERE id IN ({marks})",
                part,
            )
            found.update({r[0]: StoredChunk(*r) for r in rows})
        return found

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

    def cosines(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Cosine of ``vector`` with each stored chunk in ``ids`` (vectors are normalized)."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        return {cid: float(v @ query) for cid, v in self.vectors(ids).items()}

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of the chunks in ``ids`` that exist."""
        if not len(ids):
            return {}
        return vectors_by_id(self._vectors(), ids)

    def keyword_search(
        self, text: str, k: int, ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """BM25 keyword search: ``k`` (chunk id, score) pairs, best first (higher = better).

        With ``ids``, only those chunks are candidates (a path filter).  From
        :data:`APPROX_THRESHOLD` chunks on, only the query's rarest terms are
        scored (see :meth:`_rarest_terms`): FTS5 scores every chunk that holds
        any term, and a "the" or "how" would make that most of the index.
        """
        match = fts_query(text)
        if not match or (ids is not None and len(ids) == 0):
            return []
        if self.count() >= APPROX_THRESHOLD:
            match = self._rarest_terms(match)
            if not match:
                return []
        where, args = "chunk_terms MATCH ?", [match]
        if ids is not None:
            where += " AND rowid IN (SELECT value FROM json_each(?))"
            args.append(json.dumps([int(i) for i in ids]))
        rows = self._query(
            f"SELECT rowid, -bm25(chunk_terms) AS s FROM chunk_terms WHERE {where} "
            "ORDER BY s DESC LIMIT ?",
            (*args, k),
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    def _rarest_terms(self, match: str) -> str:
        """The query's rarest terms, as many as hold at most :data:`KEYWORD_BUDGET` chunks.

        Rare terms carry almost all of a BM25 score (a term in half the chunks
        or more scores zero in FTS5), so the ranking barely moves while the work
        stays bounded.  An empty string when every term is very common.
        """
        terms = match.split(" OR ")
        generation = self.generation()
        if generation != self._terms_generation:
            self._term_counts, self._terms_generation = {}, generation
        counts = self._term_counts
        for term in terms:
            if term not in counts:
                row = self._query("SELECT COUNT(*) FROM chunk_terms WHERE chunk_terms MATCH ?",
                                  (term,)).fetchone()
                counts[term] = int(row[0])
        return " OR ".join(rarest_terms(terms, counts, KEYWORD_BUDGET))

    def sample_texts(self, n: int) -> list[str]:
        """Up to ``n`` chunk texts spread evenly over the index (for benchmark queries)."""
        top = int(self._query("SELECT MAX(id) FROM chunks").fetchone()[0] or 0)
        step = max(1, top // max(1, n))
        rows = self._query("SELECT text FROM chunks WHERE id % ? = 0 LIMIT ?", (step, n))
        return [r[0] for r in rows]

    def chunk_ids(self, paths: Sequence[str]) -> list[int]:
        """Ids of every chunk of the files in ``paths``."""
        found: list[int] = []
        for start in range(0, len(paths), 500):
            part = list(paths[start : start + 500])
            marks = ",".join("?" * len(part))
            rows = self._query(f"SELECT id FROM chunks WHERE path IN ({marks})", part)
            found.extend(r[0] for r in rows)
        return found

    def _query(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Run a read; a damaged database becomes :class:`IndexCorruptError`."""
        try:
            return self._db.execute(sql, tuple(args))
        except sqlite3.DatabaseError as exc:
            path = self.root / DATABASE
            raise IndexCorruptError(str(path), _short(exc), index_spec(self.root)) from exc

    # -- vectors -----------------------------------------------------------------

    def _vectors(self) -> Any:
        """The FAISS index for the current generation, loading or rebuilding it."""
        generation = self.generation()
        if self._faiss is not None and self._faiss_generation == generation:
            return self._faiss
        import faiss

        path = self._faiss_path(generation)
        index = None
        if path.exists():
            try:
                index = faiss.read_index(str(path))
            except RuntimeError as exc:
                log.warning("%s is unreadable (%s); rebuilding it from %s", path, exc, DATABASE)
        if index is None or index.ntotal != self.count():
            index = self._rebuild_vectors()
        self._faiss, self._faiss_generation = index, generation
        return index

    def _rebuild_vectors(self) -> Any:
        """Recreate the FAISS index from the vectors stored in SQLite.

        Exact below :data:`APPROX_THRESHOLD` chunks; above, an IVF index trained
        on an evenly spaced sample, then filled in blocks (peak memory: the index).
        """
        count = self.count()
        if count >= APPROX_THRESHOLD:
            index = new_ivf_index(self.dimension, count, self._sample_vectors(count))
        else:
            index = new_exact_index(self.dimension)
        cursor = self._query("SELECT id, vector FROM chunks ORDER BY id")
        while rows := cursor.fetchmany(4096):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            index.add_with_ids(vecs.reshape(len(rows), self.dimension), ids)
        return index

    def _sample_vectors(self, count: int) -> np.ndarray:
        """:func:`~ragkit.vectors.training_size` vectors, spread evenly over the ids."""
        wanted = training_size(count)
        top = int(self._query("SELECT MAX(id) FROM chunks").fetchone()[0] or 0)
        step = max(1, top // wanted)
        rows = self._query("SELECT vector FROM chunks WHERE id % ? = 0 LIMIT ?", (step, wanted))
        data = b"".join(r[0] for r in rows)
        return np.frombuffer(data, dtype=np.float32).reshape(-1, self.dimension)

    def _faiss_path(self, generation: int) -> Path:
        return self.root / f"vectors-{generation}.faiss"

    def save_vectors(self) -> None:
        """Write the FAISS cache for the current generation and drop older ones.

        An index that crossed :data:`APPROX_THRESHOLD` (or shrank below
        :data:`EXACT_BELOW`) is rebuilt in the other kind first.
        """
        import faiss

        index = self._vectors()
        if needs_new_kind(index, APPROX_THRESHOLD, EXACT_BELOW):
            index = self._faiss = self._rebuild_vectors()
        path = self._faiss_path(self._faiss_generation)
        if not path.exists():
            _write_atomic(path, lambda name: faiss.write_index(index, name))
        for old in self.root.glob("vectors-*.faiss"):
            if old != path:
                with contextlib.suppress(OSError):
                    old.unlink()

    # -- writing -----------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Writer]:
        """Group writes; they all land, with one generation bump, or none do.

        New vectors go into the in-memory FAISS index as they are written (so a
        transaction holding a huge file does not hold its vectors twice); a
        rolled-back transaction drops that index, to be reloaded when needed.
        """
        index = self._vectors()
        writer = _Writer(self._db, self.dimension, index)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield writer
            self._db.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'"
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._faiss, self._faiss_generation = None, -1
            raise
        if writer.removed:  # removals are mirrored once, at the end: each one scans the index
            index.remove_ids(np.array(writer.removed, dtype=np.int64))
        self._faiss_generation = self.generation()


def _short(exc: BaseException) -> str:
    """First line of an exception message, for one-line errors."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

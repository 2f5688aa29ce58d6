"""The SQLite side of an index: its schema, its rows, and the writer of one transaction.

``chunks.sqlite`` holds the files, the chunks (text, metadata and the vector
bytes), the FTS5 keyword index over them and the generation counter.  A
:class:`_Writer` writes inside one :meth:`~ragkit.store.Store.transaction`:
chunk ids are assigned as AUTOINCREMENT would, and the ids added and removed
are noted for the FAISS cache, which the store updates after the commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .keywords import keyword_terms

__all__ = ["ChunkRow", "FileRecord", "StoredChunk"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL, chunks INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, page INTEGER,
    start INTEGER NOT NULL, end INTEGER NOT NULL, heading TEXT NOT NULL,
    text TEXT NOT NULL, vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_path ON chunks(path);
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_terms USING fts5(
    terms, tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT OR IGNORE INTO meta VALUES ('generation', '0');
"""


@dataclass(frozen=True)
class FileRecord:
    """What the index remembers about one source file."""

    path: str
    sha256: str
    mtime_ns: int
    size: int
    chunks: int


@dataclass(frozen=True)
class ChunkRow:
    """A chunk on its way into the store."""

    page: int | None
    start: int
    end: int
    heading: str
    text: str


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as read back from the store."""

    id: int
    path: str
    page: int | None
    start: int
    end: int
    heading: str
    text: str


class _Writer:
    """Writes inside one :meth:`Store.transaction`, noting ids for the FAISS cache."""

    def __init__(self, db: sqlite3.Connection, dimension: int) -> None:
        self._db = db
        self._dimension = dimension
        self.removed: list[int] = []  # ids of chunks deleted
        self.new_ids = range(0)  # ids given to new chunks (some may be deleted again)

    def remove_file(self, path: str) -> None:
        """Forget a file and its chunks."""
        ids = [r[0] for r in self._db.execute("SELECT id FROM chunks WHERE path=?", (path,))]
        self.removed.extend(ids)
        self._db.executemany("DELETE FROM chunk_terms WHERE rowid=?", [(i,) for i in ids])
        self._db.execute("DELETE FROM chunks WHERE path=?", (path,))
        self._db.execute("DELETE FROM files WHERE path=?", (path,))

    def put_file(self, record: FileRecord, rows: Sequence[ChunkRow], vectors: np.ndarray) -> None:
        """Replace a file's chunks with ``rows`` and their ``vectors``."""
        self.remove_file(record.path)
        self.add_chunks(record.path, rows, vectors)
        self.touch_file(record)

    def add_chunks(self, path: str, rows: Sequence[ChunkRow], vectors: np.ndarray) -> None:
        """Add chunks of a file (which :meth:`touch_file` records once all are in)."""
        if len(rows) != len(vectors):
            raise ValueError(f"{len(rows)} chunks but {len(vectors)} vectors")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self._dimension)
        # Ids are assigned here, as AUTOINCREMENT would (never reused; the write lock is
        # held), so that both tables are filled with one executemany each.
        seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='chunks'").fetchone()
        first = (int(seq[0]) if seq else 0) + 1
        ids = list(range(first, first + len(rows)))
        self._db.executemany(
            "INSERT INTO chunks (id, path, page, start, end, heading, text, vector) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(cid, path, row.page, row.start, row.end, row.heading, row.text,
              vector.tobytes()) for cid, row, vector in zip(ids, rows, vectors, strict=True)],
        )
        self._db.executemany(
            "INSERT INTO chunk_terms (rowid, terms) VALUES (?, ?)",
            [(cid, " ".join(keyword_terms(f"{row.heading} {row.text}")))
             for cid, row in zip(ids, rows, strict=True)],
        )
        if ids:
            self.new_ids = range(self.new_ids.start if self.new_ids else first, ids[-1] + 1)

    def touch_file(self, record: FileRecord) -> None:
        """Record a file's hash, mtime and size without touching its chunks."""
        self._db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
            (record.path, record.sha256, record.mtime_ns, record.size, record.chunks),
        )

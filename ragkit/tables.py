"""The SQLite side of an index: its schema, its rows, and the writer of one transaction.

``chunks.sqlite`` holds the files, the chunks (text, metadata and the vector
bytes), the FTS5 keyword index over them and the generation counter.  A
:class:`_Writer` writes inside one :meth:`~ragkit.store.Store.transaction`:
chunk ids are assigned as AUTOINCREMENT would, and new vectors go straight
into the in-memory FAISS cache as well.

A file's path (its key, see :mod:`ragkit.paths`) is stored as TEXT, or as the
BLOB of its bytes when the name is not valid UTF-8: :func:`path_to_db` and
:func:`path_from_db` convert, losslessly.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .keywords import keyword_terms

__all__ = ["ChunkRow", "FileRecord", "StoredChunk", "path_from_db", "path_to_db"]

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


def path_to_db(path: str) -> str | bytes:
    """A file's key as SQLite stores it: TEXT, or its bytes if it is not valid UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of the name, held as surrogates
        return os.fsencode(path)
    return path


def path_from_db(value: str | bytes) -> str:
    """A key read from SQLite, back as :func:`path_to_db` got it."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


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
    """Writes inside one :meth:`Store.transaction`; new vectors go straight into FAISS."""

    def __init__(self, db: sqlite3.Connection, dimension: int, index: Any) -> None:
        self._db = db
        self._dimension = dimension
        self._index = index
        self.removed: list[int] = []

    def remove_file(self, path: str) -> None:
        """Forget a file and its chunks."""
        key = path_to_db(path)
        ids = [r[0] for r in self._db.execute("SELECT id FROM chunks WHERE path=?", (key,))]
        self.removed.extend(ids)
        self._db.executemany("DELETE FROM chunk_terms WHERE rowid=?", [(i,) for i in ids])
        self._db.execute("DELETE FROM chunks WHERE path=?", (key,))
        self._db.execute("DELETE FROM files WHERE path=?", (key,))

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
        key = path_to_db(path)
        self._db.executemany(
            "INSERT INTO chunks (id, path, page, start, end, heading, text, vector) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(cid, key, row.page, row.start, row.end, row.heading, row.text,
              vector.tobytes()) for cid, row, vector in zip(ids, rows, vectors, strict=True)],
        )
        self._db.executemany(
            "INSERT INTO chunk_terms (rowid, terms) VALUES (?, ?)",
            [(cid, " ".join(keyword_terms(f"{row.heading} {row.text}")))
             for cid, row in zip(ids, rows, strict=True)],
        )
        if ids:
            self._index.add_with_ids(vectors, np.array(ids, dtype=np.int64))

    def touch_file(self, record: FileRecord) -> None:
        """Record a file's hash, mtime and size without touching its chunks."""
        self._db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
            (path_to_db(record.path), record.sha256, record.mtime_ns, record.size, record.chunks),
        )

    def rename_file(self, old: str, new: str) -> None:
        """Give a file and its chunks a new key (``new`` must not be indexed)."""
        keys = (path_to_db(new), path_to_db(old))
        self._db.execute("UPDATE chunks SET path=? WHERE path=?", keys)
        self._db.execute("UPDATE files SET path=? WHERE path=?", keys)

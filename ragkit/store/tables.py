"""The SQLite side of an index: its schema, its connections, its rows, and the writer.

``chunks.sqlite`` holds the files, the chunks (text, metadata and the vector
bytes), the FTS5 keyword index over them and the generation counter.  A
:class:`Writer` writes inside one :meth:`~ragkit.store.local.Store.transaction`:
chunk ids are assigned as AUTOINCREMENT would, and the ids added and removed
are noted for the FAISS cache, which the store updates after the commit.

A file's path (its key, see :mod:`ragkit.loading.paths`) is stored as TEXT, or as the
BLOB of its bytes when the name is not valid UTF-8: :func:`path_to_db` and
:func:`path_from_db` convert, losslessly.

Reading never writes (:func:`connect_reader`): only a writer creates the
schema, and a database without an index's tables and counter (an empty file,
say) is damaged, not a new index.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..chunking.chunk import Chunk
from ..errors import IndexCorruptError, IndexFolderError
from .keywords import keyword_terms

__all__ = ["FileRecord", "Writer", "connect_reader", "connect_writer",
           "generation_of", "not_writable", "path_from_db", "path_to_db", "vectors_from_blobs"]

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
#: The tables every index has.
_TABLES = ("meta", "files", "chunks", "chunk_terms")


def connect_writer(path: Path, spec: str, *, create: bool = False) -> sqlite3.Connection:
    """Open the database for writing, in WAL mode so searches read while an ingest writes.

    ``spec`` names the index in error messages; ``create`` writes the schema.
    """
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if create:
            db.executescript(_SCHEMA)
        _check_database(db)
    except BaseException as exc:
        db.close()
        if isinstance(exc, sqlite3.DatabaseError) and (
                "readonly" in str(exc) or "unable to open" in str(exc)):
            raise not_writable(path.parent, _short(exc)) from exc
        raise _damaged(exc, path, spec) from exc
    return db


def connect_reader(path: Path, spec: str) -> sqlite3.Connection:
    """Open the database read-only: reading an index never writes it.

    SQLite's WAL mode needs a ``-shm`` file beside the database; in a folder
    this process cannot write (and where none is left) the database is opened
    as immutable instead, a snapshot that is exact as long as no one writes
    it meanwhile, which no one can without write access.
    """
    uri = "file:" + urllib.parse.quote(str(path.absolute()))
    try:
        return _open_checked(uri + "?mode=ro")
    except (sqlite3.DatabaseError, ValueError) as exc:
        if os.access(path.parent, os.W_OK):
            raise _damaged(exc, path, spec) from exc
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:  # a snapshot would miss its commits
        raise not_writable(path.parent, f"it is read-only, and its {wal.name} must first be "
                           "merged by a process that can write there")
    try:
        return _open_checked(uri + "?immutable=1")
    except (sqlite3.DatabaseError, ValueError) as exc:
        raise _damaged(exc, path, spec) from exc


def generation_of(cursor: sqlite3.Cursor) -> int:
    """The generation counter read by ``cursor``; ValueError if it is not a whole number."""
    row = cursor.fetchone()
    if row is None:
        raise ValueError("no generation counter")
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise ValueError(f"generation {row[0]!r} is not a whole number") from None


def vectors_from_blobs(rows: Sequence[tuple[int, Any]], dimension: int) -> np.ndarray:
    """The vectors in (chunk id, blob) ``rows``, as a matrix; ValueError if one is damaged."""
    size = 4 * dimension
    for cid, blob in rows:
        if not isinstance(blob, bytes) or len(blob) != size:
            got = f"{len(blob)} bytes" if isinstance(blob, bytes) else type(blob).__name__
            raise ValueError(f"chunk {cid} has a damaged vector ({got}, not {size} bytes "
                             f"for {dimension} dimensions)")
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
    matrix = matrix.reshape(len(rows), dimension)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        raise ValueError(f"chunk {rows[int(np.flatnonzero(~finite)[0])][0]} has a vector "
                         "that is not finite")
    return matrix


def not_writable(folder: Path, reason: str) -> IndexFolderError:
    """The error for an index folder this process cannot write."""
    return IndexFolderError(str(folder), f"cannot write index folder {folder} ({reason})",
                            "give yourself write access to it, or use another --index")


def _open_checked(uri: str) -> sqlite3.Connection:
    """Connect to ``uri`` and check it holds an index (SQLite reads the file only when asked)."""
    db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None,
                         check_same_thread=False)
    try:
        _check_database(db)
    except BaseException:
        db.close()
        raise
    return db


def _check_database(db: sqlite3.Connection) -> None:
    """ValueError unless ``db`` has an index's tables and a sound generation counter."""
    marks = ",".join("?" * len(_TABLES))
    found = {r[0] for r in db.execute(
        f"SELECT name FROM sqlite_master WHERE name IN ({marks})", _TABLES)}
    missing = [t for t in _TABLES if t not in found]
    if missing:
        raise ValueError(f"no {missing[0]} table")
    generation_of(db.execute("SELECT value FROM meta WHERE key='generation'"))


def _damaged(exc: BaseException, path: Path, spec: str) -> BaseException:
    """``exc`` as the one-line IndexCorruptError it stands for, if it is a damage."""
    if isinstance(exc, (sqlite3.DatabaseError, ValueError)):
        return IndexCorruptError(str(path), _short(exc), spec)
    return exc


def _short(exc: BaseException) -> str:
    """First line of an exception message, for one-line errors."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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


class Writer:
    """Writes inside one :meth:`Store.transaction`, noting ids for the FAISS cache."""

    def __init__(self, db: sqlite3.Connection, dimension: int) -> None:
        self._db = db
        self._dimension = dimension
        self.removed: list[int] = []  # ids of chunks deleted
        self.new_ids = range(0)  # ids given to new chunks (some may be deleted again)

    def remove_file(self, path: str) -> None:
        """Forget a file and its chunks."""
        key = path_to_db(path)
        ids = [r[0] for r in self._db.execute("SELECT id FROM chunks WHERE path=?", (key,))]
        self.removed.extend(ids)
        self._db.executemany("DELETE FROM chunk_terms WHERE rowid=?", [(i,) for i in ids])
        self._db.execute("DELETE FROM chunks WHERE path=?", (key,))
        self._db.execute("DELETE FROM files WHERE path=?", (key,))

    def put_file(self, record: FileRecord, rows: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Replace a file's chunks with ``rows`` and their ``vectors``."""
        self.remove_file(record.path)
        self.add_chunks(record.path, rows, vectors)
        self.touch_file(record)

    def add_chunks(self, path: str, rows: Sequence[Chunk], vectors: np.ndarray) -> None:
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
            self.new_ids = range(self.new_ids.start if self.new_ids else first, ids[-1] + 1)

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

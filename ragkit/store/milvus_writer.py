"""The writer of a :class:`~ragkit.store.milvus.MilvusStore` transaction: steps 1 to 5.

The steps, and why they make each file appear whole and exactly once even
when the writer is killed, are in :mod:`ragkit.store.milvus`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..chunking.chunk import Chunk
from .milvus_names import enc_path
from .tables import FileRecord

if TYPE_CHECKING:
    from .milvus import MilvusStore

__all__ = ["MilvusWriter"]

#: Rows written per insert.
_BATCH = 1000


@dataclass
class _Pending:
    """One file's writes in a transaction."""

    version: int = 0  # new chunks' version (0: none written)
    removed: bool = False
    record: FileRecord | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


class MilvusWriter:
    """The writes of one :meth:`MilvusStore.transaction` (kept until :meth:`commit`)."""

    def __init__(self, store: MilvusStore) -> None:
        self._store = store
        self._conn = store._conn
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._files: dict[str, _Pending] = {}
        self._marked: set[str] = set()
        self._buffered = 0

    def _pending(self, path: str) -> _Pending:
        return self._files.setdefault(path, _Pending())

    def remove_file(self, path: str) -> None:
        """Forget a file and its chunks (at the commit)."""
        pending = self._pending(path)
        pending.removed, pending.record = True, None
        pending.rows.clear()

    def add_chunks(self, path: str, rows: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Add chunks of a file, under the file's new version (invisible until the commit)."""
        if len(rows) != len(vectors):
            raise ValueError(f"{len(rows)} chunks but {len(vectors)} vectors")
        pending = self._pending(path)
        if not pending.version:
            pending.version = self._store.new_version()
        key = enc_path(path)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self._store.dimension)
        for row, vector in zip(rows, vectors, strict=True):
            pending.rows.append({
                "path": key, "version": pending.version,
                "page": -1 if row.page is None else row.page, "start": row.start,
                "end": row.end, "heading": row.heading, "text": row.text,
                "terms": " ".join(self._store.terms(f"{row.heading} {row.text}")),
                "vector": vector.tolist()})
        self._buffered += len(rows)
        if self._buffered >= _BATCH:
            self._write_rows()

    def touch_file(self, record: FileRecord) -> None:
        """Record a file's hash, mtime, size and chunk count (at the commit)."""
        self._pending(record.path).record = record

    def rename_file(self, old: str, new: str) -> None:
        """Give a file and its chunks a new key: its chunks are copied under the new one."""
        state = self._store._fresh_state()
        record = state.files.get(old)
        if record is None:
            return
        ids = self._store.chunk_ids([old])
        chunks = self._store.chunks(ids)
        vectors = self._store.vectors(ids)
        rows = [replace(c, id=-1, path="") for c in chunks.values()]
        self.remove_file(old)
        self.add_chunks(new, rows, np.stack([vectors[c] for c in chunks]) if rows else
                        np.zeros((0, self._store.dimension), dtype=np.float32))
        self.touch_file(FileRecord(new, record.sha256, record.mtime_ns, record.size,
                                   record.chunks))

    def _write_rows(self) -> None:
        """Write the buffered chunks, after the markers of their files (steps 1 and 2)."""
        unmarked = [(p, f) for p, f in self._files.items()
                    if (f.version or f.removed) and p not in self._marked]
        if unmarked:
            self._conn.put_markers([(p, f.version, self._owner) for p, f in unmarked])
            self._marked.update(p for p, _ in unmarked)
        rows = [row for f in self._files.values() for row in f.rows]
        for start in range(0, len(rows), _BATCH):
            self._conn.insert_chunks(rows[start : start + _BATCH])
        for f in self._files.values():
            f.rows.clear()
        self._buffered = 0

    def commit(self) -> None:
        """Steps 3 to 5: flip the file records, move the token, delete old versions."""
        self._write_rows()
        if not self._files:
            return
        # Only this transaction's files: reloading every record at each commit would
        # make an ingest quadratic in the number of files.
        versions = self._conn.versions_of(list(self._files))
        flips: list[tuple[FileRecord, int]] = []
        gone: list[str] = []
        for path, f in self._files.items():
            if f.record is not None:
                version = f.version or versions.get(path, 0)
                flips.append((f.record, version))
            elif f.removed or f.version:
                gone.append(path)
        self._conn.put_files(flips)
        self._conn.delete_files([f"file:{enc_path(p)}" for p in gone])
        self._conn.bump_generation()
        for path in self._marked:
            f = self._files[path]
            keep = f.version if f.record is not None else None
            if keep is None or path in versions:  # a new file has no older version
                self._conn.drop_stale(enc_path(path), keep)
        self._conn.delete_files([self._conn.marker_key(enc_path(p)) for p in self._marked])
        self._files.clear()
        self._marked.clear()

    def abandon(self) -> None:
        """A failed transaction: delete the chunks it wrote (a kill leaves them to recovery)."""
        with contextlib.suppress(Exception):
            for path in self._marked:
                version = self._files[path].version
                if version:
                    self._conn.drop_version(enc_path(path), version)
            self._conn.delete_files([self._conn.marker_key(enc_path(p)) for p in self._marked])


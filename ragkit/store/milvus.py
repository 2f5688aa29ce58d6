"""An index in Milvus: a server or cluster (``milvus://host:19530[/db]``) or Milvus Lite (``x.db``).

The index is fully described by its URI and collection name: the manifest,
the file records and the chunks all live in Milvus, in two collections,
``<collection>_files`` (manifest, generation token, one record per file and
the pending markers below) and ``<collection>_chunks`` (text, metadata, the
dense vector and Milvus's BM25 sparse vector of the chunk's keyword terms).
The local index folder only holds ``manifest.json`` naming them
(:mod:`ragkit.store.opening`), so any machine with ragkit and the URI can
search or ingest.

Keyword search: the chunk's terms are ragkit's own (:func:`~ragkit.store.keywords.keyword_terms`:
words lowercased, CJK runs as character bigrams), Porter-stemmed by ragkit exactly as the
local store's FTS5 stems them (:mod:`ragkit.store.stemming`), stored space-separated in a
field whose analyzer only splits on spaces, and scored by Milvus's BM25 function; queries
are stemmed alike.  So both stores index the same terms: "studies" finds "study", and CJK is
handled as in the local store.  Milvus cannot do the stemming: Milvus Lite 3.2.2 silently
ignores a ``stemmer`` filter, and offers only the ``standard`` and ``jieba`` tokenizers
(``jieba`` needs the jieba package; ``standard`` splits on non-word characters, which on
these terms is a split on spaces; a server gets ``whitespace``).  A collection made before
ragkit stemmed lacks the manifest's ``"keyword_terms": "porter"`` (:data:`STEMMED`): its
terms, old and new, and its queries stay unstemmed, until it is rebuilt.

Crash safety without transactions.  Milvus writes rows one by one; nothing
makes a file's chunks and its record land together.  So:

1. Before a file's new chunks are written, a *pending* marker names the file,
   the new version and the writer (host and pid).
2. The chunks are written tagged with that version (a fresh number, never reused).
3. The file's record, which holds its current version, is written (the *flip*),
   or deleted for a removed file.  Readers keep only chunks whose version is
   their file's current one (:meth:`MilvusStore.reading` loads the records), so
   before the flip they see the old file whole, after it the new one whole.
4. The generation token changes, so that readers reload the records.
5. Chunks of other versions of the file are deleted, then the marker.

A writer killed anywhere leaves at worst invisible chunks and a marker; the
next ingest from the same host (whose writer is then dead) deletes every
chunk of that file that is not its current version, then the marker
(:meth:`MilvusStore.recover`).  Every file is thus present exactly once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..chunking.chunk import Chunk
from ..errors import EmbeddingMismatchError, IndexCorruptError
from .keywords import keyword_terms
from .layout import release_lock, take_lock
from .manifest import check_manifest
from .milvus_client import MAX_LIMIT, Connection, connect
from .milvus_names import dec_path, enc_path, in_list
from .milvus_writer import MilvusWriter
from .stemming import stem_terms
from .tables import FileRecord

__all__ = ["MilvusStore"]

_CHUNK_FIELDS = ["id", "path", "version", "page", "start", "end", "heading", "text"]
#: The manifest field marking a collection whose terms are stemmed (:mod:`.stemming`);
#: collections made before ragkit stemmed lack it, and keep unstemmed terms.
STEMMED = {"keyword_terms": "porter"}


@dataclass(frozen=True)
class _State:
    """The file records as of one generation token: what readers may see."""

    token: str
    files: dict[str, FileRecord]
    versions: dict[str, int]

    def current(self, path: str, version: int) -> bool:
        return self.versions.get(path) == version


class MilvusStore:
    """An index held in two Milvus collections (see the module's description)."""

    def __init__(self, root: Path, manifest: dict[str, Any], conn: Connection) -> None:
        self.root = root
        self.manifest = manifest
        self._conn = conn
        self._state = _State("", {}, {})
        self._local = threading.local()
        self._lock_fh: Any = None
        self._last_version = 0

    # -- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, root: Path, manifest: dict[str, Any]) -> MilvusStore:
        """Open the index ``manifest`` (the local pointer) names; its collections must exist."""
        conn = connect(manifest["store"], manifest["collection"])
        stored = conn.read_manifest()
        if stored is None:
            conn.close()
            raise IndexCorruptError(manifest["store"], f"collection {manifest['collection']!r} "
                                    "holds no ragkit index", str(root))
        return cls(root, {**stored, "store": manifest["store"],
                          "collection": manifest["collection"]}, conn)

    @classmethod
    def create(cls, root: Path, manifest: dict[str, Any]) -> MilvusStore:
        """Create the collections ``manifest`` names, or join an index already in them.

        Joining one built with another model or dimension is an
        :class:`EmbeddingMismatchError`.
        """
        conn = connect(manifest["store"], manifest["collection"])
        stored = conn.read_manifest()
        if stored is None:
            stored = {**manifest, **STEMMED}
            conn.create(stored)
        elif (stored["embed_model"], stored["dimension"]) != (
                manifest["embed_model"], manifest["dimension"]):
            conn.close()
            raise EmbeddingMismatchError(
                f"collection '{manifest['collection']}' in {manifest['store']} was built with "
                f"'{stored['embed_model']}' ({stored['dimension']} dims), not "
                f"'{manifest['embed_model']}' ({manifest['dimension']} dims) — use "
                f"--embed-model {stored['embed_model']}, or another index name")
        return cls(root, {**stored, "store": manifest["store"],
                          "collection": manifest["collection"]}, conn)

    def update_manifest(self, **fields: Any) -> None:
        """Set (or, given None, remove) optional manifest fields, in Milvus."""
        manifest = {k: v for k, v in {**self.manifest, **fields}.items() if v is not None}
        check_manifest(manifest)
        self._conn.write_manifest(manifest)
        self.manifest = manifest

    def drop(self) -> None:
        """Delete the index's collections (``ragkit indexes delete``, a rebuild)."""
        self._conn.drop()

    def terms(self, text: str) -> list[str]:
        """The keyword terms of ``text`` as this collection holds them (stemmed if it is)."""
        terms = keyword_terms(text)
        stemmed = self.manifest.get("keyword_terms") == STEMMED["keyword_terms"]
        return stem_terms(terms) if stemmed else terms

    @property
    def dimension(self) -> int:
        """Length of the stored vectors."""
        return int(self.manifest["dimension"])

    def close(self) -> None:
        """Release the writer lock and the connection."""
        self.unlock()
        self._conn.close()

    def lock(self) -> None:
        """Take this machine's writer lock, then finish what dead writers of this host left."""
        self._lock_fh = take_lock(self.root)
        try:
            self.recover()
        except BaseException:
            self.unlock()
            raise

    def unlock(self) -> None:
        """Release the writer lock if this process holds it."""
        release_lock(self._lock_fh)
        self._lock_fh = None

    # -- reading -----------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Make the reads of this thread inside the block use one set of file records."""
        if getattr(self._local, "state", None) is not None:
            yield
            return
        self._local.state = self._fresh_state()
        try:
            yield
        finally:
            self._local.state = None

    def _snapshot(self) -> _State:
        state = getattr(self._local, "state", None)
        return state if state is not None else self._fresh_state()

    def _fresh_state(self) -> _State:
        """The file records, reloaded when the generation token moved."""
        token = self._conn.generation()
        state = self._state
        if state.token != token or not token:
            files, versions = self._conn.file_records()
            state = _State(token, files, versions)
            self._state = state
        return state

    def files(self) -> dict[str, FileRecord]:
        """Every indexed file, keyed by path."""
        return dict(self._snapshot().files)

    def count(self) -> int:
        """Number of chunks in the index (the sum of the file records' counts)."""
        return sum(r.chunks for r in self._snapshot().files.values())

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """Fetch chunks by id (ids that no longer exist, or not current, are left out)."""
        state = self._snapshot()
        found: dict[int, Chunk] = {}
        for row in self._conn.get_chunks(ids, _CHUNK_FIELDS):
            path = dec_path(row["path"])
            if state.current(path, row["version"]):
                page = row["page"] if row["page"] >= 0 else None
                found[row["id"]] = Chunk(row["text"], row["start"], row["end"], row["heading"],
                                         page, path, row["id"])
        return found

    def chunk_ids(self, paths: Sequence[str]) -> list[int]:
        """Ids of every current chunk of the files in ``paths``, in order."""
        state = self._snapshot()
        found: list[int] = []
        for start in range(0, len(paths), 200):
            part = [enc_path(p) for p in paths[start : start + 200]]
            rows = self._conn.query_chunks(f"path in {in_list(part)}", ["id", "path", "version"])
            found.extend(r["id"] for r in rows if state.current(dec_path(r["path"]), r["version"]))
        return sorted(found)

    def search(
        self, vector: np.ndarray, k: int, ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """Inner-product search: ``k`` (chunk id, cosine) pairs, best first; ``ids`` filter."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1).tolist()
        return self._ranked("vector", query, k, ids)

    def keyword_search(
        self, text: str, k: int, ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """BM25 over ragkit's keyword terms (the query's distinct terms, up to 64)."""
        terms = list(dict.fromkeys(self.terms(text)))[:64]
        if not terms:
            return []
        return self._ranked("sparse", " ".join(terms), k, ids)

    def _ranked(self, field_name: str, query: Any, k: int,
                ids: Sequence[int] | None) -> list[tuple[int, float]]:
        """The ``k`` best current chunks by ``field_name``; asks for more while stale ones fill it.

        Chunks of versions not current (a file being written, or left by a dead
        writer) are dropped here, so each round asks for more until ``k``
        current ones are found or there are no more.
        """
        if ids is not None and not len(ids):
            return []
        state = self._snapshot()
        where = f"id in {in_list([int(i) for i in ids])}" if ids is not None else ""
        limit = k + 8
        while True:
            hits = self._conn.search(field_name, query, min(limit, MAX_LIMIT), where)
            kept = [(h["id"], abs(float(h["distance"])) if field_name == "sparse"
                     else float(h["distance"]))
                    for h in hits if state.current(dec_path(h["path"]), h["version"])]
            if len(kept) >= k or len(hits) < min(limit, MAX_LIMIT) or limit >= MAX_LIMIT:
                kept.sort(key=lambda pair: -pair[1])
                return kept[:k]
            limit *= 4

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of the current chunks in ``ids``."""
        state = self._snapshot()
        rows = self._conn.get_chunks(ids, ["id", "path", "version", "vector"])
        return {r["id"]: np.asarray(r["vector"], dtype=np.float32) for r in rows
                if state.current(dec_path(r["path"]), r["version"])}

    def cosines(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Cosine of ``vector`` with each stored chunk in ``ids`` (vectors are normalized)."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        return {cid: float(v @ query) for cid, v in self.vectors(ids).items()}

    def sample_texts(self, n: int) -> list[str]:
        """Up to ``n`` chunk texts (for benchmark queries)."""
        return [r["text"] for r in self._conn.query_chunks("id >= 0", ["text"], limit=n)]

    # -- writing -----------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[MilvusWriter]:
        """Writes that readers see file by file, each whole (see the module's description)."""
        writer = MilvusWriter(self)
        try:
            yield writer
            writer.commit()
        except BaseException:
            writer.abandon()
            raise

    def save_vectors(self) -> None:
        """Make the writes durable on the server (Milvus builds its own indexes)."""
        self._conn.flush()

    def new_version(self) -> int:
        """A version number no writer has used: the clock in ns, with random low bits."""
        version = max(time.time_ns() & ~0xFFF | secrets.randbits(12), self._last_version + 1)
        self._last_version = version
        return version

    def recover(self) -> None:
        """Finish the files this host's dead writers left between their marker and its removal."""
        host = socket.gethostname()
        for marker in self._conn.markers():
            owner_host, _, pid = marker["owner"].rpartition(":")
            if owner_host != host or _alive(int(pid or 0)):
                continue
            self._conn.drop_stale(marker["path"], self._conn.current_version(marker["path"]))
            self._conn.delete_files([marker["key"]])


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (our own pid counts as dead: we recover)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


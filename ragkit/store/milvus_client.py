"""The Milvus side of :mod:`ragkit.store.milvus`: the connection and the two collections.

Every call to pymilvus goes through :class:`Connection`, which turns what the
server says into ragkit's errors: unreachable or refused is a
:class:`~ragkit.errors.BackendError` (exit 3), a Milvus Lite file another
process holds is :class:`~ragkit.errors.IndexBusyError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ..errors import BackendError, IndexBusyError, UsageError
from ..settings import Settings
from .milvus_names import dec_path, enc_path, literal
from .tables import FileRecord

__all__ = ["MAX_LIMIT", "Connection", "connect"]

#: Milvus's largest search limit (topk) and query page.
MAX_LIMIT = 16384
INSTALL = "install with `pip install ragkit[milvus]`"
_T = TypeVar("_T")
#: Connections open on each Milvus Lite file in this process (the last one releases it).
_LITE_USERS: dict[str, int] = {}
_LITE_LOCK = threading.Lock()


def connect(uri: str, collection: str) -> Connection:
    """Connect to the Milvus (or Milvus Lite file) ``uri``, for the index ``collection``."""
    if importlib.util.find_spec("pymilvus") is None or (
            uri.endswith(".db") and importlib.util.find_spec("milvus_lite") is None):
        raise UsageError(f"the Milvus store needs pymilvus and milvus-lite — {INSTALL}")
    from pymilvus import MilvusClient

    kwargs: dict[str, Any] = {}
    if uri.startswith("milvus://"):
        rest = uri[len("milvus://"):]
        host, _, db = rest.partition("/")
        kwargs = {"uri": f"http://{host if ':' in host else host + ':19530'}",
                  "token": Settings.from_env().milvus_token, "timeout": 10}
        if db:
            kwargs["db_name"] = db
    else:
        os.makedirs(os.path.dirname(uri) or ".", exist_ok=True)
        # No keepalive pings to the in-process server: it answers pings every 10 s (the
        # client's default) with GOAWAY "too_many_pings", which gRPC logs on stderr.
        kwargs = {"uri": uri, "grpc_options": {"grpc.keepalive_time_ms": 24 * 3600 * 1000,
                                               "grpc.keepalive_permit_without_calls": False}}
        # Milvus Lite's in-process gRPC server logs a traceback for each call it lacks
        # (pymilvus asks for AllocTimestamp while creating an index, then does without).
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        _check_lite_free(uri)
    try:
        client = MilvusClient(**kwargs)
    except Exception as exc:
        if "lock" in str(exc).lower():
            raise IndexBusyError(uri) from None
        raise _unreachable(uri, exc) from None
    return Connection(client, uri, collection)


def _check_lite_free(uri: str) -> None:
    """:class:`IndexBusyError` if another process has the Milvus Lite file ``uri`` open.

    Milvus Lite allows one process per file (it holds ``LOCK`` in it); asked for
    a file another process holds, it logs a traceback and pymilvus reports only
    "Open local milvus failed".
    """
    from milvus_lite.server_manager import server_manager_instance

    if os.path.abspath(uri) in server_manager_instance._servers:  # open in this process
        return
    try:
        fd = os.open(os.path.join(uri, "LOCK"), os.O_RDWR)
    except OSError:
        return  # a new file, or no lock file yet
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        raise IndexBusyError(uri) from None
    finally:
        os.close(fd)


def _unreachable(uri: str, exc: BaseException) -> BackendError:
    detail = str(getattr(exc, "message", "") or exc).strip().splitlines()
    reason = detail[0][:160] if detail else type(exc).__name__
    return BackendError(f"cannot use Milvus at {uri} ({reason}) — check that it runs, the URI, "
                        "and RAGKIT_MILVUS_TOKEN")


class Connection:
    """One index's two collections on a Milvus client."""

    def __init__(self, client: Any, uri: str, collection: str) -> None:
        self.client = client
        self.uri = uri
        self.chunks = f"{collection}_chunks"
        self.files = f"{collection}_files"
        self.lite = not uri.startswith("milvus://")
        self._closed = False
        if self.lite:
            with _LITE_LOCK:
                _LITE_USERS[uri] = _LITE_USERS.get(uri, 0) + 1

    def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if type(exc).__module__.startswith(("pymilvus", "grpc")):
                raise _unreachable(self.uri, exc) from None
            raise

    def close(self) -> None:
        """Close the client; the last user of a Milvus Lite file in this process releases it."""
        with contextlib.suppress(Exception):
            self.client.close()
        if self.lite and not self._closed:
            self._closed = True
            with _LITE_LOCK:
                _LITE_USERS[self.uri] -= 1
                last = _LITE_USERS[self.uri] == 0
            if last:  # let another process open the file (Milvus Lite locks it)
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)

    # -- schema ------------------------------------------------------------------

    def create(self, manifest: dict[str, Any]) -> None:
        """Create both collections and write the manifest into the files collection."""
        from pymilvus import DataType, Function, FunctionType

        c = self.client
        files = c.create_schema(auto_id=False)
        files.add_field("key", DataType.VARCHAR, is_primary=True, max_length=8192)
        files.add_field("path", DataType.VARCHAR, max_length=8192)
        files.add_field("version", DataType.INT64)
        files.add_field("sha256", DataType.VARCHAR, max_length=128)
        files.add_field("mtime_ns", DataType.INT64)
        files.add_field("size", DataType.INT64)
        files.add_field("chunks", DataType.INT64)
        files.add_field("value", DataType.VARCHAR, max_length=65535)
        files.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field
        index = c.prepare_index_params()
        index.add_index("unused", index_type="FLAT", metric_type="L2")
        self._call(c.create_collection, self.files, schema=files, index_params=index,
                   consistency_level="Strong")

        chunks = c.create_schema(auto_id=True)
        chunks.add_field("id", DataType.INT64, is_primary=True)
        chunks.add_field("path", DataType.VARCHAR, max_length=8192)
        chunks.add_field("version", DataType.INT64)
        chunks.add_field("page", DataType.INT64)
        chunks.add_field("start", DataType.INT64)
        chunks.add_field("end", DataType.INT64)
        chunks.add_field("heading", DataType.VARCHAR, max_length=8192)
        chunks.add_field("text", DataType.VARCHAR, max_length=65535)
        # ragkit's own terms, space-separated: the analyzer need only split on spaces.
        tokenizer = "standard" if self.lite else "whitespace"
        chunks.add_field("terms", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                         analyzer_params={"tokenizer": tokenizer})
        chunks.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        chunks.add_field("vector", DataType.FLOAT_VECTOR, dim=int(manifest["dimension"]))
        chunks.add_function(Function(name="terms_bm25", function_type=FunctionType.BM25,
                                     input_field_names=["terms"], output_field_names=["sparse"]))
        index = c.prepare_index_params()
        index.add_index("vector", index_type="FLAT" if self.lite else "HNSW", metric_type="IP",
                        **({} if self.lite else {"params": {"M": 16, "efConstruction": 200}}))
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self._call(c.create_collection, self.chunks, schema=chunks, index_params=index,
                   consistency_level="Strong")
        self._upsert_files([self._row("meta:manifest", value=json.dumps(manifest))])
        self.bump_generation()

    def drop(self) -> None:
        """Drop both collections."""
        for name in (self.chunks, self.files):
            if self._call(self.client.has_collection, name):
                self._call(self.client.drop_collection, name)

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest kept in Milvus (collections loaded), or None when they do not exist."""
        if not self._call(self.client.has_collection, self.files):
            return None
        for name in (self.files, self.chunks):  # a restarted Milvus Lite has them released
            self._call(self.client.load_collection, name)
        rows = self._call(self.client.get, self.files, ids=["meta:manifest"],
                          output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest kept in Milvus (one row: readers see the old or the new)."""
        self._upsert_files([self._row("meta:manifest", value=json.dumps(manifest))])
        self.bump_generation()

    # -- files collection --------------------------------------------------------

    def _row(self, key: str, **fields: Any) -> dict[str, Any]:
        row = {"key": key, "path": "", "version": 0, "sha256": "", "mtime_ns": 0, "size": 0,
               "chunks": 0, "value": "", "unused": [0.0, 0.0]}
        row.update(fields)
        return row

    def _upsert_files(self, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), 1000):
            self._call(self.client.upsert, self.files, rows[start : start + 1000])

    def generation(self) -> str:
        """The token that changes whenever a file record does."""
        rows = self._call(self.client.get, self.files, ids=["meta:generation"],
                          output_fields=["value"])
        return str(rows[0]["value"]) if rows else ""

    def bump_generation(self) -> None:
        """Give readers a new token, so they reload the file records."""
        token = f"{time.time_ns()}-{secrets.token_hex(4)}"
        self._upsert_files([self._row("meta:generation", value=token)])

    def file_records(self) -> tuple[dict[str, FileRecord], dict[str, int]]:
        """Every file record, and each file's current version."""
        files: dict[str, FileRecord] = {}
        versions: dict[str, int] = {}
        for r in self._query_all(self.files, 'key like "file:%"',
                                 ["path", "version", "sha256", "mtime_ns", "size", "chunks"]):
            path = dec_path(r["path"])
            files[path] = FileRecord(path, r["sha256"], r["mtime_ns"], r["size"], r["chunks"])
            versions[path] = r["version"]
        return files, versions

    def current_version(self, key: str) -> int | None:
        """The current version of the file stored as ``key`` (None: not indexed)."""
        rows = self._call(self.client.get, self.files, ids=[f"file:{key}"],
                          output_fields=["version"])
        return int(rows[0]["version"]) if rows else None

    def versions_of(self, paths: Sequence[str]) -> dict[str, int]:
        """The current version of each of ``paths`` that is indexed."""
        found: dict[str, int] = {}
        for start in range(0, len(paths), 1000):
            keys = [f"file:{enc_path(p)}" for p in paths[start : start + 1000]]
            rows = self._call(self.client.get, self.files, ids=keys,
                              output_fields=["path", "version"])
            found.update({dec_path(r["path"]): int(r["version"]) for r in rows})
        return found

    def put_files(self, flips: Sequence[tuple[FileRecord, int]]) -> None:
        """Write file records with their current versions (the flip)."""
        self._upsert_files([
            self._row(f"file:{enc_path(r.path)}", path=enc_path(r.path), version=version,
                      sha256=r.sha256, mtime_ns=r.mtime_ns, size=r.size, chunks=r.chunks)
            for r, version in flips])

    def delete_files(self, keys: Sequence[str]) -> None:
        """Delete rows of the files collection by key."""
        for start in range(0, len(keys), 500):
            part = list(keys[start : start + 500])
            if part:
                self._call(self.client.delete, self.files, ids=part)

    @staticmethod
    def marker_key(key: str) -> str:
        return f"pending:{key}"

    def put_markers(self, files: Iterable[tuple[str, int, str]]) -> None:
        """Note (path, new version, owner) before a file's chunks are written."""
        self._upsert_files([self._row(self.marker_key(enc_path(p)), path=enc_path(p),
                                      version=v, value=owner) for p, v, owner in files])

    def markers(self) -> list[dict[str, Any]]:
        """Every pending marker: key, path (stored form), version, owner."""
        rows = self._query_all(self.files, 'key like "pending:%"',
                               ["key", "path", "version", "value"])
        return [{"key": r["key"], "path": r["path"], "version": r["version"],
                 "owner": r["value"]} for r in rows]

    # -- chunks collection -------------------------------------------------------

    def insert_chunks(self, rows: list[dict[str, Any]]) -> None:
        """Insert chunk rows (Milvus assigns their ids)."""
        if rows:
            self._call(self.client.insert, self.chunks, rows)

    def drop_stale(self, key: str, keep: int | None) -> None:
        """Delete the chunks of the file stored as ``key`` except those of version ``keep``."""
        where = f"path == {literal(key)}"
        if keep is not None:
            where += f" and version != {int(keep)}"
        self._call(self.client.delete, self.chunks, filter=where)

    def drop_version(self, key: str, version: int) -> None:
        """Delete the chunks of one version of a file."""
        self._call(self.client.delete, self.chunks,
                   filter=f"path == {literal(key)} and version == {int(version)}")

    def get_chunks(self, ids: Sequence[int], fields: list[str]) -> list[dict[str, Any]]:
        """Chunk rows by id (missing ones left out)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), 1000):
            part = [int(i) for i in ids[start : start + 1000]]
            if part:
                found.extend(self._call(self.client.get, self.chunks, ids=part,
                                        output_fields=fields))
        return found

    def query_chunks(self, where: str, fields: list[str],
                     limit: int | None = None) -> list[dict[str, Any]]:
        """Chunk rows matching ``where`` (all of them, or the first ``limit``)."""
        if limit is not None:
            return list(self._call(self.client.query, self.chunks, filter=where,
                                   output_fields=fields, limit=min(limit, MAX_LIMIT)))
        return self._query_all(self.chunks, where, fields)

    def _query_all(self, collection: str, where: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching ``where`` (a server's page by page; Milvus Lite has no limit)."""
        if self.lite:  # its query_iterator would call AllocTimestamp, which Lite lacks
            return list(self._call(self.client.query, collection, filter=where,
                                   output_fields=fields))
        found: list[dict[str, Any]] = []
        iterator = self._call(self.client.query_iterator, collection, batch_size=4096,
                              filter=where, output_fields=fields)
        try:
            while page := self._call(iterator.next):
                found.extend(page)
        finally:
            iterator.close()
        return found

    def search(self, field: str, query: Any, limit: int, where: str) -> list[dict[str, Any]]:
        """The best ``limit`` chunks for ``query`` on ``field``: id, distance, path, version."""
        params: dict[str, Any] = {"metric_type": "BM25" if field == "sparse" else "IP"}
        if field == "vector" and not self.lite:  # HNSW: a candidate list of at least 64
            params["params"] = {"ef": max(64, limit)}
        result = self._call(self.client.search, self.chunks, data=[query], anns_field=field,
                            limit=limit, filter=where, output_fields=["path", "version"],
                            search_params=params)
        return [{"id": h["id"], "distance": h["distance"], **h["entity"]} for h in result[0]]

    def flush(self) -> None:
        """Seal the written rows into segments (Milvus Lite searches its memtable row by row)."""
        for name in (self.chunks, self.files):
            self._call(self.client.flush, name)

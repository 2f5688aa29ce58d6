"""Ingest: walk → read and chunk (a background thread) → embed in batches → commit.

Files are committed whole: a file's chunks and vectors land in one SQLite
transaction together with its hash, so an interrupted run keeps every file it
finished and a re-run picks up the rest.  Reading and chunking the next files
overlaps with embedding the current batch.

A big text file (see :func:`~ragkit.loading.kinds.streams`) is read, chunked and
embedded in parts of about a batch of chunks each, so its text is never held
whole; each part is written as its vectors arrive, into one transaction that
stays open until the file's last part is in.  Readers (WAL) and a crash see
the index as it was before the file.

Embedding is pipelined (:mod:`ragkit.ingest.scheduler`): up to ``parallel``
requests are in flight at once, batches are committed in order as their
vectors arrive, and at most about ``parallel + 1`` batches of text are held
at any time, however large the corpus.  Reading and chunking
(:mod:`ragkit.ingest.prepare`) runs ahead of it in a background thread.

Files are known by their key (:mod:`ragkit.loading.paths`): the same file reached as
``docs``, ``x/../docs`` or through a link to ``docs`` is one file, and copies
an older index holds under such spellings are renamed or dropped.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..chunking.units import ChunkerSettings
from ..errors import BackendError, VectorError
from ..loading.files import Skipped, iter_files
from ..loading.kinds import max_file_mb
from ..loading.paths import Found, Keys, renamed_keys, shown, stale_keys
from ..store.base import IndexStore
from ..store.layout import owned_file
from ..store.tables import FileRecord
from .prepare import Problem, _prepare_in_background, _Prepared, _Unchanged
from .reports import IngestProgress, IngestReport, _Tracker
from .scheduler import EmbedFn, _embed_ahead, default_parallel
from .shards import Shard, ShardView

if TYPE_CHECKING:
    from ..store.base import StoreWriter as Writer

__all__ = ["ingest"]


def ingest(
    store: IndexStore,
    paths: Iterable[str | Path],
    embed: EmbedFn,
    *,
    chunker: ChunkerSettings,
    document_prefix: str = "",
    batch_size: int = 64,
    follow_symlinks: bool = False,
    progress: Callable[[IngestProgress], None] | None = None,
    parallel: int | None = None,
    exclude: Sequence[Path] = (),
    max_mb: float | None = None,
    shard: Shard | None = None,
) -> IngestReport:
    """Bring ``store`` up to date with the files under ``paths``.

    ``parallel``: embedding requests in flight (default: :func:`default_parallel`).
    ``exclude``: folders (real paths) whose files are left out silently, such as
    the index's own folder when it lies inside one of ``paths``.  ``max_mb``: the
    size cap of HTML files (default: :func:`~ragkit.loading.kinds.max_file_mb`).
    ``shard``: only this shard's files are indexed, updated or removed (:mod:`.shards`).
    """
    started = time.monotonic()
    cap_mb = max_mb or max_file_mb()  # a bad RAGKIT_MAX_FILE_MB stops the run before any work
    report = IngestReport()
    roots = [Path(p) for p in paths]
    _remove_dead_temp_files(store.root)
    keys, view = Keys(roots), ShardView(shard, roots)
    found = _walk(roots, keys, follow_symlinks, report, exclude, view)
    known = view.keep(_rename_old_keys(store, {f.key for f in found}))
    todo = _plan(found, known, report)
    tracker = _Tracker(len(todo) + report.unchanged, report.unchanged, started, progress)
    in_flight = default_parallel() if parallel is None else max(1, parallel)
    work = _prepare_in_background(todo, known, chunker, document_prefix,
                                  ahead=batch_size * (in_flight + 1), part=batch_size,
                                  cap_mb=cap_mb)
    try:
        with _Committer(store, report) as committer:
            batches = _batches(work, batch_size, report)
            sized = _sized(embed, store)
            for batch, vectors in _embed_ahead(batches, sized, batch_size, in_flight):
                committer.write(batch, vectors)
                files = sum(item.final for item in batch)
                last = batch[-1].shown or batch[-1].record.path
                tracker.advance(files, len(vectors), shown(last))
    except BackendError as exc:
        _add_resume_hint(exc, report)
        raise
    _remove_missing(store, keys, known, found, report)
    store.save_vectors()
    report.total_chunks = store.count()
    report.seconds = time.monotonic() - started
    return report


def _remove_dead_temp_files(root: Path) -> None:
    """Delete half-written temp files (``.NAME.XXXX.tmp``) a killed writer left behind.

    The caller holds the index's write lock, so no live writer owns them.
    """
    for tmp in root.glob(".*.tmp"):
        if owned_file(tmp.name):  # a user's own ".notes.tmp" stays
            with contextlib.suppress(OSError):
                tmp.unlink()


def _add_resume_hint(exc: BackendError, report: IngestReport) -> None:
    """Tell the user the ingest can be resumed: committed files are kept."""
    done = len(report.added) + len(report.updated)
    kept = f"the {done} files indexed before that are kept" if done else "nothing new was indexed"
    again = "; run the same command again to finish" if getattr(exc, "rerun_helps", True) else ""
    exc.args = (f"{exc} (ingest stopped: {kept}{again})",)


def _sized(embed: EmbedFn, store: IndexStore) -> EmbedFn:
    """``embed``, refusing a reply without one vector of the index's size per text.

    The backend checks each vector; only here is the index's dimension known.
    A model replaced on the server since the index was built fails here,
    before anything of the batch is written.
    """
    dimension = store.dimension
    model = store.manifest.get("embed_model") or "the embedding model"

    def checked(texts: Sequence[str]) -> np.ndarray:
        vectors = embed(texts)
        if vectors.shape == (len(texts), dimension) or not texts:
            return vectors
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise VectorError(f"'{model}' returned {len(vectors)} vectors for {len(texts)} texts "
                              "— the backend is broken; see its log")
        raise VectorError(
            f"'{model}' returned {vectors.shape[1]}-dim vectors, but this index holds "
            f"{dimension}-dim ones — the model changed since the index was built; re-index "
            "with --rebuild, or embed with the model the index was built with",
            rerun_helps=False)

    return checked


def _walk(
    roots: list[Path],
    keys: Keys,
    follow: bool,
    report: IngestReport,
    exclude: Sequence[Path] = (),
    view: ShardView | None = None,
) -> list[Found]:
    """The files under ``roots`` (of ``view``'s shard) with their keys; what is left out
    goes in ``report``."""
    found: list[Found] = []
    for item in iter_files(roots, follow_symlinks=follow):
        if exclude and _excluded(item.path if isinstance(item, Skipped) else item, exclude):
            continue
        key = keys.key(item.path if isinstance(item, Skipped) else item)
        if view is not None and not view.owns(key):
            continue  # another shard's file: not indexed, reported or removed here
        if isinstance(item, Skipped):  # an unreadable file is a failure, not a choice
            problems = report.failed if item.unreadable else report.skipped
            problems.append(Problem(str(item.path), item.reason, key))
        else:
            found.append(Found(item, key))
    return found


def _rename_old_keys(store: IndexStore, present: set[str]) -> dict[str, FileRecord]:
    """The store's files, after moving records an older ragkit keyed by another spelling."""
    known = store.files()
    renames = renamed_keys(known, present)
    if renames:
        with store.transaction() as tx:
            for old, new in renames.items():
                tx.rename_file(old, new)
        known = store.files()
    return known


def _plan(found: list[Found], known: dict[str, FileRecord], report: IngestReport) -> list[Found]:
    """The files that may have changed (mtime/size fast path); the others count as unchanged."""
    todo: list[Found] = []
    for item in found:
        record = known.get(item.key)
        try:
            st = item.path.stat()
        except OSError as exc:
            report.failed.append(Problem(str(item.path), exc.strerror or str(exc), item.key))
            continue
        if record and record.mtime_ns == st.st_mtime_ns and record.size == st.st_size:
            report.unchanged += 1
        else:
            todo.append(item)
    return todo


def _excluded(path: Path, folders: Sequence[Path]) -> bool:
    """Whether ``path`` is inside one of ``folders`` (compared as real paths)."""
    real = Path(os.path.realpath(path))
    return any(folder in real.parents for folder in folders)


def _batches(
    work: Iterable[_Prepared | _Unchanged | Problem], size: int, report: IngestReport
) -> Iterator[list[_Prepared]]:
    """Group prepared files into batches of about ``size`` chunks; record the rest."""
    batch: list[_Prepared] = []
    pending = 0
    for item in work:
        if isinstance(item, Problem):
            report.failed.append(item)
        elif isinstance(item, _Unchanged):
            report.unchanged += 1
            batch.append(_Prepared(item.record, [], [], is_new=False))
        else:
            batch.append(item)
            pending += len(item.texts)
        if pending >= size:
            yield batch
            batch, pending = [], 0
    if batch:
        yield batch


class _Committer:
    """Writes batches as their vectors arrive, committing whenever no file is half written.

    Batches of whole files are committed one by one; the parts of a big file
    go into one transaction that is committed after its last part (and rolled
    back if the run stops first).
    """

    def __init__(self, store: IndexStore, report: IngestReport) -> None:
        self.store, self.report = store, report
        self._open = contextlib.ExitStack()
        self._tx: Writer | None = None
        # Written but not committed yet: chunks, and files for the report's lists.
        self._chunks = 0
        self._files: list[tuple[list[Any], Any]] = []

    def __enter__(self) -> _Committer:
        return self

    def __exit__(self, *exc: Any) -> None:
        cut_short = exc[0] is None and self._tx is not None  # a file's parts stopped short
        self._tx = None
        if not cut_short:
            self._open.__exit__(*exc)  # commits, or rolls back on an exception
            return
        error = RuntimeError("ingest ended inside a file")
        self._open.__exit__(RuntimeError, error, None)  # rolls the file back
        raise error

    def write(self, batch: list[_Prepared], vectors: np.ndarray) -> None:
        """Write one batch; commit if its last item ends a file (and before a big file)."""
        offset = 0
        for item in batch:
            if item.first and not item.final:
                self._commit()  # what came before a big file need not wait for it
            if self._tx is None:
                self._tx = self._open.enter_context(self.store.transaction())
            n = len(item.rows)
            _write_item(self._tx, item, vectors[offset : offset + n])
            offset += n
            self._note(item)
        if batch[-1].final:
            self._commit()

    def _commit(self) -> None:
        """Commit the open transaction, if any, and report what it held."""
        if self._tx is None:
            return
        self._tx = None
        self._open.close()
        self.report.chunks_written += self._chunks
        for where, what in self._files:
            where.append(what)
        self._chunks, self._files = 0, []

    def _note(self, item: _Prepared) -> None:
        """Remember what ``item`` adds to the report (not the item: a big file's text)."""
        self._chunks += len(item.rows)
        report = self.report
        if item.failed:
            problem = Problem(item.shown or item.record.path, item.failed, item.record.path)
            self._files.append((report.failed, problem))
        elif item.final and item.rows:
            self._files.append((report.added if item.is_new else report.updated,
                                item.record.path))


def _write_item(tx: Writer, item: _Prepared, vectors: np.ndarray) -> None:
    """Write one file, or one part of a big file."""
    path = item.record.path
    if item.failed:
        tx.remove_file(path)
    elif not item.rows and item.record.chunks:  # content unchanged, only mtime moved
        tx.touch_file(item.record)
    else:
        if item.first:
            tx.remove_file(path)
        tx.add_chunks(path, item.rows, vectors)
        if item.final:
            tx.touch_file(item.record)


def _remove_missing(
    store: IndexStore,
    keys: Keys,
    known: dict[str, FileRecord],
    found: list[Found],
    report: IngestReport,
) -> None:
    """Drop indexed files under the roots that are gone, now left out, or indexed twice."""
    skipped = [p.file_key for p in report.skipped]
    failed = [p.file_key for p in report.failed]
    gone = stale_keys(known, keys, {f.key for f in found}, skipped, failed)
    if not gone:
        return
    with store.transaction() as tx:
        for path in gone:
            tx.remove_file(path)
    listed = {*skipped, *failed}  # reported as skipped or failed already
    report.removed.extend(p for p in gone if p not in listed)

"""Ingest: walk → read and chunk (a background thread) → embed in batches → commit.

Files are committed whole: a file's chunks and vectors land in one SQLite
transaction together with its hash, so an interrupted run keeps every file it
finished and a re-run picks up the rest.  Reading and chunking the next files
overlaps with embedding the current batch.

A big text file (see :func:`~ragkit.loading.streams`) is read, chunked and
embedded in parts of about a batch of chunks each, so its text is never held
whole; each part is written as its vectors arrive, into one transaction that
stays open until the file's last part is in.  Readers (WAL) and a crash see
the index as it was before the file.

Embedding is pipelined (:mod:`ragkit.embedding`): up to ``parallel``
requests are in flight at once, batches are committed in order as their
vectors arrive, and at most about ``parallel + 1`` batches of text are held
at any time, however large the corpus.  Reading and chunking
(:mod:`ragkit.preparing`) runs ahead of it in a background thread.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .chunking import ChunkerSettings
from .embedding import EmbedFn, _embed_ahead, default_parallel
from .errors import BackendError
from .loading import Skipped, iter_files
from .preparing import Problem, _prepare_in_background, _Prepared, _Unchanged
from .preparing import _prepare as _prepare  # re-exported: benchmarks/bench_ingest.py uses it
from .store import Store
from .tables import FileRecord

if TYPE_CHECKING:
    from .tables import _Writer

__all__ = ["IngestProgress", "IngestReport", "Problem", "default_parallel", "ingest"]


@dataclass
class IngestReport:
    """What an ingest run did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[Problem] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)
    chunks_written: int = 0
    total_chunks: int = 0
    seconds: float = 0.0

    @property
    def problems(self) -> bool:
        """True when some file was skipped or could not be read."""
        return bool(self.skipped or self.failed)

    @property
    def chunks_per_second(self) -> float:
        """Chunks embedded per second of the whole run (0 when none were)."""
        return self.chunks_written / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for humans, e.g. ``3 added, 1 updated, ...; 2.1 s, 40 chunks/s``.

        >>> IngestReport(chunks_written=84, total_chunks=84, seconds=2.0).summary()[-57:]
        '84 chunks embedded, 84 in the index; 2.0 s, 42.0 chunks/s'
        """
        rate = f", {self.chunks_per_second:.1f} chunks/s" if self.chunks_written else ""
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped, {len(self.failed)} failed; "
            f"{self.chunks_written} chunks embedded, {self.total_chunks} in the index; "
            f"{self.seconds:.1f} s{rate}"
        )


@dataclass(frozen=True)
class IngestProgress:
    """A snapshot for progress displays."""

    files_done: int
    files_total: int
    chunks_embedded: int
    elapsed: float
    current: str = ""

    @property
    def rate(self) -> float:
        """Chunks embedded per second so far."""
        return self.chunks_embedded / self.elapsed if self.elapsed > 0 else 0.0


def ingest(
    store: Store,
    paths: Iterable[str | Path],
    embed: EmbedFn,
    *,
    chunker: ChunkerSettings,
    document_prefix: str = "",
    batch_size: int = 64,
    follow_symlinks: bool = False,
    progress: Callable[[IngestProgress], None] | None = None,
    parallel: int | None = None,
) -> IngestReport:
    """Bring ``store`` up to date with the files under ``paths``.

    ``parallel``: embedding requests in flight (default: :func:`default_parallel`).
    """
    started = time.monotonic()
    report = IngestReport()
    roots = [Path(p).absolute() for p in paths]
    _remove_dead_temp_files(store.root)
    known = store.files()
    todo = _plan(roots, known, follow_symlinks, report)
    tracker = _Tracker(len(todo) + report.unchanged, report.unchanged, started, progress)
    in_flight = default_parallel() if parallel is None else max(1, parallel)
    work = _prepare_in_background(todo, known, chunker, document_prefix,
                                  ahead=batch_size * (in_flight + 1), part=batch_size)
    try:
        with _Committer(store, report) as committer:
            batches = _batches(work, batch_size, report)
            for batch, vectors in _embed_ahead(batches, embed, batch_size, in_flight):
                committer.write(batch, vectors)
                files = sum(item.final for item in batch)
                tracker.advance(files, len(vectors), batch[-1].record.path)
    except BackendError as exc:
        _add_resume_hint(exc, report)
        raise
    _remove_missing(store, roots, known, todo, report)
    store.save_vectors()
    report.total_chunks = store.count()
    report.seconds = time.monotonic() - started
    return report


def _remove_dead_temp_files(root: Path) -> None:
    """Delete half-written temp files (``.NAME.XXXX.tmp``) a killed writer left behind.

    The caller holds the index's write lock, so no live writer owns them.
    """
    for tmp in root.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def _add_resume_hint(exc: BackendError, report: IngestReport) -> None:
    """Tell the user the ingest can be resumed: committed files are kept."""
    done = len(report.added) + len(report.updated)
    kept = f"the {done} files indexed before that are kept" if done else "nothing new was indexed"
    exc.args = (f"{exc} (ingest stopped: {kept}; run the same command again to finish)",)


def _plan(
    roots: list[Path], known: dict[str, FileRecord], follow: bool, report: IngestReport
) -> list[Path]:
    """Walk the roots; return files that may have changed (mtime/size fast path)."""
    todo: list[Path] = []
    for item in iter_files(roots, follow_symlinks=follow):
        if isinstance(item, Skipped):  # an unreadable file is a failure, not a choice
            problems = report.failed if item.unreadable else report.skipped
            problems.append(Problem(str(item.path), item.reason))
            continue
        path = item.absolute()
        record = known.get(str(path))
        try:
            st = path.stat()
        except OSError as exc:
            report.failed.append(Problem(str(path), exc.strerror or str(exc)))
            continue
        if record and record.mtime_ns == st.st_mtime_ns and record.size == st.st_size:
            report.unchanged += 1
        else:
            todo.append(path)
    return todo


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

    def __init__(self, store: Store, report: IngestReport) -> None:
        self.store, self.report = store, report
        self._open = contextlib.ExitStack()
        self._tx: _Writer | None = None
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
            self._files.append((report.failed, Problem(item.record.path, item.failed)))
        elif item.final and item.rows:
            self._files.append((report.added if item.is_new else report.updated,
                                item.record.path))


def _write_item(tx: _Writer, item: _Prepared, vectors: np.ndarray) -> None:
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
    store: Store,
    roots: list[Path],
    known: dict[str, FileRecord],
    todo: list[Path],
    report: IngestReport,
) -> None:
    """Drop indexed files under ``roots`` that are gone, or now fail to load."""
    seen = {str(p) for p in todo}
    failed = {p.path for p in report.failed}
    gone = [
        path for path in known
        if _under(path, roots)
        and (path in failed or (path not in seen and not os.path.exists(path)))
    ]
    if not gone:
        return
    with store.transaction() as tx:
        for path in gone:
            tx.remove_file(path)
    report.removed.extend(p for p in gone if p not in failed)


def _under(path: str, roots: list[Path]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one of them."""
    return any(path == str(r) or path.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)


class _Tracker:
    """Counts progress and forwards snapshots to the caller's callback."""

    def __init__(
        self,
        total: int,
        done: int,
        started: float,
        callback: Callable[[IngestProgress], None] | None,
    ) -> None:
        self.total, self.done, self.chunks = total, done, 0
        self.started, self.callback = started, callback

    def advance(self, files: int, chunks: int, current: str) -> None:
        self.done += files
        self.chunks += chunks
        if self.callback:
            elapsed = time.monotonic() - self.started
            self.callback(IngestProgress(self.done, self.total, self.chunks, elapsed, current))

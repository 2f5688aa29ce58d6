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

Embedding is pipelined: each batch of about ``batch_size`` chunks goes out as
``/api/embed`` requests of many texts, and up to ``parallel`` requests are in
flight at once (``RAGKIT_PARALLEL``; by default ``OLLAMA_NUM_PARALLEL`` + 1, so
the server always has the next request queued while ragkit decodes, writes and
chunks).  Batches are committed in order as their vectors arrive, and at most
about ``parallel + 1`` batches of text are held at any time, however large the
corpus.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .chunking import ChunkerSettings, Span, chunk_stream, chunk_text
from .errors import BackendError, LoadError
from .loading import (
    SUFFIX_KIND,
    Document,
    Skipped,
    check_size,
    iter_files,
    load_file,
    open_text,
    streams,
)
from .store import ChunkRow, FileRecord, Store

if TYPE_CHECKING:
    from .store import _Writer

__all__ = ["IngestProgress", "IngestReport", "Problem", "default_parallel", "ingest"]

#: Embeds a batch of document texts into normalized float32 rows.
EmbedFn = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Problem:
    """A file that was skipped or failed, and why."""

    path: str
    reason: str


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

    def summary(self) -> str:
        """One line for humans, e.g. ``3 added, 1 updated, ... in 2.1 s``."""
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped, {len(self.failed)} failed; "
            f"{self.chunks_written} chunks embedded, {self.total_chunks} in the index; "
            f"{self.seconds:.1f} s"
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


@dataclass(frozen=True)
class _Prepared:
    """A file read and chunked, waiting for its vectors; or one part of a big file.

    A big file's parts replace its old chunks (``first``), add to them, and
    record the file (``final``, with the chunk count in ``record``).  ``failed``:
    reading broke off after some parts; what they wrote is to be dropped.
    """

    record: FileRecord
    rows: list[ChunkRow]
    texts: list[str]
    is_new: bool
    first: bool = True
    final: bool = True
    failed: str = ""


@dataclass(frozen=True)
class _Unchanged:
    record: FileRecord  # same content, new mtime: only the file row is refreshed


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


def _prepare_in_background(
    files: list[Path], known: dict[str, FileRecord], chunker: ChunkerSettings, prefix: str,
    *, ahead: int = 256, part: int = 64,
) -> Iterator[_Prepared | _Unchanged | Problem]:
    """Read and chunk files in a thread, up to about ``ahead`` chunks ahead of the embedder.

    A big file comes in parts of ``part`` chunks.
    """
    out: deque[object] = deque()
    ready = threading.Condition()
    queued = [0]  # chunks prepared and not yet taken
    stop = threading.Event()
    done = object()

    def put(item: object) -> None:
        size = len(item.texts) if isinstance(item, _Prepared) else 0
        with ready:
            while queued[0] >= ahead and out and not stop.is_set():
                ready.wait(0.1)
            out.append(item)
            queued[0] += size
            ready.notify_all()

    def work() -> None:
        try:
            for path in files:
                parts = _prepare_parts(path, known.get(str(path)), chunker, prefix, part)
                with contextlib.closing(parts):
                    for item in parts:
                        if stop.is_set():
                            return
                        put(item)
        finally:
            put(done)

    thread = threading.Thread(target=work, name="ragkit-prepare", daemon=True)
    thread.start()
    try:
        while True:
            with ready:
                while not out:
                    ready.wait()
                item = out.popleft()
                if isinstance(item, _Prepared):
                    queued[0] -= len(item.texts)
                ready.notify_all()
            if item is done:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        with ready:
            ready.notify_all()
        thread.join()


def _prepare(
    path: Path, record: FileRecord | None, chunker: ChunkerSettings, prefix: str
) -> _Prepared | _Unchanged | Problem:
    """Hash, load and chunk one file; failures become a :class:`Problem`."""
    try:
        st = path.stat()
        check_size(path, st.st_size)  # before hashing: a refused file is never read
        digest = _sha256(path)
        if record and record.sha256 == digest:
            return _Unchanged(FileRecord(str(path), digest, st.st_mtime_ns, st.st_size,
                                         record.chunks))
        documents = load_file(path)
    except LoadError as exc:
        return Problem(str(path), exc.reason)
    except OSError as exc:
        return Problem(str(path), exc.strerror or str(exc))
    rows, texts = _chunk_documents(documents, chunker, prefix)
    if not rows:
        return Problem(str(path), "no text to index")
    new = FileRecord(str(path), digest, st.st_mtime_ns, st.st_size, len(rows))
    return _Prepared(new, rows, texts, is_new=record is None)


def _prepare_parts(
    path: Path, record: FileRecord | None, chunker: ChunkerSettings, prefix: str, part: int
) -> Generator[_Prepared | _Unchanged | Problem, None, None]:
    """:func:`_prepare` for a file read whole; a big text file in parts of ``part`` chunks."""
    try:
        st = path.stat()
        if not streams(path, st.st_size):
            yield _prepare(path, record, chunker, prefix)
            return
        digest = _sha256(path)
        if record and record.sha256 == digest:
            yield _Unchanged(FileRecord(str(path), digest, st.st_mtime_ns, st.st_size,
                                        record.chunks))
            return
        windows = open_text(path)
    except LoadError as exc:
        yield Problem(str(path), exc.reason)
        return
    except OSError as exc:
        yield Problem(str(path), exc.strerror or str(exc))
        return
    new = FileRecord(str(path), digest, st.st_mtime_ns, st.st_size, 0)
    markdown = SUFFIX_KIND.get(path.suffix.lower()) == "markdown"
    yield from _parts(new, chunk_stream(windows, chunker, markdown=markdown), prefix, part,
                      is_new=record is None)


def _parts(
    record: FileRecord, spans: Iterator[Span], prefix: str, size: int, *, is_new: bool
) -> Iterator[_Prepared | Problem]:
    """A streamed file's chunks as parts of ``size``; the last one (held back) is final."""
    held: _Prepared | None = None
    count = 0
    try:
        while group := list(itertools.islice(spans, size)):
            if held is not None:
                yield held
            rows, texts = _rows(None, group, prefix)
            held = _Prepared(record, rows, texts, is_new, first=count == 0, final=False)
            count += len(rows)
    except LoadError as exc:  # the file broke off: drop what its parts wrote
        if held is None or held.first:
            yield Problem(record.path, exc.reason)
        else:
            yield _Prepared(record, [], [], is_new, first=False, failed=exc.reason)
        return
    if held is None:
        yield Problem(record.path, "empty file")
        return
    yield replace(held, record=replace(record, chunks=count), final=True)


def _rows(page: int | None, spans: Iterable[Span], prefix: str) -> tuple[list[ChunkRow], list[str]]:
    """Stored rows and embedded texts of ``spans``; the embedded text carries the heading path."""
    rows: list[ChunkRow] = []
    texts: list[str] = []
    for span in spans:
        rows.append(ChunkRow(page, span.start, span.end, span.heading, span.text))
        lead = span.text.lstrip("# ")
        titled = span.heading and not span.heading.endswith(lead.split("\n", 1)[0])
        texts.append(f"{prefix}{span.heading}\n{span.text}" if titled else prefix + span.text)
    return rows, texts


def _chunk_documents(
    documents: list[Document], chunker: ChunkerSettings, prefix: str
) -> tuple[list[ChunkRow], list[str]]:
    """Chunk each document; the embedded text carries the heading path for context."""
    rows: list[ChunkRow] = []
    texts: list[str] = []
    for doc in documents:
        spans = chunk_text(doc.text, chunker, markdown=doc.kind == "markdown")
        more_rows, more_texts = _rows(doc.page, spans, prefix)
        rows.extend(more_rows)
        texts.extend(more_texts)
    return rows, texts


def _sha256(path: Path) -> str:
    """Content hash, read in blocks so big files are never held whole."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


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


def _embed_batch(embed: EmbedFn, texts: list[str], size: int) -> np.ndarray:
    """Embed ``texts`` in requests of at most ``size`` texts each."""
    parts = [embed(texts[i : i + size]) for i in range(0, len(texts), size)]
    return np.vstack(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def default_parallel() -> int:
    """Embedding requests in flight: ``RAGKIT_PARALLEL``, else ``OLLAMA_NUM_PARALLEL`` + 1.

    One more than the server runs at once, so a request is always waiting at the
    server while ragkit handles the last reply.
    """
    for name, extra in (("RAGKIT_PARALLEL", 0), ("OLLAMA_NUM_PARALLEL", 1)):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value) + extra
    return 2


def _embed_ahead(
    batches: Iterable[list[_Prepared]], embed: EmbedFn, size: int, in_flight: int
) -> Iterator[tuple[list[_Prepared], np.ndarray]]:
    """Yield each batch with its vectors, in order, keeping ``in_flight`` requests busy.

    The chunk texts of consecutive batches form one stream, cut into requests of
    ``size`` texts (so a batch boundary never produces a small request); up to
    ``in_flight`` requests run in a thread pool, with one more queued behind them.
    A batch is handed back (to be committed) as soon as the requests covering
    its texts are done, while the following requests keep running.
    """
    if in_flight <= 1:
        for batch in batches:
            yield batch, _embed_batch(embed, [t for p in batch for t in p.texts], size)
        return
    pool = ThreadPoolExecutor(in_flight, thread_name_prefix="ragkit-embed")
    waiting: deque[tuple[list[_Prepared], int, int]] = deque()  # batch, first, end text
    running: deque[Future[np.ndarray]] = deque()
    done: list[np.ndarray] = []  # finished vectors from text ``base`` on, in order
    base = finished = 0
    unsent: list[str] = []

    def send(n: int) -> None:
        running.append(pool.submit(embed, unsent[:n]))
        del unsent[:n]

    def complete(limit: int) -> Iterator[tuple[list[_Prepared], np.ndarray]]:
        nonlocal base, finished
        while True:
            while waiting and waiting[0][2] <= finished:
                batch, first, end = waiting.popleft()
                if end == first:
                    yield batch, np.zeros((0, 0), dtype=np.float32)
                    continue
                rows = np.vstack(done) if len(done) > 1 else done[0]
                yield batch, rows[first - base : end - base]
                done[:] = [rows[end - base :]]
                base = end
            if len(running) <= limit:
                return
            vectors = running.popleft().result()
            done.append(vectors)
            finished += len(vectors)

    total = 0
    try:
        for batch in batches:
            texts = [t for p in batch for t in p.texts]
            waiting.append((batch, total, total + len(texts)))
            total += len(texts)
            unsent.extend(texts)
            while len(unsent) >= size:
                send(size)
            yield from complete(in_flight + 1)
        if unsent:
            send(len(unsent))
        yield from complete(0)
    finally:
        for future in running:
            future.cancel()
        pool.shutdown(wait=not running)


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
        if exc[0] is None and self._tx is not None:  # a file's parts stopped short
            error = RuntimeError("ingest ended inside a file")
            exc = (RuntimeError, error, None)
        self._tx = None
        self._open.__exit__(*exc)  # commits, or rolls back on an exception

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

"""Preparing files for the embedder: hash, read and chunk them, in a background thread.

Each file becomes a :class:`_Prepared` (its rows for the store and the texts
to embed, which carry the heading path), an :class:`_Unchanged` (same content,
new mtime) or a :class:`Problem`.  A big text file (see
:func:`~ragkit.loading.kinds.streams`) is read, chunked and handed on in parts of
about a batch of chunks each, so its text is never held whole.  Reading and
chunking runs ahead of the embedder by a bounded number of chunks.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..chunking.chunk import Chunk
from ..chunking.streaming import chunk_stream
from ..chunking.text import chunk_text
from ..chunking.units import ChunkerSettings
from ..errors import LoadError
from ..loading.files import Document, load_file, open_text
from ..loading.kinds import SUFFIX_KIND, check_size, streams
from ..loading.paths import Found
from ..store.tables import FileRecord

__all__ = ["Problem"]


@dataclass(frozen=True)
class Problem:
    """A file that was skipped or failed, and why.

    ``path`` as the user spelled it (for display); ``key``: its key in the index
    (see :mod:`ragkit.loading.paths`), if it differs.
    """

    path: str
    reason: str
    key: str = ""

    @property
    def file_key(self) -> str:
        """The file's key in the index."""
        return self.key or self.path


@dataclass(frozen=True)
class _Prepared:
    """A file read and chunked, waiting for its vectors; or one part of a big file.

    A big file's parts replace its old chunks (``first``), add to them, and
    record the file (``final``, with the chunk count in ``record``).  ``failed``:
    reading broke off after some parts; what they wrote is to be dropped.
    ``shown``: the path as the user spelled it, if it differs from the key.
    """

    record: FileRecord
    rows: list[Chunk]
    texts: list[str]
    is_new: bool
    first: bool = True
    final: bool = True
    failed: str = ""
    shown: str = ""


@dataclass(frozen=True)
class _Unchanged:
    record: FileRecord  # same content, new mtime: only the file row is refreshed


def _prepare_in_background(
    files: list[Found], known: dict[str, FileRecord], chunker: ChunkerSettings, prefix: str,
    *, ahead: int = 256, part: int = 64, cap_mb: float | None = None,
) -> Iterator[_Prepared | _Unchanged | Problem]:
    """Read and chunk files in a thread, up to about ``ahead`` chunks ahead of the embedder.

    A big file comes in parts of ``part`` chunks; ``cap_mb`` is the size cap of HTML files.
    """
    queue = _Ahead(ahead)
    done = object()
    crashed: list[BaseException] = []  # what stopped the thread, other than the end of files

    def work() -> None:
        try:
            for found in files:
                parts = _prepare_parts(found, known.get(found.key), chunker, prefix, part,
                                       cap_mb)
                with contextlib.closing(parts):
                    for item in parts:
                        if queue.stop.is_set():
                            return
                        queue.put(item)
        except BaseException as exc:  # a bug must stop the ingest, not look like the end
            crashed.append(exc)
        finally:
            queue.put(done)

    thread = threading.Thread(target=work, name="ragkit-prepare", daemon=True)
    thread.start()
    try:
        while (item := queue.take()) is not done:
            yield item  # type: ignore[misc]
        if crashed:
            raise crashed[0]
    finally:
        queue.close()
        thread.join()


class _Ahead:
    """A queue from the preparing thread, bounded by the chunks it holds."""

    def __init__(self, limit: int) -> None:
        self._items: deque[object] = deque()
        self._ready = threading.Condition()
        self._queued = 0  # chunks prepared and not yet taken
        self._limit = limit
        self.stop = threading.Event()

    def put(self, item: object) -> None:
        """Add ``item``, first waiting while about ``limit`` chunks are queued."""
        size = len(item.texts) if isinstance(item, _Prepared) else 0
        with self._ready:
            while self._queued >= self._limit and self._items and not self.stop.is_set():
                self._ready.wait(0.1)
            self._items.append(item)
            self._queued += size
            self._ready.notify_all()

    def take(self) -> object:
        """The next item, waiting for one."""
        with self._ready:
            while not self._items:
                self._ready.wait()
            item = self._items.popleft()
            if isinstance(item, _Prepared):
                self._queued -= len(item.texts)
            self._ready.notify_all()
        return item

    def close(self) -> None:
        """Tell the preparing thread to stop, and wake it if it waits."""
        self.stop.set()
        with self._ready:
            self._ready.notify_all()


def _prepare(
    path: Path, record: FileRecord | None, chunker: ChunkerSettings, prefix: str,
    key: str = "", cap_mb: float | None = None,
) -> _Prepared | _Unchanged | Problem:
    """Hash, load and chunk one file; failures become a :class:`Problem`.

    ``key``: the file's key in the index (see :mod:`ragkit.loading.paths`), if not ``path``.
    """
    key = key or str(path)
    try:
        st = path.stat()
        check_size(path, st.st_size, cap_mb)  # before hashing: a refused file is never read
        digest = _sha256(path)
        if record and record.sha256 == digest:
            return _unchanged(key, digest, st, record)
        documents = load_file(path, cap_mb)
    except (LoadError, OSError) as exc:
        return _problem(path, key, exc)
    rows, texts = _chunk_documents(documents, chunker, prefix)
    if not rows:
        return Problem(str(path), "no text to index", key)
    new = FileRecord(key, digest, st.st_mtime_ns, st.st_size, len(rows))
    return _Prepared(new, rows, texts, is_new=record is None, shown=str(path))


def _prepare_parts(
    found: Found, record: FileRecord | None, chunker: ChunkerSettings, prefix: str, part: int,
    cap_mb: float | None = None,
) -> Generator[_Prepared | _Unchanged | Problem, None, None]:
    """:func:`_prepare` for a file read whole; a big text file in parts of ``part`` chunks."""
    path = found.path
    try:
        st = path.stat()
        if not streams(path, st.st_size):
            yield _prepare(path, record, chunker, prefix, found.key, cap_mb)
            return
        digest = _sha256(path)
        if record and record.sha256 == digest:
            yield _unchanged(found.key, digest, st, record)
            return
        windows = open_text(path)
    except (LoadError, OSError) as exc:
        yield _problem(path, found.key, exc)
        return
    new = FileRecord(found.key, digest, st.st_mtime_ns, st.st_size, 0)
    markdown = SUFFIX_KIND.get(path.suffix.lower()) == "markdown"
    yield from _parts(new, chunk_stream(windows, chunker, markdown=markdown), prefix, part,
                      is_new=record is None, shown=str(path))


def _unchanged(key: str, digest: str, st: os.stat_result, record: FileRecord) -> _Unchanged:
    """A file whose content is indexed already: only its mtime (and size) are new."""
    return _Unchanged(FileRecord(key, digest, st.st_mtime_ns, st.st_size, record.chunks))


def _problem(path: Path, key: str, exc: LoadError | OSError) -> Problem:
    """Why ``path`` could not be read, in one line."""
    if isinstance(exc, LoadError):
        return Problem(str(path), exc.reason, key)
    return Problem(str(path), exc.strerror or str(exc), key)


def _parts(
    record: FileRecord, spans: Iterator[Chunk], prefix: str, size: int, *, is_new: bool,
    shown: str,
) -> Iterator[_Prepared | Problem]:
    """A streamed file's chunks as parts of ``size``; the last one (held back) is final."""
    held: _Prepared | None = None
    count = 0
    try:
        while group := list(itertools.islice(spans, size)):
            if held is not None:
                yield held
            rows, texts = _rows(None, group, prefix)
            held = _Prepared(record, rows, texts, is_new, first=count == 0, final=False,
                             shown=shown)
            count += len(rows)
    except LoadError as exc:  # the file broke off: drop what its parts wrote
        if held is None or held.first:
            yield Problem(shown, exc.reason, record.path)
        else:
            yield _Prepared(record, [], [], is_new, first=False, failed=exc.reason, shown=shown)
        return
    if held is None:
        yield Problem(shown, "empty file", record.path)
        return
    yield replace(held, record=replace(record, chunks=count), final=True)


def _rows(page: int | None, spans: Iterable[Chunk], prefix: str) -> tuple[list[Chunk], list[str]]:
    """Stored rows and embedded texts of ``spans``; the embedded text carries the heading path."""
    rows: list[Chunk] = []
    texts: list[str] = []
    for span in spans:
        rows.append(replace(span, page=page))
        lead = span.text.lstrip("# ")
        titled = span.heading and not span.heading.endswith(lead.split("\n", 1)[0])
        texts.append(f"{prefix}{span.heading}\n{span.text}" if titled else prefix + span.text)
    return rows, texts


def _chunk_documents(
    documents: list[Document], chunker: ChunkerSettings, prefix: str
) -> tuple[list[Chunk], list[str]]:
    """Chunk each document; the embedded text carries the heading path for context."""
    rows: list[Chunk] = []
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

"""The library's front door: :class:`Index` opens, fills, searches and asks an index.

Typical use (needs a backend; see the README)::

    import ragkit
    index = ragkit.Index.open("notes", create=True)
    index.ingest(["~/notes"]).summary()
    index.search("how do I rebuild?", k=3)[0].location
    print(index.ask("How do I rebuild?").text)
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .answering import MODES, Answer, AnswerStream, context_limits, options_for, relevance
from .backend import Backend, StreamChunk, embedding_prefixes
from .backends import BackendChooser
from .chunking import ChunkerSettings
from .errors import (
    EmbeddingMismatchError,
    IndexBusyError,
    IndexCorruptError,
    IndexNotFoundError,
    UsageError,
)
from .ingest import IngestProgress, IngestReport, ingest
from .prompting import ContextFit, build_generate_prompt, build_messages, fit_context
from .retrieval import MODES as RETRIEVAL_MODES
from .retrieval import Hit, dense_weight, match_paths, retrieve
from .store import DATABASE, LOCKFILE, MANIFEST, Store

__all__ = ["DEFAULT_CHAT_MODEL", "DEFAULT_EMBED_MODEL", "MAX_K", "Index", "index_home"]

DEFAULT_EMBED_MODEL = "all-minilm"
DEFAULT_CHAT_MODEL = "smollm2:135m"
MAX_K = 1000

# Below this relevance (ragkit.answering.relevance: best cosine + 0.3 x word
# coverage), `ask` answers "not in the documents" without calling the model.
# Calibrated per embedding model by benchmarks/eval_targets.py (see README,
# "Saying not in the documents"); models not listed get no threshold unless
# the caller gives one.
RELEVANCE_THRESHOLDS = {"all-minilm": 0.527}


def index_home() -> Path:
    """Where named indexes live: ``RAGKIT_HOME`` or ``./indexes``."""
    return Path(os.environ.get("RAGKIT_HOME") or "indexes")


def _resolve(name_or_path: str | Path, home: Path | None) -> Path:
    """A bare name is looked up in ``home``; anything with a slash is a path."""
    text = str(name_or_path)
    if not text.strip():
        raise UsageError("index name is empty — pass --index NAME")
    if os.sep in text or text.startswith("."):
        return Path(text).expanduser()
    return (home or index_home()) / text


class Index:
    """An index of documents on disk, plus the backends that embed and answer."""

    def __init__(
        self,
        path: Path,
        store: Store | None,
        backends: BackendChooser,
        *,
        embed_model: str | None = None,
        chunker: ChunkerSettings | None = None,
    ) -> None:
        self.path = path
        self.name = path.name
        self._store = store
        self._backends = backends
        self._requested_model = embed_model
        self._requested_chunker = chunker
        self._parallel: int | None = None  # embedding requests in flight, set per ingest

    @classmethod
    def open(
        cls,
        name_or_path: str | Path = "default",
        *,
        home: Path | None = None,
        backend: str | Backend | None = None,
        host: str | None = None,
        timeout: float = 300.0,
        embed_model: str | None = None,
        chunker: ChunkerSettings | None = None,
        create: bool = False,
        rebuild: bool = False,
        announce: Callable[[str], None] | None = None,
    ) -> Index:
        """Open an index by name (in ``home``) or path; ``create=True`` allows a new one.

        ``rebuild=True`` (with ``create``) also opens a damaged index, as an empty
        one, so that ``ingest(..., rebuild=True)`` can replace it.
        """
        path = _resolve(name_or_path, home)
        store = None
        if Store.exists(path):
            try:
                store = Store.open(path)
            except IndexCorruptError:
                if not (create and rebuild):
                    raise
        if store is None and not create:
            raise IndexNotFoundError(str(name_or_path), str(path.parent))
        chooser = _chooser(backend, host, timeout, announce)
        return cls(path, store, chooser, embed_model=embed_model, chunker=chunker)

    # -- properties ----------------------------------------------------------------

    @property
    def manifest(self) -> dict[str, Any]:
        """What the index was built with (empty before the first ingest)."""
        return dict(self._store.manifest) if self._store else {}

    @property
    def embed_model(self) -> str:
        """The embedding model this index uses."""
        return self.manifest.get("embed_model") or self._requested_model or DEFAULT_EMBED_MODEL

    def __len__(self) -> int:
        return self._store.count() if self._store else 0

    def close(self) -> None:
        """Release files and locks."""
        if self._store:
            self._store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ingest --------------------------------------------------------------------

    def ingest(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        rebuild: bool = False,
        follow_symlinks: bool = False,
        batch_size: int = 64,
        progress: Callable[[IngestProgress], None] | None = None,
        parallel: int | None = None,
    ) -> IngestReport:
        """Index new and changed files under ``paths`` and drop deleted ones.

        ``paths``: files and folders; a single ``str`` or ``Path`` is taken as
        one path (``ingest("docs")`` is ``ingest(["docs"])``), never as a
        sequence of one-character paths.

        ``parallel``: embedding requests in flight (default: ``RAGKIT_PARALLEL``,
        else ``OLLAMA_NUM_PARALLEL`` + 1).

        A first build writes straight into the index folder, so whatever it
        committed survives Ctrl-C or a crash and the next run resumes.  A
        ``rebuild`` of an existing index builds next to it and swaps the result
        in, so the old index stays usable until the new one is complete.
        """
        self._parallel = parallel
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        roots = [Path(p).expanduser() for p in paths]
        if not roots:
            raise UsageError("nothing to ingest — give at least one file or folder")
        if rebuild and (self._store is not None or Store.exists(self.path)):
            # (No store but a manifest: the folder holds a damaged index to replace.)
            return self._build_fresh(roots, follow_symlinks, batch_size, progress)
        if self._store is None:
            return self._first_build(roots, follow_symlinks, batch_size, progress)
        self._check_settings()
        store = self._store
        store.lock()
        try:
            _clean_stale_work(self.path)
            return self._ingest_into(store, roots, follow_symlinks, batch_size, progress)
        finally:
            store.unlock()

    def _ingest_into(
        self,
        store: Store,
        paths: list[Path],
        follow: bool,
        batch_size: int,
        progress: Callable[[IngestProgress], None] | None,
    ) -> IngestReport:
        return ingest(store, paths, self._embed_documents, chunker=self._chunker(),
                      document_prefix=self._prefixes()[1], batch_size=batch_size,
                      parallel=self._parallel,
                      follow_symlinks=follow, progress=progress)

    def _first_build(
        self,
        paths: list[Path],
        follow: bool,
        batch_size: int,
        progress: Callable[[IngestProgress], None] | None,
    ) -> IngestReport:
        """Create the index in place under its write lock, then ingest incrementally."""
        model = self._requested_model or self.embed_model
        chunker = self._requested_chunker or ChunkerSettings()
        probe = self._embed(model, ["dimension probe"])  # fails before anything is created
        self.path.mkdir(parents=True, exist_ok=True)
        with _writer_lock(self.path):
            _clean_stale_work(self.path)
            created = not Store.exists(self.path)
            if created:
                manifest = self._new_manifest(model, probe.shape[1], chunker)
                self._store = Store.create(self.path, manifest)
                self._requested_chunker = None
            else:  # another process created it since we looked
                self._store = Store.open(self.path)
                self._check_settings()
            store = self._store
            try:
                return self._ingest_into(store, paths, follow, batch_size, progress)
            except BaseException:
                if created and not store.files():  # nothing committed: leave no empty index
                    store.close()
                    self._store = None
                    _remove_index_files(self.path)
                raise

    def _build_fresh(
        self,
        paths: list[Path],
        follow: bool,
        batch_size: int,
        progress: Callable[[IngestProgress], None] | None,
    ) -> IngestReport:
        """Build into a work folder, then swap it in: the old index survives a failure.

        The work folder lives in ``<home>/.ragkit-work/`` (hidden, and not an
        index itself, so ``ragkit indexes list`` never shows it) and is locked
        while it is built; one left behind by a killed process is removed by
        the next ingest (:func:`_clean_stale_work`).
        """
        with _writer_lock(self.path):  # the lock Store.lock() takes: one writer at a time
            _clean_stale_work(self.path)
            model = self._requested_model or self.embed_model
            chunker = self._requested_chunker or ChunkerSettings()
            probe = self._embed(model, ["dimension probe"])
            building = _work_dir(self.path) / f"{self.name}.building-{os.getpid()}"
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir(parents=True)
            with _writer_lock(building):
                new = Store.create(building, self._new_manifest(model, probe.shape[1], chunker))
                try:
                    report = ingest(new, paths, self._embed_documents_with(model),
                                    chunker=chunker, document_prefix=embedding_prefixes(model)[1],
                                    batch_size=batch_size, parallel=self._parallel,
                                    follow_symlinks=follow,
                                    progress=progress)
                except BaseException:
                    new.close()
                    shutil.rmtree(building, ignore_errors=True)
                    _remove_empty(building.parent)
                    raise
                new.close()
                self._swap_in(building)
        return report

    def _swap_in(self, building: Path) -> None:
        """Replace the index folder with the freshly built one, atomically where possible.

        On Linux the two folders trade places in one ``renameat2(RENAME_EXCHANGE)``,
        so there is no moment without an index at ``self.path``; elsewhere two
        renames leave a window of microseconds.
        """
        if self._store is not None:
            self._store.close()
        if not _exchange(building, self.path):
            old = building.with_name(building.name.replace(".building-", ".old-"))
            os.rename(self.path, old)
            os.rename(building, self.path)
            building = old
        shutil.rmtree(building, ignore_errors=True)  # now the old index
        _remove_empty(building.parent)
        self._store = Store.open(self.path)
        self._requested_chunker = None

    def _new_manifest(self, model: str, dimension: int, chunker: ChunkerSettings) -> dict[str, Any]:
        query_prefix, document_prefix = embedding_prefixes(model)
        return {
            "embed_model": model,
            "dimension": dimension,
            "chunker": chunker.as_dict(),
            "query_prefix": query_prefix,
            "document_prefix": document_prefix,
            "ragkit_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _chunker(self) -> ChunkerSettings:
        settings = dict(self.manifest.get("chunker", {}))
        return ChunkerSettings(size=int(settings["size"]), overlap=int(settings["overlap"]))

    def _check_settings(self) -> None:
        """Refuse an incremental ingest whose model or chunker differs from the index's."""
        self._check_model()
        wanted = self._requested_chunker
        if wanted and wanted != self._chunker():
            have = self._chunker()
            raise UsageError(
                f"index '{self.name}' is chunked with size={have.size} overlap={have.overlap}; "
                "changing that needs a full re-index: add --rebuild"
            )

    def _check_model(self) -> None:
        built = self.manifest.get("embed_model")
        wanted = self._requested_model
        if built and wanted and wanted != built:
            raise EmbeddingMismatchError(
                f"index '{self.name}' was built with embedding model '{built}' "
                f"({self.manifest.get('dimension')} dims), not '{wanted}' — use "
                f"--embed-model {built}, or re-index with --rebuild"
            )

    # -- embedding -----------------------------------------------------------------

    def _embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        return self._backends.for_model(model).embed(model, texts)

    def _embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(self.embed_model, texts)

    def _embed_documents_with(self, model: str) -> Callable[[Sequence[str]], np.ndarray]:
        return lambda texts: self._embed(model, texts)

    def _prefixes(self) -> tuple[str, str]:
        m = self.manifest
        return m.get("query_prefix", ""), m.get("document_prefix", "")

    # -- retrieval -----------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: str = "hybrid",
        paths: Sequence[str] | None = None,
        diversity: float = 0.0,
    ) -> list[Hit]:
        """The ``k`` chunks best matching ``query``: ``hybrid``, ``vector`` or ``keyword``.

        ``paths``: glob patterns a chunk's file must match (see
        :func:`ragkit.retrieval.match_paths`).  ``diversity`` (0..1): re-rank by
        maximal marginal relevance so near-copies do not fill the top ``k``.
        """
        _check_k(k)
        if not query.strip():
            raise UsageError("the query is empty — say what to search for")
        if mode not in RETRIEVAL_MODES:
            raise UsageError(
                f"unknown retrieval mode '{mode}' — use one of: {', '.join(RETRIEVAL_MODES)}")
        if not 0.0 <= diversity <= 1.0:
            raise UsageError(f"diversity must be between 0 and 1, got {diversity}")
        if self._store is None or len(self) == 0:
            return []
        ids = self._chunks_under(paths) if paths else None
        # Keyword mode embeds the query too: every hit carries its cosine, which the
        # relevance threshold of ``ask``, MMR diversity and ``search --json`` rely on.
        vector = self._embed_query(query)
        return retrieve(self._store, query, vector, k, mode, ids=ids, diversity=diversity,
                        dense=dense_weight(query, self.embed_model))

    def _chunks_under(self, patterns: Sequence[str]) -> list[int]:
        """Ids of the chunks whose file matches one of the glob ``patterns``."""
        assert self._store is not None
        matched = match_paths(self._store.files(), patterns)
        if not matched:
            shown = " ".join(f"'{p}'" for p in patterns)
            raise UsageError(f"no file in index '{self.name}' matches --path {shown} — "
                             "'*.pdf' matches file names, 'docs/' or 'docs/*.md' paths from "
                             "the current folder")
        return self._store.chunk_ids(matched)

    def _embed_query(self, query: str) -> np.ndarray:
        """The query's embedding, checked against the index's model and dimension."""
        assert self._store is not None
        self._check_model()
        vector = self._embed(self.embed_model, [self._prefixes()[0] + query])
        if vector.shape[1] != self._store.dimension:
            raise EmbeddingMismatchError(
                f"'{self.embed_model}' now returns {vector.shape[1]}-dim vectors but index "
                f"'{self.name}' holds {self._store.dimension}-dim ones — re-index with --rebuild"
            )
        return vector[0]

    # -- answering -----------------------------------------------------------------

    def ask_stream(
        self,
        question: str,
        *,
        k: int = 4,
        mode: str = "chat",
        model: str | None = None,
        options: Mapping[str, Any] | None = None,
        history: Sequence[dict[str, Any]] = (),
        search_query: str | None = None,
        retrieval: str = "hybrid",
        min_score: float | None = None,
        force: bool = False,
        paths: Sequence[str] | None = None,
        diversity: float = 0.0,
    ) -> AnswerStream:
        """Retrieve for ``question`` and stream the model's answer (see :class:`AnswerStream`).

        The prompt is kept within the ``num_ctx`` in effect (ragkit's options
        for the model, or ``options``) minus room for ``num_predict``: the
        oldest ``history`` turns, then the lowest-ranked passages, are left
        out until it fits, and the stream's ``note`` says so.  A UsageError
        when not even the best passage fits.
        """
        if not question.strip():
            raise UsageError("the question is empty — ask something")
        if mode not in MODES:
            raise UsageError(f"unknown mode '{mode}' — use one of: {', '.join(MODES)}")
        hits = self.search(search_query or question, k, mode=retrieval, paths=paths,
                           diversity=diversity)
        model = model or os.environ.get("RAGKIT_CHAT_MODEL") or DEFAULT_CHAT_MODEL
        relevant = force or self._relevant(search_query or question, hits, min_score)
        if not hits or not relevant:
            return AnswerStream(question, hits, None, mode=mode, model=model)
        opts = options_for(model, dict(options or {}))
        num_ctx, reserve = context_limits(opts)
        fit = fit_context(question, hits, history, mode=mode, num_ctx=num_ctx, reserve=reserve)
        chunks = self._generate(model, mode, question, fit, opts)
        return AnswerStream(question, fit.hits, chunks, mode=mode, model=model, fit=fit)

    def _generate(
        self, model: str, mode: str, question: str, fit: ContextFit, opts: dict[str, Any]
    ) -> Iterator[StreamChunk]:
        """Send the fitted passages (and, in chat mode, history) in ``mode``'s prompt shape."""
        backend = self._backends.for_model(model)
        if mode == "chat":
            messages = build_messages(question, fit.hits, fit.history)
            return backend.chat(model, messages, options=opts)
        prompt = build_generate_prompt(question, fit.hits)
        return backend.generate(model, prompt, options=opts)

    def relevance_threshold(self, min_score: float | None = None) -> float | None:
        """What :func:`~ragkit.answering.relevance` must reach before the model is asked."""
        if min_score is not None:
            return min_score
        if os.environ.get("RAGKIT_MIN_SCORE"):
            try:
                return float(os.environ["RAGKIT_MIN_SCORE"])
            except ValueError:
                raise UsageError("RAGKIT_MIN_SCORE must be a number, e.g. 0.3") from None
        return RELEVANCE_THRESHOLDS.get(self.embed_model.split(":")[0])

    def _relevant(self, question: str, hits: list[Hit], min_score: float | None) -> bool:
        threshold = self.relevance_threshold(min_score)
        score = relevance(question, hits)
        return threshold is None or score is None or score >= threshold

    def ask(self, question: str, **kwargs: Any) -> Answer:
        """Like :meth:`ask_stream`, but wait for the whole answer."""
        return self.ask_stream(question, **kwargs).answer


WORK_DIR = ".ragkit-work"


def _work_dir(index_path: Path) -> Path:
    """Where rebuilds of the indexes next to ``index_path`` are assembled."""
    return index_path.parent / WORK_DIR


@contextlib.contextmanager
def _writer_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s single-writer lock (the one :meth:`Store.lock` takes), or raise busy."""
    fh = open(folder / LOCKFILE, "a+")  # noqa: SIM115 - closed below
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusyError(str(folder)) from None
        yield
    finally:
        fh.close()  # closing releases the lock


def _clean_stale_work(index_path: Path) -> None:
    """Remove work folders left by killed rebuilds (their lock is free once the owner is dead)."""
    work = _work_dir(index_path)
    if not work.is_dir():
        return
    for folder in work.glob(f"{index_path.name}.*-*"):
        try:
            with _writer_lock(folder):
                shutil.rmtree(folder, ignore_errors=True)
        except (IndexBusyError, OSError):
            continue  # a live rebuild, or already gone
    _remove_empty(work)


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _remove_index_files(path: Path) -> None:
    """Delete an index folder ragkit created, keeping anything else a user put there."""
    for name in (MANIFEST, DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", LOCKFILE):
        with contextlib.suppress(OSError):
            (path / name).unlink()
    for cache in path.glob("vectors-*.faiss"):
        with contextlib.suppress(OSError):
            cache.unlink()
    _remove_empty(path)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two folders (Linux ``renameat2``); False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (38, 22, 95):  # ENOSYS, EINVAL, EOPNOTSUPP: the kernel or filesystem says no
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise UsageError(f"-k must be between 1 and {MAX_K}, got {k}")


def _chooser(
    backend: str | Backend | None,
    host: str | None,
    timeout: float,
    announce: Callable[[str], None] | None,
) -> BackendChooser:
    """Wrap a ready backend, or choose one by name (``auto`` by default)."""
    if backend is None or isinstance(backend, str):
        return BackendChooser(backend, host=host, timeout=timeout, announce=announce)
    return _FixedChooser(backend)


class _FixedChooser(BackendChooser):
    """A chooser that always hands out the one backend the caller supplied."""

    def __init__(self, backend: Backend) -> None:
        super().__init__("auto")
        self._fixed = backend

    def for_model(self, model: str) -> Backend:
        return self._fixed

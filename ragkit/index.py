"""The library's front door: :class:`Index` opens, fills, searches and asks an index.

Typical use (needs a backend; see the README)::

    import ragkit
    index = ragkit.Index.open("notes", create=True)
    index.ingest(["~/notes"]).summary()
    index.search("how do I rebuild?", k=3)[0].location
    print(index.ask("How do I rebuild?").text)
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .answering import (
    ANSWER_MODES,
    MODES,
    Answer,
    AnswerStream,
    answer_plan,
    check_min_score,
    context_limits,
    options_for,
    relevance,
    relevance_threshold,
    stream_reply,
)
from .backends.base import Backend
from .backends.chooser import BackendChooser, chooser
from .chunking.units import ChunkerSettings
from .errors import (
    BackendError,
    EmbeddingMismatchError,
    IndexCorruptError,
    IndexFolderError,
    IndexNotFoundError,
    IndexVersionError,
    UsageError,
)
from .extractive import Excerpt, extract
from .home import index_home, not_found
from .ingest.pipeline import IngestProgress, IngestReport, ingest
from .loading.files import check_roots, max_file_mb
from .models import DEFAULT_CHAT_MODEL, DEFAULT_EMBED_MODEL, embedding_prefixes
from .prompting import fit_context
from .retrieval import MODES as RETRIEVAL_MODES
from .retrieval import Hit, dense_weight, display_path, match_paths, retrieve
from .settings import Settings
from .store.base import IndexStore
from .store.building import (
    clean_stale_work,
    delete_index,
    first_build,
    new_manifest,
    nothing_indexed,
    replacement,
    swap_folders,
)
from .store.folders import (
    check_new_folder,
    check_new_name,
    check_path_length,
    expand_user,
    index_inside,
    lock_index,
    real_folder,
)
from .store.opening import (
    check_store,
    create_remote,
    drop_remote,
    is_remote,
    open_store,
    store_exists,
    store_of,
)

__all__ = ["DEFAULT_CHAT_MODEL", "DEFAULT_EMBED_MODEL", "MAX_K", "Index", "resolve_index"]

MAX_K = 1000


def resolve_index(name_or_path: str | Path, home: Path | None) -> Path:
    """The folder of an index: a bare name is in ``home``; anything with a slash is a path."""
    text = str(name_or_path)
    if not text.strip():
        raise UsageError("index name is empty — pass --index NAME")
    path = expand_user(text) if os.sep in text or text.startswith(".") else (
        (home or index_home()) / text)
    check_path_length(path)
    return path


class Index:
    """An index of documents on disk, plus the backends that embed and answer."""

    def __init__(
        self,
        path: Path,
        store: IndexStore | None,
        backends: BackendChooser,
        *,
        embed_model: str | None = None,
        chunker: ChunkerSettings | None = None,
        settings: Settings | None = None,
        store_uri: str | None = None,
    ) -> None:
        self.path = path
        self.name = path.name
        self._store = store
        self._backends = backends
        self._requested_model = embed_model
        self._requested_chunker = chunker
        self._store_uri = store_uri  # where a new index goes (--store; None: local)
        self._parallel: int | None = None  # embedding requests in flight, set per ingest
        self._exclude: list[Path] = []  # folders the walk leaves out (the index's own)
        self._given_settings = settings
        # The last query embedded, so that an extractive answer need not embed it again.
        self._last_query: tuple[str, np.ndarray] | None = None

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
        damaged_ok: bool = False,
        settings: Settings | None = None,
        store: str | None = None,
    ) -> Index:
        """Open an index by name (in ``home``) or path; ``create=True`` allows a new one.

        ``rebuild=True`` (with ``create``) also opens a damaged index, as an empty
        one, so that ``ingest(..., rebuild=True)`` can replace it; ``damaged_ok``
        opens a damaged or newer-format one that way too, for :meth:`delete`.
        A new index needs a name without control characters, and a folder that is
        new, empty or a link to such a folder.  ``settings``: what the arguments leave
        out (default: read from the environment when needed).  ``store``: where a
        new index is kept (``--store``: ``local``, ``milvus://HOST:PORT[/DB]`` or a
        Milvus Lite ``.db`` file); an existing index must be in that store.
        """
        path = resolve_index(name_or_path, home or (settings.home if settings else None))
        if path.exists() and not path.is_dir():
            raise IndexFolderError(str(path), f"{path} is a file, not an index folder",
                                   "pass --index a name, or the path of an index folder")
        opened = None
        if store_exists(path):
            try:
                check_store(path, store)
                opened = open_store(path)
            except (IndexCorruptError, IndexVersionError) as exc:
                repairable = create and rebuild and isinstance(exc, IndexCorruptError)
                if not (damaged_ok or repairable):
                    raise
        elif create:
            check_new_name(path)
            check_new_folder(real_folder(path))
        if opened is None and not create and not (damaged_ok and store_exists(path)):
            from_home = home is None and path.parent == index_home()
            raise not_found(str(name_or_path), path, from_home)
        if settings is not None:  # what the arguments leave out
            backend = backend or settings.backend
            host = settings.ollama_host if host is None else host
        backends = chooser(backend, host, timeout, announce)
        return cls(path, opened, backends, embed_model=embed_model, chunker=chunker,
                   settings=settings, store_uri=store)

    # -- properties ----------------------------------------------------------------

    @property
    def chat_model(self) -> str:
        """The chat model ``ask`` uses when none is named (the settings' choice)."""
        return self._settings().chat_model

    def _settings(self) -> Settings:
        """The settings given at open, else the environment's now (tests change it)."""
        return self._given_settings or Settings.from_env()

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

    def delete(self) -> list[str]:
        """Delete the index: the files ragkit wrote, never anything else in its folder.

        Takes the writer lock (during an ingest: :class:`IndexBusyError`).  The
        folder goes too when nothing else is left in it; returns the names of
        what was kept.
        """
        self.close()
        self._store = None
        if not store_exists(self.path):
            raise IndexNotFoundError(self.name, str(self.path.parent))
        drop_remote(self.path)
        return delete_index(self.path)

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
        self._parallel = self._settings().parallel if parallel is None else parallel
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        roots = [expand_user(os.fspath(p)) for p in paths]
        if not roots:
            raise UsageError("nothing to ingest — give at least one file or folder")
        check_roots(roots)  # mistakes in what was asked are reported before a model loads
        max_file_mb(self._settings())
        self._exclude = index_inside(self.path, roots)
        remote = self._remote_target(rebuild)
        if remote:
            return self._remote_build(remote, roots, follow_symlinks, batch_size, progress)
        if rebuild and (self._store is not None or store_exists(self.path)):
            # (No store but a manifest: the folder holds a damaged index to replace.)
            return self._build_fresh(roots, follow_symlinks, batch_size, progress)
        if self._store is None:
            return self._first_build(roots, follow_symlinks, batch_size, progress)
        return self._update(self._store, roots, follow_symlinks, batch_size, progress)

    def _remote_target(self, rebuild: bool) -> str | None:
        """The Milvus store to create the index in (a rebuild drops its collections first)."""
        if self._store is None:
            return self._store_uri if is_remote(self._store_uri) else None
        where = store_of(self.path)
        if not (rebuild and is_remote(where)):
            return None
        self._store.close()
        self._store = None
        drop_remote(self.path)  # Milvus cannot swap collections: a rebuild starts empty
        return where

    def _remote_build(
        self,
        uri: str,
        paths: list[Path],
        follow: bool,
        batch_size: int,
        progress: Callable[[IngestProgress], None] | None,
    ) -> IngestReport:
        """Create (or join) the index's collections in Milvus, then ingest into them."""
        model, chunker, dimension = self._new_settings()
        self._store = create_remote(self.path, new_manifest(model, dimension, chunker), uri)
        self._requested_chunker = None
        return self._update(self._store, paths, follow, batch_size, progress)

    def _update(
        self,
        store: IndexStore,
        paths: list[Path],
        follow: bool,
        batch_size: int,
        progress: Callable[[IngestProgress], None] | None,
    ) -> IngestReport:
        """An incremental ingest into the existing index, under its write lock."""
        self._check_settings()
        store.lock()
        try:
            clean_stale_work(self.path)
            report = self._ingest_into(store, paths, follow, batch_size, progress)
        finally:
            store.unlock()
        if not store.count():
            raise nothing_indexed(report, paths, f"index '{self.name}' holds no files")
        return report

    def _ingest_into(
        self,
        store: IndexStore,
        paths: list[Path],
        follow: bool,
        batch_size: int,
        progress: Callable[[IngestProgress], None] | None,
    ) -> IngestReport:
        return ingest(store, paths, self._embed_documents, chunker=self._chunker(),
                      document_prefix=self._prefixes()[1], batch_size=batch_size,
                      parallel=self._parallel, follow_symlinks=follow, progress=progress,
                      exclude=self._exclude, max_mb=self._settings().max_file_mb)

    def _first_build(
        self,
        paths: list[Path],
        follow: bool,
        batch_size: int,
        progress: Callable[[IngestProgress], None] | None,
    ) -> IngestReport:
        """Create the index, which appears at its first commit; then it fills in place.

        See :func:`~ragkit.store.building.first_build`: a run that fails or is killed
        before its first commit leaves nothing, nor does one that indexes nothing.
        """
        model, chunker, dimension = self._new_settings()  # fails before anything is created
        manifest = new_manifest(model, dimension, chunker)
        with first_build(self.path, manifest) as store:
            if store is None:  # another process created it since we looked
                self._store = open_store(self.path)
                return self._update(self._store, paths, follow, batch_size, progress)
            self._store, self._requested_chunker = store, None
            try:
                report = self._ingest_into(store, paths, follow, batch_size, progress)
                if not store.count():
                    raise nothing_indexed(report, paths, "no index was created")
                return report
            finally:
                if store.root != real_folder(self.path):  # never published: it is gone
                    self._store = None

    def _build_fresh(
        self,
        paths: list[Path],
        follow: bool,
        batch_size: int,
        progress: Callable[[IngestProgress], None] | None,
    ) -> IngestReport:
        """Build into a work folder, then swap it in: the old index survives a failure.

        See :mod:`ragkit.store.building` for the work folder and the swap.
        """
        with lock_index(self.path):  # the lock Store.lock() takes: one writer at a time
            clean_stale_work(self.path)
            model, chunker, dimension = self._new_settings()
            manifest = new_manifest(model, dimension, chunker)
            with replacement(self.path, manifest, self._swap_in) as new:
                report = ingest(new, paths, self._embed_documents_with(model),
                                chunker=chunker, document_prefix=embedding_prefixes(model)[1],
                                batch_size=batch_size, parallel=self._parallel,
                                follow_symlinks=follow, progress=progress,
                                exclude=self._exclude,
                                max_mb=self._settings().max_file_mb)
                if not new.count():
                    raise nothing_indexed(report, paths, "the old index is kept as it was")
        return report

    def _swap_in(self, building: Path) -> None:
        """Replace the index folder with the freshly built one and open it."""
        if self._store is not None:
            self._store.close()
        swap_folders(building, self.path)
        self._store = open_store(self.path)
        self._requested_chunker = None

    def _new_settings(self) -> tuple[str, ChunkerSettings, int]:
        """Model, chunker and vector size of a new build (the model embeds a probe)."""
        model = self._requested_model or self.embed_model
        chunker = self._requested_chunker or ChunkerSettings()
        return model, chunker, self._embed(model, ["dimension probe"]).shape[1]

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
        # Without an embedding model at hand it still searches, without cosines.
        vector = self._embed_query(query) if mode != "keyword" else self._try_embed_query(query)
        return retrieve(self._store, query, vector, k, mode, ids=ids, diversity=diversity,
                        dense=dense_weight(query, self.embed_model,
                                           self._settings().english_only))

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

    def _try_embed_query(self, query: str) -> np.ndarray | None:
        """:meth:`_embed_query`, or None when no backend can embed it right now."""
        try:
            return self._embed_query(query)
        except BackendError:
            return None

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
        self._last_query = (query, vector[0])
        return vector[0]

    # -- reading -------------------------------------------------------------------

    def files(self) -> list[str]:
        """The paths of the indexed files, sorted."""
        return sorted(self._store.files()) if self._store else []

    def neighbours(self, chunk_id: int, n: int = 1) -> list[Hit]:
        """Chunk ``chunk_id`` and up to ``n`` chunks on each side of it in its file, in order.

        Empty when the index holds no such chunk.  They were not ranked: their
        ``rank`` and ``score`` are 0.
        """
        if self._store is None or n < 0:
            return []
        found = self._store.chunks([chunk_id]).get(chunk_id)
        if found is None:
            return []
        ids = sorted(self._store.chunk_ids([found.path]))  # a file's ids follow its text
        if chunk_id not in ids:  # the file was re-indexed between the two reads
            return []
        at = ids.index(chunk_id)
        wanted = ids[max(0, at - n) : at + n + 1]
        chunks = self._store.chunks(wanted)
        return [Hit(0, 0.0, c.id, c.path, display_path(c.path), c.page, c.heading, c.text,
                    c.start, c.end) for c in (chunks[i] for i in wanted if i in chunks)]

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
        answer: str = "auto",
    ) -> AnswerStream:
        """Retrieve for ``question`` and stream the answer (see :class:`AnswerStream`).

        ``answer``: ``extractive`` quotes the passages' best sentences,
        ``generate`` has the chat model write the answer, ``auto`` (the
        default) quotes when the chat model is the embedded demo model or no
        chat model can be reached, and has any other model write.

        For a written answer the prompt is kept within the ``num_ctx`` in
        effect (ragkit's options for the model, or ``options``) minus room for
        ``num_predict``: the oldest ``history`` turns, then the lowest-ranked
        passages, are left out until it fits, and the stream's ``note`` says
        so.  A UsageError when not even the best passage fits.
        """
        if not question.strip():
            raise UsageError("the question is empty — ask something")
        if mode not in MODES:
            raise UsageError(f"unknown mode '{mode}' — use one of: {', '.join(MODES)}")
        if answer not in ANSWER_MODES:
            raise UsageError(f"unknown answer mode '{answer}' — use one of: "
                             f"{', '.join(ANSWER_MODES)}")
        if min_score is not None:
            check_min_score(min_score)
        hits = self.search(search_query or question, k, mode=retrieval, paths=paths,
                           diversity=diversity)
        model = model or self.chat_model
        relevant = force or self._relevant(search_query or question, hits, min_score)
        if not hits or not relevant:
            planned = {"auto": None, "extractive": "extractive"}.get(answer, "generated")
            return AnswerStream(question, hits, None, mode=mode, model=model,
                                answer_mode=planned)
        plan = answer_plan(answer, model, self._backends)
        if plan.backend is None:
            return AnswerStream(question, hits, None, mode=mode, model=None,
                                answer_mode="extractive", notice=plan.notice,
                                excerpts=self._excerpts(question, hits))
        opts = options_for(model, dict(options or {}))
        num_ctx, reserve = context_limits(opts)
        fit = fit_context(question, hits, history, mode=mode, num_ctx=num_ctx, reserve=reserve)
        chunks = stream_reply(plan.backend, model, mode, question, fit, opts)
        return AnswerStream(question, fit.hits, chunks, mode=mode, model=model, fit=fit,
                            embed=self._embed_passages, notice=plan.notice)

    def _excerpts(self, question: str, hits: list[Hit]) -> list[Excerpt]:
        """The extractive answer's excerpts (see :func:`ragkit.extractive.extract`)."""
        recent = self._last_query
        vector = recent[1] if recent and recent[0] == question else self._try_embed_query(question)
        return extract(question, hits, self._embed_passages if vector is not None else None,
                       query_vector=vector, dense=dense_weight(question, self.embed_model))

    def _embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed pieces of passages (or of an answer) as documents."""
        prefix = self._prefixes()[1]
        return self._embed(self.embed_model, [prefix + t for t in texts])

    def relevance_threshold(self, min_score: float | None = None) -> float | None:
        """What :func:`~ragkit.answering.relevance` must reach before the model is asked."""
        if min_score is None:
            min_score = self._settings().min_score
        return relevance_threshold(self.embed_model, min_score)

    def _relevant(self, question: str, hits: list[Hit], min_score: float | None) -> bool:
        threshold = self.relevance_threshold(min_score)
        score = relevance(question, hits)
        return threshold is None or score is None or score >= threshold

    def ask(self, question: str, **kwargs: Any) -> Answer:
        """Like :meth:`ask_stream`, but wait for the whole answer."""
        return self.ask_stream(question, **kwargs).answer


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise UsageError(f"-k must be a whole number between 1 and {MAX_K}, got {k!r}")
    if not 1 <= k <= MAX_K:
        raise UsageError(f"-k must be between 1 and {MAX_K}, got {k}")

"""The library's front door: :class:`Index` opens, fills, searches and asks an index.

Typical use (needs a backend; see the README)::

    import ragkit
    index = ragkit.Index.open("notes", create=True)
    index.ingest(["~/notes"]).summary()
    index.search("how do I rebuild?", k=3)[0].location
    print(index.ask("How do I rebuild?").text)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .answering import Answer, AnswerStream, answer_hits, relevance_threshold, relevant_enough
from .backends.base import Backend
from .backends.chooser import BackendChooser, chooser
from .builds import Build, open_store, resolve_index
from .chunking.units import ChunkerSettings
from .embedding import Embedder
from .errors import IndexNotFoundError, UsageError
from .extractive import Excerpt, extract
from .home import index_home
from .ingest.reports import IngestProgress, IngestReport
from .ingest.shards import Shard
from .inventory import folder_size
from .loading.files import check_roots
from .loading.kinds import max_file_mb
from .models import DEFAULT_CHAT_MODEL, DEFAULT_EMBED_MODEL
from .queries import MAX_K, AskOptions, check_search
from .retrieval import EXCERPT_CJK_SHARE, Hit, dense_weight, match_paths, neighbours, retrieve
from .settings import Settings
from .store.base import IndexStore
from .store.building import delete_index
from .store.folders import expand_user, index_inside
from .store.opening import drop_remote, store_exists

__all__ = ["DEFAULT_CHAT_MODEL", "DEFAULT_EMBED_MODEL", "MAX_K", "AskOptions", "Index",
           "resolve_index"]


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
        self._embedder = Embedder(self.name, backends, embed_model)
        self._requested_chunker = chunker
        self._holding_lock = False  # a watcher keeps the writer lock between its ingests
        self._store_uri = store_uri  # where a new index goes (--store; None: local)
        self._given_settings = settings

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
        opened = open_store(path, str(name_or_path), create=create, rebuild=rebuild,
                            damaged_ok=damaged_ok, store=store,
                            from_home=lambda: home is None and path.parent == index_home())
        # The facade is where a library caller's omissions are filled from the environment.
        given = settings or Settings.from_env()
        backends = chooser(backend or given.backend,
                           given.ollama_host if host is None else host, timeout, announce,
                           threads=given.threads, cache_dir=given.cache_dir)
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

    def info(self) -> dict[str, Any]:
        """Name, path, chunk and file counts, size in bytes, then the manifest's fields."""
        return {"name": self.name, "path": str(self.path), "chunks": len(self),
                "files": len(self._store.files()) if self._store else 0,
                "size": folder_size(self.path), **self.manifest}

    def __len__(self) -> int:
        return self._store.count() if self._store else 0

    def close(self) -> None:
        """Release files and locks."""
        if self._store:
            self._store.close()
        self._holding_lock = False

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
        shard: str | Shard | None = None,
    ) -> IngestReport:
        """Index new and changed files under ``paths`` and drop deleted ones.

        ``paths``: files and folders; a single ``str`` or ``Path`` is taken as
        one path (``ingest("docs")`` is ``ingest(["docs"])``), never as a
        sequence of one-character paths.

        ``parallel``: embedding requests in flight (default: ``RAGKIT_PARALLEL``,
        else ``OLLAMA_NUM_PARALLEL`` + 1).
        With several Ollama hosts, that many per host.

        ``shard`` (``"i/n"``): only the files of shard i of n are indexed, updated or
        removed, so n runs (on n machines) share one corpus; see :mod:`ragkit.ingest.shards`.

        A first build writes straight into the index folder, so whatever it
        committed survives Ctrl-C or a crash and the next run resumes.  A
        ``rebuild`` of an existing index builds next to it and swaps the result
        in, so the old index stays usable until the new one is complete.
        """
        settings = self._settings()
        parallel = settings.parallel if parallel is None else parallel
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        roots = [expand_user(os.fspath(p)) for p in paths]
        if not roots:
            raise UsageError("nothing to ingest — give at least one file or folder")
        check_roots(roots)  # mistakes in what was asked are reported before a model loads
        build = Build(self.path, self._store, self._embedder.embed, self._requested_model,
                      self._requested_chunker,
                      lambda model: self._embedder.in_flight(model, parallel),
                      max_file_mb(settings), follow_symlinks, batch_size, progress,
                      index_inside(self.path, roots),
                      Shard.parse(shard) if isinstance(shard, str) else shard,
                      lock_held=self._holding_lock, store_uri=self._store_uri)
        try:
            return build.run(roots, rebuild)
        finally:
            self._store, self._requested_chunker = build.store, build.chunker

    def watch(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        stop_event: threading.Event,
        **options: Any,
    ) -> None:
        """Keep the index in step with the files under ``paths`` until ``stop_event`` is set.

        Catches up first (one incremental ingest), then follows file events;
        ``options`` and the rules are in :func:`ragkit.ingest.watch.watch`.
        """
        from .ingest.watch import watch

        watch(self, paths, stop_event, **options)

    def hold_writer_lock(self, hold: bool = True) -> None:
        """Keep the writer lock between ingests (``hold``), or let it go after each one.

        A watcher holds it for its whole life, so a second writer is refused
        (:class:`IndexBusyError`).  Needs an index that exists; :meth:`close` lets go too.
        """
        if hold and not self._holding_lock and self._store is not None:
            self._store.lock()
            self._holding_lock = True
        elif not hold and self._holding_lock:
            self._holding_lock = False
            if self._store is not None:
                self._store.unlock()

    @property
    def exists(self) -> bool:
        """Whether the index has been created (its first ingest committed a file)."""
        return self._store is not None

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
        check_search(query, k, mode, diversity)
        if self._store is None or len(self) == 0:
            return []
        ids = self._chunks_under(paths) if paths else None
        # Keyword mode embeds the query too: every hit carries its cosine, which the
        # relevance threshold of ``ask``, MMR diversity and ``search --json`` rely on.
        # Without an embedding model at hand it still searches, without cosines.
        vector = self._embed_query(query, required=mode != "keyword")
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

    def _embed_query(self, query: str, *, required: bool = True) -> np.ndarray | None:
        """The query's embedding (checked against the index); None if not ``required`` and
        no backend can embed it now."""
        assert self._store is not None
        embed = self._embedder.query if required else self._embedder.try_query
        return embed(self.manifest, self.embed_model, self._store.dimension, query)

    def _embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embedder.passages(self.manifest, self.embed_model, texts)

    # -- reading -------------------------------------------------------------------

    def files(self) -> list[str]:
        """The paths of the indexed files, sorted."""
        return sorted(self._store.files()) if self._store else []

    def neighbours(self, chunk_id: int, n: int = 1) -> list[Hit]:
        """Chunk ``chunk_id`` and up to ``n`` chunks on each side of it in its file, in order.

        Empty when the index holds no such chunk.  They were not ranked: their
        ``rank`` and ``score`` are 0.
        """
        return neighbours(self._store, chunk_id, n) if self._store is not None else []

    # -- answering -----------------------------------------------------------------

    def ask_stream(
        self,
        question: str,
        ask: AskOptions | None = None,
        *,
        history: Sequence[dict[str, Any]] = (),
        search_query: str | None = None,
        **changes: Any,
    ) -> AnswerStream:
        """Retrieve for ``question`` and stream the answer (see :class:`AnswerStream`).

        ``ask``: how to answer (:class:`~ragkit.queries.AskOptions`); keyword
        ``changes`` override its fields (``index.ask(q, k=2)``).  ``history``:
        earlier messages; ``search_query``: what to retrieve with, if not the question.

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
        ask = (ask or AskOptions()).with_(**changes)
        if not question.strip():
            raise UsageError("the question is empty — ask something")
        ask.check()
        query = search_query or question
        hits = self.search(query, ask.k, mode=ask.retrieval, paths=ask.paths or None,
                           diversity=ask.diversity)
        return answer_hits(
            question, hits, ask, model=ask.model or self.chat_model,
            relevant=ask.force or relevant_enough(query, hits,
                                                  self.relevance_threshold(ask.min_score)),
            backends=self._backends, history=history,
            excerpts=lambda: self._excerpts(question, hits), embed=self._embed_passages)

    def _excerpts(self, question: str, hits: list[Hit]) -> list[Excerpt]:
        """The extractive answer's excerpts (see :func:`ragkit.extractive.extract`)."""
        vector = self._embedder.recent(question)
        if vector is None:
            vector = self._embed_query(question, required=False)
        return extract(question, hits, self._embed_passages if vector is not None else None,
                       query_vector=vector, dense=dense_weight(question, self.embed_model,
                                                               self._settings().english_only,
                                                               EXCERPT_CJK_SHARE))

    def relevance_threshold(self, min_score: float | None = None) -> float | None:
        """What :func:`~ragkit.answering.relevance` must reach before the model is asked.

        ``min_score`` (or RAGKIT_MIN_SCORE), else the threshold ``ragkit eval
        --calibrate`` stored for this index, else the embedding model's built-in one.
        """
        if min_score is None:
            min_score = self._settings().min_score
        if min_score is None:
            min_score = self.manifest.get("relevance_threshold")
        return relevance_threshold(self.embed_model, min_score)

    def store_threshold(self, threshold: float | None) -> None:
        """Keep ``threshold`` in this index's manifest for ``ask`` (None: forget it)."""
        if self._store is None:
            raise UsageError(f"index '{self.name}' is empty — ingest documents before "
                             "storing a threshold")
        self._store.lock()
        try:
            self._store.update_manifest(relevance_threshold=threshold)
        finally:
            self._store.unlock()

    def ask(self, question: str, ask: AskOptions | None = None, **changes: Any) -> Answer:
        """Like :meth:`ask_stream`, but wait for the whole answer."""
        return self.ask_stream(question, ask, **changes).answer


"""Opening and filling an index's store: the side of :class:`ragkit.Index` that writes.

:func:`open_store` finds (or allows) an index folder; a :class:`Build` runs one
ingest into it: a first build in place, an incremental update under the write
lock, or a rebuild beside the old index that is swapped in when complete (see
:mod:`ragkit.store.building` for the folders and the swap).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .chunking.units import ChunkerSettings
from .errors import (
    EmbeddingMismatchError,
    IndexCorruptError,
    IndexFolderError,
    IndexVersionError,
    UsageError,
)
from .home import index_home, not_found
from .ingest.pipeline import ingest
from .ingest.reports import IngestProgress, IngestReport
from .ingest.shards import Shard
from .models import DEFAULT_EMBED_MODEL
from .store import opening
from .store.base import IndexStore
from .store.building import (
    clean_stale_work,
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
    lock_index,
    real_folder,
)

__all__ = ["Build", "check_model", "open_store", "resolve_index"]

#: Embeds texts with a model: ``(model, texts) -> rows``.
Embed = Callable[[str, Sequence[str]], np.ndarray]


def resolve_index(name_or_path: str | Path, home: Path | None) -> Path:
    """The folder of an index: a bare name is in ``home``; anything with a slash is a path."""
    text = str(name_or_path)
    if not text.strip():
        raise UsageError("index name is empty — pass --index NAME")
    path = expand_user(text) if os.sep in text or text.startswith(".") else (
        (home or index_home()) / text)
    check_path_length(path)
    return path


def open_store(path: Path, named: str, *, create: bool, rebuild: bool, damaged_ok: bool,
               from_home: Callable[[], bool], store: str | None = None) -> IndexStore | None:
    """The store at ``path``, or None for an index still to create (see ``Index.open``).

    ``from_home()``: whether a missing index was looked up by name in the home
    (its error then says which home and why); ``store``: the ``--store`` asked
    for, which an existing index must be in.
    """
    if path.exists() and not path.is_dir():
        raise IndexFolderError(str(path), f"{path} is a file, not an index folder",
                               "pass --index a name, or the path of an index folder")
    opened = None
    if opening.store_exists(path):
        try:
            opening.check_store(path, store)
            opened = opening.open_store(path)
        except (IndexCorruptError, IndexVersionError) as exc:
            repairable = create and rebuild and isinstance(exc, IndexCorruptError)
            if not (damaged_ok or repairable):
                raise
    elif create:
        check_new_name(path)
        check_new_folder(real_folder(path))
    if opened is None and not create and not (damaged_ok and opening.store_exists(path)):
        raise not_found(named, path, from_home())
    return opened


def check_model(name: str, manifest: dict[str, Any], wanted: str | None) -> None:
    """An EmbeddingMismatchError when ``wanted`` is not the model the index was built with."""
    built = manifest.get("embed_model")
    if built and wanted and wanted != built:
        raise EmbeddingMismatchError(
            f"index '{name}' was built with embedding model '{built}' "
            f"({manifest.get('dimension')} dims), not '{wanted}' — use "
            f"--embed-model {built}, or re-index with --rebuild"
        )


@dataclass
class Build:
    """One ingest into the index at ``path``.

    ``store`` and ``chunker`` are read back by the index afterwards, even after a
    failure: a first build creates the store, a rebuild replaces it, and once an
    index exists its own chunker settings rule.
    """

    path: Path
    store: IndexStore | None
    embed: Embed
    #: The embedding model and chunker asked for (None: the index's, or the default).
    model: str | None
    chunker: ChunkerSettings | None
    #: Embedding requests to keep in flight for a model (per host, times the hosts).
    in_flight: Callable[[str], int]
    max_mb: float
    follow_symlinks: bool = False
    batch_size: int = 64
    progress: Callable[[IngestProgress], None] | None = None
    #: Folders the walk leaves out (the index's own).
    exclude: list[Path] = field(default_factory=list)
    #: The part of the files this ingest owns (None: all).
    shard: Shard | None = None
    #: The caller holds the writer lock already (a watcher, between its ingests).
    lock_held: bool = False
    #: Where a new index goes (``--store``; None: the local store).
    store_uri: str | None = None

    def run(self, roots: list[Path], rebuild: bool) -> IngestReport:
        """Ingest ``roots``: rebuild beside the index, build it first, or update it."""
        if rebuild and self.shard is not None:
            raise UsageError(f"--rebuild replaces the whole index, the other shards' files too, "
                             f"not only shard {self.shard} — rebuild without --shard, then "
                             "ingest the shards into it")
        remote = self._remote_target(rebuild)
        if remote:
            return self._remote_build(remote, roots)
        if rebuild and (self.store is not None or opening.store_exists(self.path)):
            # (No store but a manifest: the folder holds a damaged index to replace.)
            return self._build_fresh(roots)
        if self.store is None:
            return self._first_build(roots)
        return self._update(self.store, roots)

    def _remote_target(self, rebuild: bool) -> str | None:
        """The Milvus store to create the index in (a rebuild drops its collections first)."""
        if self.store is None:
            return self.store_uri if opening.is_remote(self.store_uri) else None
        where = opening.store_of(self.path)
        if not (rebuild and opening.is_remote(where)):
            return None
        self.store.close()
        self.store = None
        opening.drop_remote(self.path)  # Milvus cannot swap collections: a rebuild starts empty
        return where

    def _remote_build(self, uri: str, paths: list[Path]) -> IngestReport:
        """Create (or join) the index's collections in Milvus, then ingest into them."""
        model, chunker, dimension = self._new_settings()
        self.store = opening.create_remote(self.path, new_manifest(model, dimension, chunker),
                                           uri)
        self.chunker = None
        return self._update(self.store, paths)

    def _update(self, store: IndexStore, paths: list[Path]) -> IngestReport:
        """An incremental ingest into the existing index, under its write lock."""
        self._check_settings(store)
        if not self.lock_held:
            store.lock()
        try:
            clean_stale_work(self.path)
            report = self._ingest_into(store, paths, _chunker(store))
        finally:
            if not self.lock_held:
                store.unlock()
        if not store.count():
            raise nothing_indexed(report, paths, f"index '{self.path.name}' holds no files")
        return report

    def _ingest_into(self, store: IndexStore, paths: list[Path],
                     chunker: ChunkerSettings) -> IngestReport:
        model = store.manifest.get("embed_model") or self.model or DEFAULT_EMBED_MODEL
        return ingest(store, paths, lambda texts: self.embed(model, texts), chunker=chunker,
                      document_prefix=store.manifest.get("document_prefix", ""),
                      batch_size=self.batch_size, parallel=self.in_flight(model),
                      follow_symlinks=self.follow_symlinks, progress=self.progress,
                      shard=self.shard, exclude=self.exclude, max_mb=self.max_mb)

    def _first_build(self, paths: list[Path]) -> IngestReport:
        """Create the index, which appears at its first commit; then it fills in place.

        See :func:`~ragkit.store.building.first_build`: a run that fails or is killed
        before its first commit leaves nothing, nor does one that indexes nothing.
        """
        model, chunker, dimension = self._new_settings()  # fails before anything is created
        with first_build(self.path, new_manifest(model, dimension, chunker)) as store:
            if store is None:  # another process created it since we looked
                self.store = opening.open_store(self.path)
                return self._update(self.store, paths)
            self.store, self.chunker = store, None
            try:
                report = self._ingest_into(store, paths, _chunker(store))
                if not store.count():
                    raise nothing_indexed(report, paths, "no index was created")
                return report
            finally:
                if store.root != real_folder(self.path):  # never published: it is gone
                    self.store = None

    def _build_fresh(self, paths: list[Path]) -> IngestReport:
        """Build into a work folder, then swap it in: the old index survives a failure."""
        with lock_index(self.path):  # the lock Store.lock() takes: one writer at a time
            clean_stale_work(self.path)
            model, chunker, dimension = self._new_settings()
            manifest = new_manifest(model, dimension, chunker)
            with replacement(self.path, manifest, self._swap_in) as new:
                report = self._ingest_into(new, paths, chunker)
                if not new.count():
                    raise nothing_indexed(report, paths, "the old index is kept as it was")
        return report

    def _swap_in(self, building: Path) -> None:
        """Replace the index folder with the freshly built one and open it."""
        if self.store is not None:
            self.store.close()
        swap_folders(building, self.path)
        self.store = opening.open_store(self.path)
        self.chunker = None

    def _new_settings(self) -> tuple[str, ChunkerSettings, int]:
        """Model, chunker and vector size of a new build (the model embeds a probe)."""
        built = self.store.manifest.get("embed_model") if self.store else None
        model = self.model or built or DEFAULT_EMBED_MODEL
        chunker = self.chunker or ChunkerSettings()
        return model, chunker, self.embed(model, ["dimension probe"]).shape[1]

    def _check_settings(self, store: IndexStore) -> None:
        """Refuse an incremental ingest whose model or chunker differs from the index's."""
        name = self.path.name
        check_model(name, dict(store.manifest), self.model)
        if self.chunker and self.chunker != (have := _chunker(store)):
            raise UsageError(
                f"index '{name}' is chunked with size={have.size} overlap={have.overlap}; "
                "changing that needs a full re-index: add --rebuild"
            )


def _chunker(store: IndexStore) -> ChunkerSettings:
    """The chunker settings the index at ``store`` was built with."""
    settings = dict(store.manifest.get("chunker", {}))
    return ChunkerSettings(size=int(settings["size"]), overlap=int(settings["overlap"]))

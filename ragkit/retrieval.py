"""Retrieval: a query in, ranked :class:`Hit` objects out.

Three modes: ``vector`` (cosine similarity of embeddings), ``keyword`` (BM25
over FTS5) and ``hybrid`` (the default): each list's scores are divided by
its best score and the two are added with weights (:func:`fuse`).  Every hit
carries its cosine similarity to the query, whatever the mode, so callers can
apply one relevance threshold.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np

from . import models
from .chunking.chunk import Chunk
from .loading.formats import location
from .loading.paths import shown
from .queries import RETRIEVAL_MODES
from .scripts import is_cjk as _is_cjk_char
from .store.base import IndexStore

__all__ = ["MODES", "Hit", "display_path", "diversify", "fuse", "match_paths", "neighbours",
           "retrieve"]

MODES = RETRIEVAL_MODES  # the one list, in ragkit.queries

#: Share of the embedding side in hybrid scores; the keyword side has the rest.
#: Chosen on the dev halves (benchmarks/tune_dev.py, all-minilm): equal shares score the
#: best mean nDCG@10 over SciFact (a 900-abstract sample) and XQuAD-en, 0.877 and 0.982,
#: against 0.874 and 0.983 at 0.45 and 0.876 and 0.981 at 0.55.  Score sums also beat
#: reciprocal rank fusion (benchmarks/compare_fusion.py).
DENSE_SHARE = 0.5

#: The share when an embedding model that does not read CJK script (models.english_only)
#: meets a question written in it: none, so hybrid ranks by keywords alone.  On the dev
#: halves no share above 0 beat keywords on both Chinese sets: on med-zh (paraphrased
#: patient questions) every share lost Recall@100 (0.599 alone, 0.593 at 0.05 and 0.1,
#: 0.571 at 0.2), and on XQuAD-zh the best, 0.2, gained 0.0006 nDCG@10.
CJK_DENSE_SHARE = 0.0

#: The same for choosing an extractive answer's sentences among retrieved passages
#: (ragkit.extractive): kept at its former 0.2, which the answer accuracy figures were
#: measured with; issue 15 re-derived the retrieval share only.
EXCERPT_CJK_SHARE = 0.2


def dense_weight(query: str, embed_model: str, english_only: bool | None = None,
                 cjk_share: float = CJK_DENSE_SHARE) -> float:
    """Share of the embedding side in the hybrid score of ``query`` (0..1).

    ``english_only``: whether the embedder reads only Latin script (default: what
    ``ragkit.models`` says of ``embed_model``); ``cjk_share``: the share then given to a
    question in CJK script.

    >>> dense_weight("What do pandas eat?", "all-minilm")
    0.5
    >>> dense_weight("熊猫吃什么？", "all-minilm")
    0.0
    >>> dense_weight("熊猫吃什么？", "bge-m3")
    0.5
    """
    if english_only is None:
        english_only = models.english_only(embed_model)
    if not english_only:
        return DENSE_SHARE
    letters = [c for c in query if c.isalpha()]
    cjk = sum(1 for c in letters if _is_cjk_char(c))
    return cjk_share if cjk >= 2 and cjk / len(letters) > 0.2 else DENSE_SHARE


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk (a stored :class:`~ragkit.chunking.Chunk`), ranked and scored."""

    rank: int
    score: float
    id: int
    path: str  # the source file's key: its absolute path, links resolved (see ragkit.loading.paths)
    source: str  # as shown to users: relative to the working directory if inside it, escaped
    page: int | None
    heading: str
    text: str
    start: int = 0
    end: int = 0
    cosine: float | None = None  # similarity of the query and chunk embeddings

    @classmethod
    def of(cls, chunk: Chunk, rank: int, score: float, cosine: float | None = None) -> Hit:
        """The hit a stored ``chunk`` makes at ``rank`` with ``score``."""
        return cls(rank, score, chunk.id, chunk.path, display_path(chunk.path), chunk.page,
                   chunk.heading, chunk.text, chunk.start, chunk.end, cosine)

    @property
    def location(self) -> str:
        """Where the chunk is: ``source:page`` for a PDF, ``source:slide 3``, ``source:Sheet``...

        (see :func:`ragkit.loading.formats.location`), else ``source``.

        >>> Hit(1, 0.5, 1, "/x/h.pdf", "h.pdf", 3, "", "t").location
        'h.pdf:3'
        """
        return location(self.source, self.page, self.heading)[0]

    @property
    def citation(self) -> str:
        """Location plus heading path, as shown next to a passage.

        >>> Hit(1, 0.5, 1, "/x/d.pptx", "d.pptx", 3, "Plan", "t").citation
        'd.pptx:slide 3 — Plan'
        """
        where, heading = location(self.source, self.page, self.heading)
        return f"{where} — {heading}" if heading else where

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as ``ragkit search --json`` prints it (file names escaped).

        A score that is not a finite number (from vectors a broken model left in
        an older index) becomes null: ``NaN`` is not JSON.
        """
        fields = {**asdict(self), "path": shown(self.path), "location": self.location}
        for name in ("score", "cosine"):
            if fields[name] is not None and not math.isfinite(fields[name]):
                fields[name] = None
        return fields


def display_path(path: str, cwd: str | None = None) -> str:
    r"""Show ``path`` relative to the working directory when it lies inside it.

    Bytes of a file name that are not UTF-8 are shown as ``\xNN``.

    >>> display_path("/home/u/docs/a.md", cwd="/home/u")
    'docs/a.md'
    >>> display_path("/srv/b.md", cwd="/home/u")
    '/srv/b.md'
    >>> display_path(os.fsdecode(b"/home/u/caf\xe9.md"), cwd="/home/u")
    'caf\\xe9.md'
    """
    base = cwd if cwd is not None else os.getcwd()
    try:
        return shown(str(Path(path).relative_to(base)))
    except ValueError:
        return shown(path)


def retrieve(
    store: IndexStore,
    query: str,
    vector: np.ndarray | None,
    k: int,
    mode: str = "hybrid",
    *,
    ids: Sequence[int] | None = None,
    diversity: float = 0.0,
    dense: float = DENSE_SHARE,
) -> list[Hit]:
    """The ``k`` best chunks for ``query`` (and its embedding ``vector``) in ``mode``.

    ``ids`` limits the candidates (see :func:`match_paths`); ``diversity`` > 0
    re-ranks a deeper pool by maximal marginal relevance (see :func:`diversify`);
    ``dense`` is the embedding side's share of hybrid scores (see :func:`dense_weight`).
    """
    if mode != "keyword" and vector is None:
        raise ValueError(f"retrieval mode {mode!r} needs the query's embedding")
    with store.reading():  # one committed state for all the reads below, whatever commits
        return _retrieve(store, query, vector, k, mode, ids, diversity, dense)


def _retrieve(store: IndexStore, query: str, vector: np.ndarray | None, k: int, mode: str,
              ids: Sequence[int] | None, diversity: float, dense: float) -> list[Hit]:
    want = max(20, 3 * k) if diversity > 0 and vector is not None else k
    depth = max(50, 3 * want)
    if mode == "keyword":
        ranked = store.keyword_search(query, want, ids)
    elif mode == "vector":
        assert vector is not None
        ranked = store.search(vector, want, ids)
    else:
        assert vector is not None
        dense_hits = store.search(vector, depth, ids) if dense > 0 else []
        keyword_hits = store.keyword_search(query, depth, ids)
        ranked = fuse(dense_hits, keyword_hits, dense)[:want]
    if want > k:
        ranked = diversify(ranked, store.vectors([cid for cid, _ in ranked]), k, diversity)
    cosines = store.cosines(vector, [cid for cid, _ in ranked]) if vector is not None else {}
    return _hits(store, ranked, cosines)


def diversify(
    ranked: list[tuple[int, float]], vectors: dict[int, np.ndarray], k: int, diversity: float
) -> list[tuple[int, float]]:
    """Pick ``k`` of ``ranked`` by maximal marginal relevance.

    Each step takes the candidate with the best ``(1 - diversity) * relevance -
    diversity * (highest cosine to a chunk already taken)``.  Relevance is the
    candidate's place in ``ranked`` scaled to 1 (best) .. 0, so the fused order
    of hybrid mode is kept; ``diversity`` 0 keeps the order as it is, 1 spreads
    as far as possible.

    >>> v = {1: np.array([1.0, 0]), 2: np.array([1.0, 0]), 3: np.array([0, 1.0])}
    >>> [cid for cid, _ in diversify([(1, .9), (2, .8), (3, .7)], v, 2, 0.5)]
    [1, 3]
    >>> [cid for cid, _ in diversify([(1, .9), (2, .8), (3, .7)], v, 2, 0.0)]
    [1, 2]
    """
    pool = [(cid, score) for cid, score in ranked if cid in vectors]
    if not pool:
        return []
    relevance = {cid: 1.0 - n / len(pool) for n, (cid, _) in enumerate(pool)}
    matrix = np.stack([vectors[cid] for cid, _ in pool])
    closest = np.zeros(len(pool))  # highest cosine of each candidate to the chosen ones
    left = list(range(len(pool)))
    chosen: list[tuple[int, float]] = []
    while left and len(chosen) < k:
        best = max(left, key=lambda i: (1 - diversity) * relevance[pool[i][0]]
                   - diversity * closest[i])
        left.remove(best)
        chosen.append(pool[best])
        closest = np.maximum(closest, matrix @ matrix[best])
    return chosen


def match_paths(paths: Iterable[str], patterns: Sequence[str], cwd: str | None = None) -> list[str]:
    """The ``paths`` (absolute) that match any of the glob ``patterns``.

    A pattern without a slash matches the file name, like ``*.pdf``; one with a
    slash matches the whole path, relative patterns being taken from ``cwd``
    (``./`` and ``../`` allowed); a trailing slash means everything below that
    folder.  ``*`` crosses folders.  A pattern with no wildcard also matches
    everything below the folder it names, so ``guide`` and ``guide/`` agree.
    Files are indexed under their real paths (see :mod:`ragkit.loading.paths`), so a
    path pattern also matches with the links in its folders resolved.

    >>> files = ["/w/guide/a.md", "/w/guide/zh/b.md", "/w/notes/c.pdf"]
    >>> match_paths(files, ["*.pdf"], cwd="/w")
    ['/w/notes/c.pdf']
    >>> match_paths(files, ["guide/"], cwd="/w") == match_paths(files, ["guide"], cwd="/w")
    True
    >>> match_paths(files, ["./guide/zh"], cwd="/w"), match_paths(files, ["../notes/"], cwd="/w/x")
    (['/w/guide/zh/b.md'], ['/w/notes/c.pdf'])
    >>> match_paths(files, ["/w/guide/*.md", "c.*"], cwd="/x")
    ['/w/guide/a.md', '/w/guide/zh/b.md', '/w/notes/c.pdf']
    """
    base = cwd if cwd is not None else os.getcwd()
    by_name, by_path, folders = [], [], []
    for pattern in patterns:
        wild = any(c in pattern for c in "*?[")
        if "/" not in pattern:
            by_name.append(pattern)
        for full in _spellings(os.path.join(base, pattern)):
            if not wild:
                folders.append(full.rstrip(os.sep) + os.sep)
            if "/" not in pattern:
                continue
            by_path.append(os.path.join(full, "*") if pattern.endswith("/") else full)
    return [
        path for path in paths
        if any(fnmatchcase(os.path.basename(path), p) for p in by_name)
        or any(fnmatchcase(path, p) for p in by_path)
        or any(path.startswith(folder) for folder in folders)
    ]


def _spellings(full: str) -> set[str]:
    """An absolute path pattern as typed (normalized) and with its fixed part's links resolved."""
    parts = full.split(os.sep)
    fixed = next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), len(parts))
    real = os.path.realpath(os.sep.join(parts[:fixed]) or os.sep)
    return {os.path.normpath(full), os.path.normpath(os.path.join(real, *parts[fixed:]))}


def fuse(
    dense: list[tuple[int, float]], keyword: list[tuple[int, float]], share: float = DENSE_SHARE
) -> list[tuple[int, float]]:
    """Hybrid scores: ``share`` x cosine / best cosine + (1 - share) x BM25 / best BM25.

    Dividing by each list's best score puts both on 0..1 for this query; a chunk
    found by one side only gets nothing from the other.  Scores at or below zero
    add nothing, but their chunks stay candidates, in the order given.

    >>> fuse([(1, 0.8), (2, 0.4)], [(2, 10.0), (3, 5.0)])
    [(2, 0.75), (1, 0.5), (3, 0.25)]
    >>> fuse([(1, -0.1), (2, -0.2)], [])
    [(1, 0.0), (2, 0.0)]
    """
    fused: dict[int, float] = {}
    for ranking, weight in ((dense, share), (keyword, 1.0 - share)):
        best = max((score for _, score in ranking), default=0.0)
        for cid, score in ranking:
            gain = weight * score / best if best > 0 and score > 0 else 0.0
            fused[cid] = fused.get(cid, 0.0) + gain
    return sorted(fused.items(), key=lambda item: -item[1])


def _hits(store: IndexStore, ranked: list[tuple[int, float]],
          cosines: dict[int, float]) -> list[Hit]:
    """Turn (id, score) pairs into :class:`Hit` objects, reading the chunks in one query."""
    chunks = store.chunks([cid for cid, _ in ranked])
    hits: list[Hit] = []
    for cid, score in ranked:
        chunk = chunks.get(cid)
        if chunk is None:  # not in the snapshot read (FAISS and SQLite disagree)
            continue
        hits.append(Hit.of(chunk, len(hits) + 1, score, cosines.get(cid)))
    return hits


def neighbours(store: IndexStore, chunk_id: int, n: int = 1) -> list[Hit]:
    """Chunk ``chunk_id`` and up to ``n`` chunks on each side of it in its file, in order.

    Empty when ``store`` holds no such chunk; their ``rank`` and ``score`` are 0.
    """
    found = store.chunks([chunk_id]).get(chunk_id) if n >= 0 else None
    if found is None:
        return []
    ids = sorted(store.chunk_ids([found.path]))  # a file's ids follow its text
    if chunk_id not in ids:  # the file was re-indexed between the two reads
        return []
    at = ids.index(chunk_id)
    wanted = ids[max(0, at - n) : at + n + 1]
    chunks = store.chunks(wanted)
    return [Hit.of(chunks[i], 0, 0.0) for i in wanted if i in chunks]

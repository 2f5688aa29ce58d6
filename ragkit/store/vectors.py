"""The FAISS side of an index: a cache of the vectors in SQLite, exact or IVF.

An exact search reads every vector for every query (100k chunks = 150 MB of
memory traffic, ~15 ms on a 2-core machine), so from
:data:`~ragkit.store.local.APPROX_THRESHOLD` chunks on, the cache is rebuilt as an
inverted-file index (IndexIVFFlat, inner product, about 4*sqrt(n) k-means
lists, ``nprobe`` lists scanned per query).  IVF rather than HNSW because IVF
removes ids natively (a re-ingested or deleted file needs no tombstones and no
rebuild) and builds a million vectors in well under a minute on two cores,
where HNSW takes many minutes.  The kind is chosen whenever the cache is
(re)built, and :meth:`~ragkit.store.local.Store.save_vectors` rebuilds it when the
index has crossed the threshold (with hysteresis) or outgrown the lists it was
trained with (:func:`needs_new_kind`).  Searches restricted to a set of ids
(``--path``) are exact over that set when it is small, so a filter never loses
hits to unprobed lists.

The thresholds are the store's (:mod:`ragkit.store.local`), passed in by the caller.
FAISS itself is imported only when an index is built or searched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["is_ivf", "ivf_lists", "ivf_probes", "needs_new_kind", "new_exact_index",
           "new_ivf_index", "read_cache", "search", "subset_search", "training_size",
           "vectors_by_id"]

log = logging.getLogger("ragkit")

_MAX_LISTS = 2048  # k-means lists at most: training stays under a minute at 1M chunks
_TRAIN_PER_LIST = 64  # training vectors per list


def search(
    index: Any, query: np.ndarray, k: int, ids: Sequence[int] | None, exact_subset_max: int
) -> list[tuple[int, float]]:
    """Inner-product search of a non-empty ``index`` for one ``query`` row: (id, score) pairs.

    With ``ids``, only those are candidates: exactly when an IVF index is
    searched for at most ``exact_subset_max`` of them, else through a selector.
    """
    approximate = is_ivf(index)
    if ids is not None and approximate and len(ids) <= exact_subset_max:
        return subset_search(index, query[0], k, ids)
    import faiss

    sel = faiss.IDSelectorBatch(np.asarray(ids, "int64")) if ids is not None else None
    params: Any = None  # faiss's stubs do not know the keyword arguments
    if approximate:
        params = faiss.SearchParametersIVF(sel=sel, nprobe=index.nprobe)  # type: ignore[call-arg]
    elif sel is not None:
        params = faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
    scores, found = index.search(query, min(k, index.ntotal), params=params)
    hits = [(int(i), float(s)) for i, s in zip(found[0], scores[0], strict=True) if i != -1]
    if approximate and ids is not None and len(hits) < min(k, len(ids)):
        return subset_search(index, query[0], k, ids)  # the filter emptied the probed lists
    return hits


def read_cache(path: Path, dimension: int) -> Any | None:
    """The FAISS cache saved at ``path``, or None when there is none or it cannot serve.

    A cache that is unreadable, of another dimension or of a kind ragkit does
    not write is reported (it is rebuilt from SQLite); searching it would give
    wrong hits or crash inside FAISS.
    """
    if not path.exists():
        return None
    import faiss

    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        problem = f"is unreadable ({str(exc).strip().splitlines()[0]})"
    else:
        kinds = (faiss.IndexIDMap2, faiss.IndexIVFFlat)
        if not isinstance(index, kinds) or index.metric_type != faiss.METRIC_INNER_PRODUCT:
            problem = f"is not a cache ragkit wrote ({type(index).__name__})"
        elif index.d != dimension:
            problem = f"holds {index.d}-dimensional vectors, not {dimension}"
        else:
            return index
    log.warning("%s %s; rebuilding it from chunks.sqlite", path, problem)
    return None


def vectors_by_id(index: Any, ids: Sequence[int]) -> dict[int, np.ndarray]:
    """The vectors of the ids in ``ids`` that ``index`` holds."""
    found: dict[int, np.ndarray] = {}
    for cid in ids:
        try:
            found[int(cid)] = index.reconstruct(int(cid))
        except RuntimeError:  # committed by a writer after our vectors were loaded
            continue
    return found


def needs_new_kind(index: Any, approx_threshold: int, exact_below: int) -> bool:
    """Whether the cache should be rebuilt: it crossed the threshold or outgrew its lists."""
    n = index.ntotal
    if not is_ivf(index):
        return n >= approx_threshold
    if n < exact_below:
        return True
    return index.nlist < _MAX_LISTS and ivf_lists(n) >= 2 * index.nlist


def training_size(count: int) -> int:
    """How many vectors an IVF index for ``count`` is trained on: ``_TRAIN_PER_LIST`` a list."""
    return _TRAIN_PER_LIST * ivf_lists(count)


def ivf_lists(count: int) -> int:
    """Number of IVF lists for ``count`` vectors: about 4*sqrt(n), at most ``_MAX_LISTS``.

    >>> ivf_lists(100_000), ivf_lists(1_000_000)
    (1264, 2048)
    """
    return int(max(16, min(_MAX_LISTS, 4 * count**0.5)))


def ivf_probes(lists: int) -> int:
    """Lists scanned per query: recall@10 >= 0.95 on clustered synthetic vectors.

    >>> ivf_probes(1264), ivf_probes(2048), ivf_probes(100)
    (64, 64, 16)
    """
    return int(min(lists, max(16, min(64, lists // 16))))


def new_exact_index(dimension: int) -> Any:
    """An empty exact inner-product index keyed by chunk id."""
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


def new_ivf_index(dimension: int, count: int, sample: np.ndarray) -> Any:
    """An empty IVF inner-product index for about ``count`` vectors, trained on ``sample``.

    Ids are kept in a hash table, so vectors can be looked up and removed by chunk id.
    """
    import faiss

    lists = min(ivf_lists(count), max(1, len(sample)))
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFFlat(quantizer, dimension, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    index.cp.max_points_per_centroid = _TRAIN_PER_LIST
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
    index.nprobe = ivf_probes(lists)
    return index


def is_ivf(index: Any) -> bool:
    """Whether ``index`` is an approximate (IVF) index rather than an exact one."""
    return hasattr(index, "nprobe")


def subset_search(index: Any, query: np.ndarray, k: int,
                   ids: Sequence[int]) -> list[tuple[int, float]]:
    """Exact search over just ``ids`` (vectors looked up by id; missing ids skipped)."""
    keys = np.unique(np.asarray(ids, dtype=np.int64))
    try:
        matrix = index.reconstruct_batch(keys)
    except RuntimeError:  # some id was removed by a writer: look them up one by one
        found = {}
        for key in keys:
            with contextlib.suppress(RuntimeError):
                found[int(key)] = index.reconstruct(int(key))
        if not found:
            return []
        keys = np.fromiter(found, dtype=np.int64, count=len(found))
        matrix = np.stack(list(found.values()))
    scores = matrix @ query
    top = np.argsort(-scores, kind="stable")[:k]
    return [(int(keys[i]), float(scores[i])) for i in top]

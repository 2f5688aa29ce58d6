"""Retrieval metrics as trec_eval/pytrec_eval compute them (what BEIR and MTEB report).

Relevance is graded: a qrels score is the gain, 0 means not relevant.  nDCG
uses linear gains and log2 discounts; recall counts relevant documents found
in the top k over all relevant ones; MRR is the reciprocal rank of the first
relevant document within the top k.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["mrr_at", "ndcg_at", "percentile", "recall_at"]

Qrels = Mapping[str, int]  # doc id -> graded relevance, for one query


def ndcg_at(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """nDCG@k of one ranked list of doc ids.

    >>> ndcg_at(["a", "b"], {"a": 1}, 10)
    1.0
    >>> round(ndcg_at(["x", "a"], {"a": 1}, 10), 4)
    0.6309
    >>> ndcg_at(["x"], {"a": 0}, 10)
    0.0
    """
    dcg = sum(qrels.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """Share of the relevant documents that appear in the top k.

    >>> recall_at(["a", "x", "b"], {"a": 1, "b": 2, "c": 1}, 2)
    0.3333333333333333
    """
    relevant = {doc for doc, g in qrels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """Reciprocal rank of the first relevant document in the top k (0 if none).

    >>> mrr_at(["x", "y", "a"], {"a": 1}, 10)
    0.3333333333333333
    >>> mrr_at(["x", "y", "a"], {"a": 1}, 2)
    0.0
    """
    for i, doc in enumerate(ranking[:k]):
        if qrels.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation, like numpy's default.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    >>> percentile([5.0], 95)
    5.0
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)

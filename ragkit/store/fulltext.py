"""The keyword side of the local store: BM25 search over SQLite FTS5.

The terms FTS5 indexes, and which of a query's terms are worth scoring, are
made in :mod:`ragkit.store.keywords`.  :class:`KeywordSearch` is a part of
:class:`~ragkit.store.local.Store`, split out by concept like
:class:`~ragkit.store.cache.VectorCache`; it reads through the store's own snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .cache import StoreReads
from .keywords import fts_query, rarest_terms
from .snapshots import Snapshots
from .snapshots import reads as _reads

__all__ = ["KEYWORD_BUDGET", "KeywordSearch"]

#: Past APPROX_THRESHOLD chunks, keyword search scores the query's rarest terms that
#: together occur in at most this many chunks (FTS5 scores about 1 chunk per microsecond);
#: if even the rarest term is in more, it alone is scored when it is in at most 8 times as
#: many, and otherwise the query has no keyword worth scoring.  Chosen on SciFact's dev
#: half with the budget forced (``benchmarks/tune_dev.py budget``) as the largest that keeps
#: hybrid search at 100k chunks within its p50 <= 5 ms (``benchmarks/bench_search.py``):
#: hybrid nDCG@10 0.752 against 0.721 at the former 400 and 0.770 with every term.
KEYWORD_BUDGET = 1600


class KeywordSearch(StoreReads):
    """Keyword search of a :class:`~ragkit.store.local.Store` (a mixin of it)."""

    _snapshots: Snapshots
    # (generation, chunks holding each keyword) for the rarest-terms budget
    _term_counts: tuple[int, dict[str, int]]

    # Provided by the store (besides the reads of :class:`.cache.StoreReads`).
    def _kinds(self) -> tuple[int, int]:
        raise NotImplementedError

    @_reads
    def keyword_search(
        self, text: str, k: int, ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """BM25 keyword search: ``k`` (chunk id, score) pairs, best first (higher = better).

        With ``ids``, only those chunks are candidates (a path filter).  From
        :data:`~ragkit.store.local.APPROX_THRESHOLD` chunks on, only the query's rarest terms are
        scored (see :meth:`_rarest_terms`): FTS5 scores every chunk that holds
        any term, and a "the" or "how" would make that most of the index.
        """
        match = fts_query(text)
        if not match or (ids is not None and len(ids) == 0):
            return []
        if self.count() >= self._kinds()[0]:  # APPROX_THRESHOLD
            match = self._rarest_terms(match)
            if not match:
                return []
        where, args = "chunk_terms MATCH ?", [match]
        if ids is not None:
            where += " AND rowid IN (SELECT value FROM json_each(?))"
            args.append(json.dumps([int(i) for i in ids]))
        rows = self._query(
            f"SELECT rowid, -bm25(chunk_terms) AS s FROM chunk_terms WHERE {where} "
            "ORDER BY s DESC LIMIT ?",
            (*args, k),
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    def _rarest_terms(self, match: str) -> str:
        """The query's rarest terms, as many as hold at most :data:`KEYWORD_BUDGET` chunks.

        Rare terms carry almost all of a BM25 score (a term in half the chunks
        or more scores zero in FTS5), so the ranking barely moves while the work
        stays bounded.  An empty string when every term is very common.
        """
        terms = match.split(" OR ")
        generation = self.generation()
        cached, counts = self._term_counts
        if cached != generation:
            counts = {}
            if generation > cached:  # not back to an older snapshot's counts
                self._term_counts = (generation, counts)
        for term in terms:
            if term not in counts:
                row = self._query("SELECT COUNT(*) FROM chunk_terms WHERE chunk_terms MATCH ?",
                                  (term,)).fetchone()
                counts[term] = int(row[0])
        return " OR ".join(rarest_terms(terms, counts, KEYWORD_BUDGET))

"""The tools' work, independent of MCP: search, fetch, list and ask over a :class:`Catalog`.

Every failure a caller can cause is a :class:`~ragkit.errors.RagkitError`
with a one-line message; :mod:`ragkit.mcp_tools.server` turns it into a tool
error for the model to read.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import UsageError
from ..retrieval import Hit, match_paths
from .catalog import Catalog
from .results import (
    AskResult,
    Document,
    IndexList,
    IndexSummary,
    SearchResults,
    document,
    parse_id,
    search_result,
)

__all__ = ["CONTEXT_CHUNKS", "MAX_RESULTS", "ask", "fetch", "list_indexes", "search"]

#: Most passages one search returns: more would flood the model's context.
MAX_RESULTS = 50
#: Chunks fetched on each side of a passage: about 750 tokens in all, enough to quote.
CONTEXT_CHUNKS = 1


def search(catalog: Catalog, query: str, k: int = 5, index: str | None = None,
           paths: Sequence[str] | None = None) -> SearchResults:
    """The ``k`` passages best matching ``query`` in ``index`` (or in every served index).

    Several indexes' results are interleaved by rank (each index's best
    first, by cosine), so each index keeps its own order.
    """
    if not query.strip():
        raise UsageError("the query is empty — say what to search for")
    if not 1 <= k <= MAX_RESULTS:
        raise UsageError(f"k must be between 1 and {MAX_RESULTS}, got {k}")
    names = catalog.pick(index)
    found: list[tuple[str, Hit]] = []
    for name in _with_paths(catalog, names, paths):
        with catalog.use(name) as opened:
            found.extend((name, hit) for hit in opened.search(query, k, paths=paths or None))
    found.sort(key=lambda pair: (pair[1].rank, -(pair[1].cosine or 0.0)))
    return SearchResults(results=[search_result(name, hit) for name, hit in found[:k]])


def _with_paths(catalog: Catalog, names: list[str], paths: Sequence[str] | None) -> list[str]:
    """The indexes holding a file that matches ``paths`` (all of ``names`` without a filter).

    Searching several indexes, one without a matching file is left out rather
    than failing the call; when none has one, the one-index error says why.
    """
    if not paths or len(names) == 1:
        return names
    kept = []
    for name in names:
        with catalog.use(name) as opened:
            if match_paths(opened.files(), paths):
                kept.append(name)
    return kept or names[:1]


def fetch(catalog: Catalog, passage: str) -> Document:
    """The passage ``passage`` (an id from :func:`search`) with its neighbouring passages."""
    name, chunk_id = parse_id(passage)
    if name not in catalog.names:
        raise UsageError(f"unknown index '{name}' in id '{passage}' — use an id from search "
                         f"(the indexes are: {', '.join(catalog.names)})")
    with catalog.use(name) as opened:
        chunks = opened.neighbours(chunk_id, CONTEXT_CHUNKS)
    if chunk_id not in {c.id for c in chunks}:
        raise UsageError(f"no passage '{passage}' in index '{name}' — its file may have been "
                         "re-indexed since; search again")
    return document(name, chunk_id, chunks)


def list_indexes(catalog: Catalog) -> IndexList:
    """Every served index with its file and chunk counts and its embedding model."""
    infos = [catalog.info(name) for name in catalog.names]
    return IndexList(indexes=[
        IndexSummary(name=i.name, path=i.path, documents=i.documents, chunks=i.chunks,
                     embed_model=i.embed_model) for i in infos])


def ask(catalog: Catalog, question: str, index: str | None = None, *,
        model: str | None = None) -> AskResult:
    """Answer ``question`` from ``index`` with the chat ``model``, citing the passages."""
    if not question.strip():
        raise UsageError("the question is empty — ask something")
    names = catalog.pick(index)
    if len(names) > 1:
        raise UsageError(f"several indexes are served — say which to ask: {', '.join(names)}")
    with catalog.use(names[0]) as opened:
        answer = opened.ask(question, model=model)
    return AskResult(index=names[0], **answer.as_dict())

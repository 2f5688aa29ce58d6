"""What the MCP tools return: typed results (their output schemas) built from hits.

The shapes follow the search/fetch convention of agent hosts' research
connectors: ``search`` gives ``{"results": [{id, title, url, ...}]}`` and
``fetch`` one ``{id, title, text, url, metadata}``.  An id is
``<index>:<chunk id>``; a url is the file's ``file://`` URL, with
``#page=N`` for a page of a PDF.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..errors import UsageError
from ..loading.formats import location
from ..retrieval import Hit

__all__ = ["AskResult", "Document", "IndexList", "IndexSummary", "SearchResult",
           "SearchResults", "join_passages", "parse_id", "passage_id", "search_result",
           "title_of", "url_of"]


class SearchResult(BaseModel):
    """One passage found by ``search``."""

    id: str = Field(description="Pass to fetch to read the passage with its context: "
                    "'<index>:<chunk id>'.")
    title: str = Field(description="File name, page for PDFs, and the heading path.")
    url: str = Field(description="file:// URL of the document (#page=N for a PDF page): "
                     "cite it.")
    text: str = Field(description="The passage, exactly as in the document.")
    score: float | None = Field(description="Cosine similarity of query and passage "
                                "(about 0.3 = loosely related, 0.6+ = close).")
    index: str = Field(description="The index the passage comes from.")
    location: str = Field(description="path:page for PDFs, else the path.")


class SearchResults(BaseModel):
    """The passages best matching a query, best first."""

    results: list[SearchResult]


class Document(BaseModel):
    """A passage with its neighbouring passages, as ``fetch`` returns it."""

    id: str
    title: str
    text: str = Field(description="The passage with the passages before and after it in "
                      "its document, overlaps removed.")
    url: str
    metadata: dict[str, Any] = Field(description="index, path, page, heading, start and "
                                     "end offsets of the passage, chunk ids of the context.")


class IndexSummary(BaseModel):
    """One served index."""

    name: str
    path: str
    documents: int = Field(description="Files indexed.")
    chunks: int = Field(description="Passages indexed.")
    embed_model: str


class IndexList(BaseModel):
    """The served indexes."""

    indexes: list[IndexSummary]


class AskResult(BaseModel):
    """An answer from the local chat model, as ``ragkit ask --json`` prints it."""

    index: str = Field(description="The index asked; '<index>:<source id>' fetches a source.")
    question: str
    answer: str
    found: bool = Field(description="False: no passage was relevant; the model was not asked.")
    cited: list[int] = Field(description="Numbers n of the sources cited as [n] in the answer.")
    sources: list[dict[str, Any]] = Field(description="The passages given to the model, "
                                          "numbered n from 1.")
    cited_by: str | None
    left_out: list[dict[str, Any]]
    history_left_out: int
    note: str | None
    model: str | None
    mode: str
    done_reason: str | None
    metrics: dict[str, Any]


def passage_id(index: str, chunk_id: int) -> str:
    """The id ``search`` gives and ``fetch`` takes.

    >>> passage_id("notes", 42)
    'notes:42'
    """
    return f"{index}:{chunk_id}"


def parse_id(text: str) -> tuple[str, int]:
    """``(index, chunk id)`` of an id, or a UsageError saying what an id looks like.

    >>> parse_id("my:notes:7")
    ('my:notes', 7)
    """
    name, sep, number = text.strip().rpartition(":")
    if not sep or not name or not number.isdigit():
        raise UsageError(f"'{text}' is not a passage id — pass an id from search, "
                         "like 'notes:42'")
    return name, int(number)


def url_of(hit: Hit) -> str:
    """The document's ``file://`` URL, with ``#page=N`` for a page of a PDF.

    >>> url_of(Hit(1, 1.0, 1, "/docs/a b.pdf", "a b.pdf", 2, "", "t"))
    'file:///docs/a%20b.pdf#page=2'
    >>> url_of(Hit(1, 1.0, 1, "/docs/deck.pptx", "deck.pptx", 3, "", "t"))  # no page fragment
    'file:///docs/deck.pptx'
    """
    url = Path(hit.path).as_uri()
    is_pdf = Path(hit.path).suffix.lower() == ".pdf"
    return f"{url}#page={hit.page}" if hit.page is not None and is_pdf else url


def title_of(hit: Hit) -> str:
    """File name, page (or slide, sheet, cell...) and heading path.

    >>> title_of(Hit(1, 1.0, 1, "/d/ops.md", "ops.md", None, "Ops > Backups", "t"))
    'ops.md — Ops > Backups'
    >>> title_of(Hit(1, 1.0, 1, "/d/m.pdf", "m.pdf", 2, "", "t"))
    'm.pdf, page 2'
    >>> title_of(Hit(1, 1.0, 1, "/d/deck.pptx", "deck.pptx", 3, "Roadmap", "t"))
    'deck.pptx:slide 3 — Roadmap'
    """
    name = Path(hit.path).name
    where, heading = location(name, hit.page, hit.heading)
    if hit.page is not None and where == f"{name}:{hit.page}":  # a page of a PDF
        where = f"{name}, page {hit.page}"
    return f"{where} — {heading}" if heading else where


def location_of(hit: Hit) -> str:
    """Where the passage is, as citations say it (``path:page``, ``path:slide 3``...),
    with the absolute path: hosts have no working folder."""
    return location(hit.path, hit.page, hit.heading)[0]


def search_result(index: str, hit: Hit) -> SearchResult:
    """A hit of ``index`` as ``search`` returns it."""
    score = hit.cosine if hit.cosine is not None else hit.score
    return SearchResult(id=passage_id(index, hit.id), title=title_of(hit), url=url_of(hit),
                        text=hit.text, score=score if math.isfinite(score) else None,
                        index=index, location=location_of(hit))


def document(index: str, chunk_id: int, chunks: Sequence[Hit]) -> Document:
    """Chunk ``chunk_id`` with its neighbours ``chunks`` (in document order) as a Document."""
    hit = next(c for c in chunks if c.id == chunk_id)
    metadata = {"index": index, "path": hit.path, "page": hit.page, "heading": hit.heading,
                "start": hit.start, "end": hit.end, "chunk_id": hit.id,
                "location": location_of(hit), "context_ids": [c.id for c in chunks]}
    return Document(id=passage_id(index, chunk_id), title=title_of(hit),
                    text=join_passages(chunks), url=url_of(hit), metadata=metadata)


def join_passages(chunks: Sequence[Hit]) -> str:
    """The text of consecutive chunks of one file, each overlap given once.

    A chunk's text is its source from ``start`` to ``end``, so the part of a
    chunk past the end of the one before is exactly the source that follows.

    >>> source = "One two. Three four. Five six."
    >>> a = Hit(0, 0, 1, "/f", "f", None, "", source[0:20], 0, 20)
    >>> b = Hit(0, 0, 2, "/f", "f", None, "", source[9:30], 9, 30)
    >>> join_passages([a, b]) == source
    True
    """
    parts: list[str] = []
    last: Hit | None = None
    for chunk in chunks:
        if last is not None and chunk.page == last.page and chunk.start < last.end:
            if chunk.end > last.end:
                parts.append(chunk.text[last.end - chunk.start:])
                last = chunk
            continue
        parts.append(("\n\n" if parts else "") + chunk.text)
        last = chunk
    return "".join(parts)

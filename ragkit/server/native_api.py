"""The native face, for apps that want retrieval (and answers) without a chat protocol.

* ``GET /indexes``: the served indexes with their info; ``GET /indexes/{name}``: one.
* ``POST /indexes/{name}/search``: ``{"hits": [...]}`` with the fields of ``search --json``.
* ``POST /indexes/{name}/ask``: NDJSON ``{"delta": "..."}`` lines, then the
  ``ask --json`` object as the last line (or ``{"error": "..."}`` if it broke off).

Bodies are validated by their models below; a bad one gets 422 with
``{"error": "...", "field": "k"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..queries import PROMPT_MODES, RETRIEVAL_MODES
from .backend import Passthrough
from .rag import AnswerRequest, Catalog
from .streams import blocking, ndjson, opened

__all__ = ["MAX_K", "router"]

router = APIRouter(prefix="/indexes", tags=["Native: retrieval and answers"])

#: The most hits one request may ask for.
MAX_K = 100
if TYPE_CHECKING:
    Retrieval: TypeAlias = str
    Prompt: TypeAlias = str
else:  # pydantic reads these at run time: the one lists of ragkit.queries
    Retrieval, Prompt = Literal[RETRIEVAL_MODES], Literal[PROMPT_MODES]


class SearchBody(BaseModel):
    """A search: the same choices as ``ragkit search``."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="What to search for.")
    k: int = Field(5, ge=1, le=MAX_K, description="How many chunks.")
    retrieval: Retrieval = "hybrid"
    paths: list[str] = Field(default_factory=list,
                             description="Glob patterns a chunk's file must match.")
    diversity: float = Field(0.0, ge=0.0, le=1.0, description="0..1: MMR re-ranking.")


class Turn(BaseModel):
    """An earlier message of the conversation."""

    role: Literal["user", "assistant"]
    content: str


class AskBody(BaseModel):
    """A question: the same choices as ``ragkit ask``, plus earlier turns."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    k: int = Field(4, ge=1, le=MAX_K)
    mode: Prompt = "chat"
    model: str | None = Field(None, description="Chat model [default: the server's].")
    options: dict[str, Any] = Field(default_factory=dict, description="Model options.")
    retrieval: Retrieval = "hybrid"
    min_score: float | None = None
    force: bool = False
    paths: list[str] = Field(default_factory=list)
    diversity: float = Field(0.0, ge=0.0, le=1.0)
    history: list[Turn] = Field(default_factory=list)


def _catalog(request: Request) -> Catalog:
    return request.app.state.catalog


def _all_info(catalog: Catalog) -> list[dict[str, Any]]:
    out = []
    for name in catalog.names():
        try:
            out.append(catalog.info(name))
        except Exception as exc:  # a damaged index is listed with what is wrong
            out.append({"name": name, "error": str(exc)})
    return out


@router.get("")
async def list_indexes(request: Request) -> dict[str, Any]:
    """The served indexes and their info."""
    return {"indexes": await blocking(_all_info, _catalog(request))}


@router.get("/{name}")
async def index_info(request: Request, name: str) -> dict[str, Any]:
    """One index's info: chunks, models, size, chunker."""
    return await blocking(_catalog(request).info, name)


@router.post("/{name}/search")
async def search(request: Request, name: str, body: SearchBody) -> dict[str, Any]:
    """The chunks that best match the query."""
    hits = await blocking(lambda: _catalog(request).search(
        name, body.query, body.k, retrieval=body.retrieval, paths=body.paths,
        diversity=body.diversity))
    return {"query": body.query, "retrieval": body.retrieval, "hits": hits}


@router.post("/{name}/ask")
async def ask(request: Request, name: str, body: AskBody) -> Response:
    """NDJSON: ``{"delta"}`` lines as the answer streams, then the ``ask --json`` object."""
    job = AnswerRequest(
        name, body.question, mode=body.mode, history=[t.model_dump() for t in body.history],
        k=body.k, model=body.model, options=body.options, retrieval=body.retrieval,
        min_score=body.min_score, force=body.force, paths=body.paths,
        diversity=body.diversity, sources_block=False)
    catalog = _catalog(request)
    extra = Passthrough()
    feed, first = await opened(lambda emit: catalog.answer(job, extra, emit), extra)

    def render(kind: str, value: Any) -> dict[str, Any] | None:
        if kind == "delta":
            return {"delta": value}
        return value.answer if kind == "done" else None

    return ndjson(feed, first, render, "native")

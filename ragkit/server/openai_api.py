"""The OpenAI-compatible face: ``/v1/models``, ``/v1/chat/completions``, ``/v1/embeddings``
and ``/v1/vector_stores/{index}/search``, as the official ``openai`` client reads them.

rag models answer like on the Ollama face (same retrieval, same ``Sources:``
block, a ``sources`` array on the last chunk); every other model is passed
through to the upstream Ollama's own ``/v1``.  Streams are SSE chunks ending
with ``data: [DONE]``; errors are ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response, StreamingResponse

from .backend import Passthrough
from .errors import ApiError, api_error, error_line
from .ollama_api import rag_models, split_conversation
from .rag import AnswerRequest, Catalog, Final
from .side_requests import is_side_request
from .streams import Feed, blocking, collect, opened

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])


def _catalog(request: Request) -> Catalog:
    return request.app.state.catalog


def _created(stamp: Any) -> int:
    try:
        return int(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


async def _models(request: Request) -> list[dict[str, Any]]:
    ours = await blocking(rag_models, _catalog(request))
    theirs = await request.app.state.upstream.json("GET", "/api/tags")
    upstream = (theirs or {}).get("models") if isinstance(theirs, dict) else None
    return ([{"id": m["name"].removesuffix(":latest"), "object": "model",
              "created": _created(m["modified_at"]), "owned_by": "ragkit"} for m in ours]
            + [{"id": m.get("name"), "object": "model", "created": _created(m.get("modified_at")),
                "owned_by": "ollama"} for m in upstream or [] if isinstance(m, dict)])


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    """rag models (``rag/<index>``), then the upstream's."""
    return {"object": "list", "data": await _models(request)}


@router.get("/models/{model:path}")
async def get_model(request: Request, model: str) -> dict[str, Any]:
    """One model, or 404."""
    for entry in await _models(request):
        if entry["id"] in (model, model.removesuffix(":latest")):
            return entry
    raise ApiError(404, f"model '{model}' not found", "model_not_found", "model")


# -- chat completions -------------------------------------------------------------------

class ChatBody(BaseModel):
    """The fields ragkit reads; any other field is accepted and passed on."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of parts."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


def _message(m: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI message in Ollama's shape (tool-call arguments as objects)."""
    role = "system" if m.get("role") == "developer" else str(m.get("role"))
    out: dict[str, Any] = {"role": role, "content": _text_of(m.get("content"))}
    calls = m.get("tool_calls") or []
    if calls:
        out["tool_calls"] = [{"function": {"name": c.get("function", {}).get("name"),
                                           "arguments": _arguments(c)}} for c in calls]
    return out


def _arguments(call: dict[str, Any]) -> Any:
    raw = call.get("function", {}).get("arguments") or "{}"
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}


def _options(body: ChatBody) -> dict[str, Any]:
    """OpenAI's sampling fields as Ollama options."""
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    pairs = {"temperature": body.temperature, "top_p": body.top_p, "seed": body.seed,
             "num_predict": body.max_completion_tokens or body.max_tokens, "stop": stop,
             "presence_penalty": body.presence_penalty,
             "frequency_penalty": body.frequency_penalty}
    return {k: v for k, v in pairs.items() if v is not None}


def _format(body: ChatBody) -> Any:
    kind = (body.response_format or {}).get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return (body.response_format or {}).get("json_schema", {}).get("schema")
    return None


@router.post("/chat/completions")
async def chat_completions(request: Request, body: ChatBody) -> Response:
    """A rag model's answer as a chat completion (SSE when ``stream``), or pass-through."""
    name = Catalog.rag_name(body.model)
    if name is None:
        return await request.app.state.upstream.forward(request, await request.body())
    messages = [_message(m) for m in body.messages]
    system, history, question, tail = split_conversation(messages)
    fields = {k: v for k, v in {"tools": body.tools, "format": _format(body)}.items() if v}
    if is_side_request(question, request.headers):
        job = AnswerRequest(name, question, plain=True, messages=messages,
                            options=_options(body))
        extra = Passthrough(fields=fields)
    else:
        job = AnswerRequest(name, question, history=history, options=_options(body))
        extra = Passthrough(system=system, tail=tail, fields=fields)
    catalog = _catalog(request)

    def work(emit: Any) -> None:
        extra.on_extra = lambda value: emit("extra", value)
        catalog.answer(job, extra, emit)

    feed, first = await opened(work, extra)
    ids = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()),
           "model": body.model}
    if not body.stream:
        return JSONResponse(_completion(await collect(feed, first), ids))
    usage = bool((body.stream_options or {}).get("include_usage"))
    return StreamingResponse(_sse(feed, first, ids, usage), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


def _tool_calls(calls: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    """Ollama's tool calls in OpenAI's shape (ids, and arguments as a JSON string)."""
    return [{"index": start + i, "id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
             "function": {"name": c.get("function", {}).get("name"),
                          "arguments": json.dumps(c.get("function", {}).get("arguments", {}))}}
            for i, c in enumerate(calls)]


def _usage(final: Final) -> dict[str, int]:
    prompt, completion = final.metrics.get("prompt_eval_count", 0), final.metrics.get(
        "eval_count", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _finish(final: Final, called: bool) -> str:
    return "tool_calls" if called else ("length" if final.done_reason == "length" else "stop")


def _completion(events: list[tuple[str, Any]], ids: dict[str, Any]) -> dict[str, Any]:
    """The ``chat.completion`` object of a finished answer."""
    final: Final = events[-1][1]
    calls = [c for k, v in events if k == "extra" for c in v.get("tool_calls", [])]
    message: dict[str, Any] = {"role": "assistant",
                               "content": "".join(v for k, v in events if k == "delta")}
    if calls:
        message["tool_calls"] = _tool_calls(calls)
    return {**ids, "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": _finish(final, bool(calls))}],
            "usage": _usage(final), "sources": final.sources}


async def _sse(feed: Feed, first: tuple[str, Any], ids: dict[str, Any],
               usage: bool) -> AsyncIterator[bytes]:
    """``chat.completion.chunk`` events: role, deltas, finish (+ usage), then ``[DONE]``."""
    def chunk(delta: dict[str, Any] | None, finish: str | None = None,
              **more: Any) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta,
                                             "finish_reason": finish}]
        data = {**ids, "object": "chat.completion.chunk", "choices": choices,
                **({"usage": None} if usage else {}), **more}
        return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()

    event, called = first, 0
    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            kind, value = event
            if kind == "error":
                yield error_line(api_error(value), "openai")
                return
            if kind == "delta":
                yield chunk({"content": value})
            elif kind == "extra":
                delta = {}
                if value.get("tool_calls"):
                    delta["tool_calls"] = _tool_calls(value["tool_calls"], called)
                    called += len(value["tool_calls"])
                if value.get("thinking"):
                    delta["reasoning"] = value["thinking"]
                yield chunk(delta)
            else:
                yield chunk({}, _finish(value, called > 0), sources=value.sources)
                if usage:
                    yield chunk(None, usage=_usage(value))
                yield b"data: [DONE]\n\n"
                return
            event = await feed.next()
    finally:
        feed.close()


# -- embeddings -------------------------------------------------------------------------

class EmbeddingsBody(BaseModel):
    """An embeddings request."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: str | None = Field(None, pattern="^(float|base64)$")
    dimensions: int | None = Field(None, ge=1)


@router.post("/embeddings")
async def embeddings(request: Request, body: EmbeddingsBody) -> Response:
    """Embeddings from a rag model's embedding model (float or base64), or pass-through."""
    name = Catalog.rag_name(body.model)
    if name is None:
        return await request.app.state.upstream.forward(request, await request.body())
    given: list[Any] = [body.input] if isinstance(body.input, str) else list(body.input)
    texts = [t for t in given if isinstance(t, str) and t]
    if not texts or len(texts) != len(given):
        raise ApiError(400, "input must be a non-empty string or list of non-empty strings "
                       "(token arrays are not supported)", param="input")
    vectors = await blocking(_catalog(request).embed, name, texts)
    data = []
    for i, vector in enumerate(vectors):
        values = vector[: body.dimensions] if body.dimensions else vector
        shown: Any = values
        if body.encoding_format == "base64":
            shown = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": i, "embedding": shown})
    tokens = sum(len(t.split()) for t in texts)
    return JSONResponse({"object": "list", "model": body.model, "data": data,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


# -- vector store search ---------------------------------------------------------------

class VectorSearchBody(BaseModel):
    """OpenAI's vector-store search request."""

    model_config = ConfigDict(extra="allow")

    query: str | list[str]
    max_num_results: int = Field(10, ge=1, le=50)
    filters: dict[str, Any] | None = None
    ranking_options: dict[str, Any] | None = None
    rewrite_query: bool = False


def _filter_paths(spec: dict[str, Any] | None) -> list[str]:
    """Path globs from a filter on ``filename`` or ``path`` (eq / in, or an ``or`` of them)."""
    if not spec:
        return []
    kind = spec.get("type")
    if kind == "or":
        return [p for sub in spec.get("filters") or [] for p in _filter_paths(sub)]
    if kind in ("eq", "in") and spec.get("key") in ("filename", "path"):
        value = spec.get("value")
        values = value if isinstance(value, list) else [value]
        if all(isinstance(v, str) and v for v in values):
            return list(values)
    raise ApiError(400, "ragkit filters only on 'filename' or 'path' with 'eq' or 'in' "
                   "(or an 'or' of such filters)", param="filters")


@router.post("/vector_stores/{index}/search")
async def vector_store_search(request: Request, index: str,
                              body: VectorSearchBody) -> dict[str, Any]:
    """Search an index in the shape of OpenAI's vector-store search."""
    queries = [body.query] if isinstance(body.query, str) else body.query
    if not queries or not all(q.strip() for q in queries):
        raise ApiError(400, "query must not be empty", param="query")
    threshold = float((body.ranking_options or {}).get("score_threshold") or 0.0)
    hits = await blocking(lambda: _catalog(request).search(
        index, "\n".join(queries), body.max_num_results, paths=_filter_paths(body.filters)))
    data = []
    for hit in hits:
        raw = hit["cosine"] if hit.get("cosine") is not None else hit["score"]
        score = max(0.0, min(1.0, float(raw)))
        if score < threshold:
            continue
        attributes = {"path": hit["source"], "chunk_id": hit["id"], "rank": hit["rank"],
                      **({"page": hit["page"]} if hit["page"] is not None else {}),
                      **({"heading": hit["heading"]} if hit["heading"] else {})}
        data.append({"file_id": hit["source"], "filename": hit["path"].rsplit("/", 1)[-1],
                     "score": score, "attributes": attributes,
                     "content": [{"type": "text", "text": hit["text"]}]})
    return {"object": "vector_store.search_results.page", "search_query": queries,
            "data": data, "has_more": False, "next_page": None}

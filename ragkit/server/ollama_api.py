"""The Ollama-compatible face: ``/`` and ``/api/...``, with Ollama's own semantics.

Every served index is a model named ``rag/<index>`` (``rag/<index>:latest`` in
``/api/tags``; both spellings are accepted).  Requests for any other model go
to the upstream Ollama unchanged (:mod:`.proxy`).  A rag model's ``/api/chat``
retrieves with the conversation as ``ragkit chat`` does, streams Ollama's
NDJSON records, ends its text with a ``Sources:`` block and adds a ``sources``
array to the final record.  Errors are ``{"error": "..."}``: 404 for an unknown
model, 400 for a bad body, and an error line when a stream breaks.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from .backend import Passthrough
from .errors import ApiError
from .rag import PREFIX, AnswerRequest, Catalog, Final, strip_sources
from .side_requests import is_side_request
from .streams import blocking, collect, ndjson, opened

__all__ = ["VERSION", "rag_models", "router", "split_conversation"]

router = APIRouter(tags=["Ollama-compatible"])

#: Reported by /api/version when no upstream answers: recent enough for clients' checks.
VERSION = "0.12.6"
_PASSED = ("keep_alive", "format", "think", "tools")
_METRICS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
            "eval_count", "eval_duration")


def _catalog(request: Request) -> Catalog:
    return request.app.state.catalog


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body, or a 400 saying what is wrong with it."""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise ApiError(400, f"invalid JSON in the request body: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


# -- liveness, version, models ---------------------------------------------------------

@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def root() -> Response:
    """Ollama's liveness probe."""
    return PlainTextResponse("Ollama is running")


@router.get("/api/version")
async def version(request: Request) -> dict[str, Any]:
    """The upstream Ollama's version (clients check it for features), else a recent one."""
    reply = await request.app.state.upstream.json("GET", "/api/version")
    return reply if isinstance(reply, dict) and reply.get("version") else {"version": VERSION}


def rag_models(catalog: Catalog) -> list[dict[str, Any]]:
    """The served indexes as ``/api/tags`` entries (an unreadable index is left out)."""
    entries = []
    for name in catalog.names():
        try:
            info = catalog.info(name)
        except Exception:  # a damaged index must not hide the others
            continue
        tag = f"{PREFIX}{name}:latest"
        digest = hashlib.sha256(f"{tag}{info['modified_at']}{info['chunks']}".encode())
        entries.append({
            "name": tag, "model": tag, "modified_at": info["modified_at"], "size": info["size"],
            "digest": digest.hexdigest(),
            "details": {"parent_model": "", "format": "ragkit", "family": "rag",
                        "families": ["rag"], "parameter_size": "", "quantization_level": "",
                        "embedding_model": info["embed_model"], "chat_model": info["chat_model"],
                        "chunks": info["chunks"]},
        })
    return entries


@router.get("/api/tags")
async def tags(request: Request) -> dict[str, Any]:
    """The rag models, then the upstream's models."""
    ours = await blocking(rag_models, _catalog(request))
    theirs = await request.app.state.upstream.json("GET", "/api/tags")
    models = (theirs or {}).get("models") if isinstance(theirs, dict) else None
    return {"models": ours + [m for m in models or [] if isinstance(m, dict)]}


@router.get("/api/ps")
async def ps(request: Request) -> Any:
    """The upstream's loaded models (an index is not loaded like a model)."""
    reply = await request.app.state.upstream.json("GET", "/api/ps")
    return reply if isinstance(reply, dict) else {"models": []}


@router.post("/api/show")
async def show(request: Request) -> Response:
    """A rag model's details, or the upstream's answer for any other model."""
    raw = await request.body()
    body = parse_body(raw)
    name = Catalog.rag_name(body.get("model") or body.get("name"))
    if name is None:
        return await request.app.state.upstream.forward(request, raw)
    info = await blocking(_catalog(request).info, name)
    modelfile = (f"# ragkit index '{name}': answers from its documents, citing them\n"
                 f"FROM {info['chat_model']}\n")
    return JSONResponse({
        "license": "", "modelfile": modelfile, "parameters": "", "template": "",
        "details": {"parent_model": "", "format": "ragkit", "family": "rag", "families": ["rag"],
                    "parameter_size": "", "quantization_level": ""},
        "model_info": {"general.architecture": "rag", "general.basename": name,
                       "rag.chat_model": info["chat_model"],
                       "rag.embedding_model": info["embed_model"],
                       "rag.embedding_length": info["dimension"], "rag.chunks": info["chunks"]},
        "capabilities": ["completion"], "modified_at": info["modified_at"],
    })


# -- chat and generate ------------------------------------------------------------------

def split_conversation(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]],
                                                                 str, list[dict[str, Any]]]:
    """``(system, history, question, tail)`` of a chat: the last user message is the question.

    >>> split_conversation([{"role": "system", "content": "Be brief."},
    ...     {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
    ...     {"role": "user", "content": "Why?"}])[1:3]
    ([{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'}], 'Why?')
    """
    system = "\n\n".join(m["content"] for m in messages
                         if m.get("role") == "system" and m.get("content")) or None
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    if last < 0:
        raise ApiError(400, "the messages hold no user message to answer", param="messages")
    history = [{"role": m["role"], "content": strip_sources(m.get("content") or "")}
               for m in messages[:last] if m.get("role") in ("user", "assistant")]
    return system, history, messages[last].get("content") or "", messages[last + 1:]


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``messages`` field, checked: a list of objects with a role and string content."""
    messages = body.get("messages") or []
    if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str)
            and isinstance(m.get("content", ""), (str, type(None))) for m in messages):
        raise ApiError(400, "messages must be a list of {role, content} objects with string "
                       "content", param="messages")
    return messages


def _options(body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "options must be an object, e.g. {\"temperature\": 0}",
                       param="options")
    return dict(options or {})


def _load_reply(model: str, kind: str) -> dict[str, Any]:
    """What Ollama answers to an empty prompt: the model is loaded, nothing generated."""
    return {"model": model, "created_at": _now(), **_text(kind, ""), "done": True,
            "done_reason": "load"}


def _text(kind: str, text: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    if kind == "chat":
        return {"message": {"role": "assistant", "content": text, **(extra or {})}}
    return {"response": text, **(extra or {})}


def renderer(model: str, kind: str) -> Any:
    """Turn answer events into Ollama's records for ``kind`` (chat or generate)."""
    def render(event: str, value: Any) -> dict[str, Any] | None:
        base = {"model": model, "created_at": _now()}
        if event == "delta":
            return {**base, **_text(kind, value), "done": False}
        if event == "extra":
            return {**base, **_text(kind, "", value), "done": False}
        final: Final = value
        metrics = {key: int(final.metrics.get(key, 0)) for key in _METRICS}
        return {**base, **_text(kind, ""), "done": True,
                "done_reason": final.done_reason or "stop", **metrics, "sources": final.sources}
    return render


def _whole(events: list[tuple[str, Any]], model: str, kind: str) -> dict[str, Any]:
    """One reply for ``stream: false``: the text, thinking and tool calls put together."""
    final = renderer(model, kind)("done", events[-1][1])
    text = "".join(v for k, v in events if k == "delta")
    thinking = "".join(v.get("thinking", "") for k, v in events if k == "extra")
    calls = [c for k, v in events if k == "extra" for c in v.get("tool_calls", [])]
    extra = {**({"thinking": thinking} if thinking else {}),
             **({"tool_calls": calls} if calls else {})}
    return {**final, **_text(kind, text, extra)}


async def answer(request: Request, body: dict[str, Any], job: AnswerRequest, extra: Passthrough,
                 kind: str) -> Response:
    """Run ``job`` and reply as Ollama would: NDJSON records, or one object."""
    model = str(body.get("model"))
    catalog = _catalog(request)

    def work(emit: Any) -> None:
        extra.on_extra = lambda value: emit("extra", value)
        catalog.answer(job, extra, emit)

    feed, first = await opened(work, extra)
    if body.get("stream", True) is False:
        return JSONResponse(_whole(await collect(feed, first), model, kind))
    return ndjson(feed, first, renderer(model, kind), "ollama")


def _passed(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in _PASSED if body.get(key) is not None}


async def _rag_or_upstream(request: Request) -> tuple[dict[str, Any], str, Response | None]:
    """The body and index name of a rag model's request; any other model's goes upstream."""
    raw = await request.body()
    body = parse_body(raw)
    name = Catalog.rag_name(body.get("model"))
    if name is None:
        return body, "", await request.app.state.upstream.forward(request, raw)
    return body, name, None


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    """Chat with a rag model (retrieval + answer), or with any upstream model."""
    body, name, passed = await _rag_or_upstream(request)
    if passed is not None:
        return passed
    messages = _messages(body)
    if not messages:
        _catalog(request).path(name)  # an unknown index is still a 404
        return JSONResponse(_load_reply(str(body["model"]), "chat"))
    system, history, question, tail = split_conversation(messages)
    options = _options(body)
    if is_side_request(question, request.headers):
        job = AnswerRequest(name, question, plain=True, messages=messages, options=options)
        extra = Passthrough(fields=_passed(body))
    else:
        job = AnswerRequest(name, question, history=history, options=options)
        extra = Passthrough(system=system, tail=tail, fields=_passed(body))
    return await answer(request, body, job, extra, "chat")


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    """Generate with a rag model (ragkit's hand-built prompt), or with any upstream model."""
    body, name, passed = await _rag_or_upstream(request)
    if passed is not None:
        return passed
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str):
        raise ApiError(400, "prompt must be a string", param="prompt")
    if not prompt.strip():
        _catalog(request).path(name)
        return JSONResponse(_load_reply(str(body["model"]), "generate"))
    system = body.get("system") if isinstance(body.get("system"), str) else None
    fields = {k: v for k, v in _passed(body).items() if k != "tools"}
    plain = is_side_request(prompt, request.headers)
    job = AnswerRequest(name, prompt, mode="generate", options=_options(body), plain=plain)
    return await answer(request, body, job, Passthrough(system=system, fields=fields),
                        "generate")


# -- embeddings -------------------------------------------------------------------------

def _inputs(value: Any, field: str) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ApiError(400, f"{field} must be a string or a list of strings", param=field)
    return texts


def _cut(vector: list[float], dimensions: Any) -> list[float]:
    """Keep the first ``dimensions`` values, normalized again (as /api/embed does)."""
    if not isinstance(dimensions, int) or not 0 < dimensions < len(vector):
        return vector
    part = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in part)) or 1.0
    return [x / norm for x in part]


@router.post("/api/embed")
async def embed(request: Request) -> Response:
    """Embed with a rag model's embedding model, or pass through."""
    raw = await request.body()
    body = parse_body(raw)
    name = Catalog.rag_name(body.get("model"))
    if name is None:
        return await request.app.state.upstream.forward(request, raw)
    texts = _inputs(body.get("input", []), "input")
    vectors = await blocking(_catalog(request).embed, name, texts)
    return JSONResponse({"model": body["model"],
                         "embeddings": [_cut(v, body.get("dimensions")) for v in vectors],
                         "total_duration": 0, "load_duration": 0,
                         "prompt_eval_count": sum(len(t.split()) for t in texts)})


@router.post("/api/embeddings")
async def embeddings(request: Request) -> Response:
    """The legacy one-text endpoint, for rag models too."""
    raw = await request.body()
    body = parse_body(raw)
    name = Catalog.rag_name(body.get("model"))
    if name is None:
        return await request.app.state.upstream.forward(request, raw)
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise ApiError(400, "prompt must be a string", param="prompt")
    vectors = await blocking(_catalog(request).embed, name, [prompt] if prompt else [])
    return JSONResponse({"embedding": vectors[0] if vectors else []})


# -- everything else: the upstream's ---------------------------------------------------

_MANAGED = {"/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete"}


@router.api_route("/api/{rest:path}", methods=["GET", "POST", "DELETE", "HEAD", "PUT"],
                  include_in_schema=False)
async def other(request: Request, rest: str) -> Response:
    """pull, push, create, copy, delete, blobs...: the upstream's, never for a rag model."""
    raw = await request.body()
    if request.url.path in _MANAGED and raw.strip():
        body = parse_body(raw)
        for key in ("model", "name", "source", "destination"):
            if Catalog.rag_name(body.get(key)) is not None:
                raise ApiError(400, f"'{body[key]}' is a ragkit index, not an Ollama model — "
                               "manage it with `ragkit ingest` and `ragkit indexes`", param=key)
    return await request.app.state.upstream.forward(request, raw)

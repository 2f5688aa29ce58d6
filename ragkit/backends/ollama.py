"""A client of Ollama's REST API over ``requests``, implementing :class:`~.base.Backend`.

Each endpoint builds its request and hands it to :class:`~ragkit.backends.ollama_http.OllamaHTTP`,
which sends it, reads the reply within its deadline and size cap, and maps
every failure to a ragkit error.  Only embedding is retried, because it is
idempotent; re-running a generation would silently change what the user
already saw stream by.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import requests

from ..errors import (
    ModelNotFoundError,
    ProtocolError,
    RagkitError,
    StreamError,
    UsageError,
    VectorError,
)
from ..prompt_guard import template_tokens
from . import transport
from .base import Message, Metrics, Reply, StreamChunk, check_vectors
from .host import parse_host, with_tag
from .ollama_http import STREAM_FACTOR, NoRoute, OllamaHTTP, Transient, embed_cap
from .ollama_records import GenerateOptions, ModelEntry, ModelInfo, PullProgress

__all__ = ["GenerateOptions", "ModelEntry", "ModelInfo", "OllamaClient", "PullProgress"]

_T = TypeVar("_T")
_Format = str | Mapping[str, Any] | None


class OllamaClient:
    """Talks to one Ollama server; implements :class:`~ragkit.backends.base.Backend`."""

    name = "ollama"

    def __init__(
        self, host: str | None = None, *, timeout: float = 300.0, connect_timeout: float = 3.0,
        retries: int = 3, backoff: float = 0.5, session: requests.Session | None = None,
    ) -> None:
        self.host = parse_host(host)
        if not timeout > 0:  # also refuses NaN; requests would fail later with a ValueError
            raise UsageError(f"the timeout must be a positive number of seconds, got {timeout}")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._http = OllamaHTTP(self.host, timeout, connect_timeout,
                                session if session is not None else transport.session())
        self._legacy_embed = False  # set once the server turns out to lack /api/embed
        self._specials: dict[str, tuple[str, ...]] = {}  # model -> its template's special tokens

    def describe(self) -> str:
        """One line for the user: ``Ollama at <host>``."""
        return f"Ollama at {self.host}"

    # -- embeddings ----------------------------------------------------------------

    def embed(
        self, model: str, texts: Sequence[str], *, truncate: bool = True,
        dimensions: int | None = None, keep_alive: str | float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """Embed ``texts`` in one ``/api/embed`` request; L2-normalized float32 rows (n, dim)."""
        if isinstance(texts, str):
            raise UsageError("embed() takes a list of texts, not a single string")
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if not self._legacy_embed:
            body = _only_set(model=model, input=list(texts), truncate=None if truncate else False,
                             dimensions=dimensions, keep_alive=keep_alive, options=options)
            try:
                return self._vectors("/api/embed", body, len(texts), dimensions)
            except NoRoute:
                self._legacy_embed = True  # an Ollama older than /api/embed; ask once per client
        return self._embed_legacy(model, texts, dimensions, keep_alive, options)

    def _embed_legacy(
        self, model: str, texts: Sequence[str], dimensions: int | None,
        keep_alive: str | float | None, options: Mapping[str, Any] | None,
    ) -> np.ndarray:
        """Old servers: one ``/api/embeddings`` call per text, vectors not normalized."""
        rows = []
        for text in texts:
            body = _only_set(model=model, prompt=text, keep_alive=keep_alive, options=options)
            rows.append(self._vectors("/api/embeddings", body, 1, dimensions))
        return np.vstack(rows)

    def _vectors(self, path: str, body: Mapping[str, Any], count: int,
                 dimensions: int | None) -> np.ndarray:
        """``count`` checked, normalized vectors from one embedding request.

        A reply whose vectors are unusable (NaN, strings, zeros, ...) is asked
        for again, like a garbled one, within the same few retries.
        """
        def once() -> np.ndarray:
            record = self._http.json("POST", path, body, embed_cap(count))
            rows = record.get("embeddings") if path == "/api/embed" else [record.get("embedding")]
            try:
                return _matrix(rows, count, path, dimensions)
            except VectorError as exc:
                raise Transient(exc) from None

        return self._retrying(once, True)

    # -- generation ----------------------------------------------------------------

    def generate(
        self, model: str, prompt: str, request: GenerateOptions | None = None, *,
        options: Mapping[str, Any] | None = None, **fields: Any,
    ) -> Iterator[StreamChunk]:
        """Stream a completion from ``/api/generate``: text deltas, then a final chunk.

        ``request``: the request's other fields (system, raw, format...); keyword
        ``fields`` override it (``generate(m, p, system="be brief")``).
        """
        body = _generate_body(model, prompt, options, request, fields)
        return self._chunks("/api/generate", body, _generate_text)

    def generate_full(
        self, model: str, prompt: str, request: GenerateOptions | None = None, *,
        options: Mapping[str, Any] | None = None, **fields: Any,
    ) -> Reply:
        """The whole completion from ``/api/generate`` with ``stream: false``."""
        body = _generate_body(model, prompt, options, request, fields)
        return self._reply("/api/generate", body, _generate_text)

    def chat(
        self, model: str, messages: Sequence[Message], *,
        options: Mapping[str, Any] | None = None, keep_alive: str | float | None = None,
        format: _Format = None, tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream the assistant's next message from ``/api/chat``."""
        body = _chat_body(model, messages, options, keep_alive, format, tools)
        return self._chunks("/api/chat", body, _chat_text)

    def chat_full(
        self, model: str, messages: Sequence[Message], *,
        options: Mapping[str, Any] | None = None, keep_alive: str | float | None = None,
        format: _Format = None, tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Reply:
        """The assistant's whole next message from ``/api/chat`` with ``stream: false``."""
        body = _chat_body(model, messages, options, keep_alive, format, tools)
        return self._reply("/api/chat", body, _chat_text)

    def _chunks(self, path: str, body: dict[str, Any],
                text_of: Callable[[Mapping[str, Any]], str]) -> Iterator[StreamChunk]:
        """Text deltas of a stream, then one chunk with ``done=True`` and the metrics."""
        records = self._http.records(path, {**body, "stream": True},
                                     total=STREAM_FACTOR * self.timeout)
        with contextlib.closing(records):
            for record in records:
                if record.get("done"):
                    yield StreamChunk(text_of(record), True, record.get("done_reason"),
                                      Metrics.from_record(record))
                    return
                yield StreamChunk(text_of(record))
        raise ProtocolError("Ollama's stream ended before the final record — "
                            "the server may have crashed; retry")

    def _reply(self, path: str, body: dict[str, Any],
               text_of: Callable[[Mapping[str, Any]], str]) -> Reply:
        record = self._json("POST", path, {**body, "stream": False})
        return Reply(text_of(record), record.get("done_reason"), Metrics.from_record(record))

    # -- models --------------------------------------------------------------------

    def list_models(self) -> list[ModelEntry]:
        """The models the server has (``GET /api/tags``)."""
        return _entries(self._json("GET", "/api/tags"))

    def has_model(self, model: str) -> bool:
        """Whether the server has ``model``; a bare name means its ``:latest`` tag."""
        wanted = with_tag(model)
        return any(with_tag(m.name) == wanted for m in self.list_models())

    def show(self, model: str) -> ModelInfo:
        """Details, capabilities and architecture facts of one model (``/api/show``)."""
        return ModelInfo.from_record(model, self._json("POST", "/api/show", {"model": model}))

    def special_tokens(self, model: str) -> tuple[str, ...]:
        """The special tokens ``model``'s chat template writes (from ``/api/show``).

        Asked once per model; empty when the server cannot say, since the request
        that follows reports any real problem better.
        """
        if model not in self._specials:
            try:
                template = self.show(model).template
            except RagkitError:
                return ()
            self._specials[model] = template_tokens(template) if template else ()
        return self._specials[model]

    def pull(self, model: str) -> Iterator[PullProgress]:
        """Download ``model``, yielding its progress records."""
        status = None
        records = self._http.records("/api/pull", {"model": model, "stream": True}, total=None)
        with contextlib.closing(records):
            try:
                for record in records:
                    progress = PullProgress.from_record(record)
                    status = progress.status
                    yield progress
            except StreamError as exc:  # the registry's refusal arrives as a stream error
                raise ModelNotFoundError(model, (
                    f"cannot pull '{model}': {exc.error} — check the name and tag in "
                    "Ollama's library (ollama.com/library)")) from None
        if status != "success":  # a pull that stops short must not look like a finished one
            raise ProtocolError(f"the pull of {model} ended before 'success' — "
                                "the server may have crashed; run it again to resume")

    def copy(self, source: str, destination: str) -> None:
        """Copy a model under a new name (``/api/copy``)."""
        with _absent(source, "to copy"):
            self._json("POST", "/api/copy", {"source": source, "destination": destination})

    def delete(self, model: str) -> None:
        """Delete a model from the server (``DELETE /api/delete``)."""
        with _absent(model, "to delete"):
            self._json("DELETE", "/api/delete", {"model": model})

    def ps(self) -> list[ModelEntry]:
        """The models loaded in memory right now (``/api/ps``)."""
        return _entries(self._json("GET", "/api/ps"))

    def version(self) -> str:
        """The server's version string (``/api/version``)."""
        return str(self._json("GET", "/api/version").get("version", ""))

    def is_alive(self, timeout: float = 1.0) -> bool:
        """Whether the server answers ``HEAD /`` within ``timeout`` seconds; never raises."""
        return self._http.alive(timeout)

    # -- transport -----------------------------------------------------------------

    def _json(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
              retry: bool = False) -> dict[str, Any]:
        """One request whose reply is a JSON object (or empty, as copy and delete answer).

        With ``retry``, a garbled reply is asked for again too, like a failed request.
        """
        return self._retrying(lambda: self._http.json(method, path, body), retry)

    def _retrying(self, once: Callable[[], _T], retry: bool) -> _T:
        """``once()``, tried again with backoff on a ``Transient`` failure if ``retry``."""
        attempts = 1 + self.retries if retry else 1
        for attempt in range(attempts):
            try:
                return once()
            except Transient as failed:
                if attempt + 1 == attempts:
                    raise failed.error from None
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

@contextlib.contextmanager
def _absent(model: str, purpose: str) -> Iterator[None]:
    """A missing model, where pulling it is not the advice (copy, delete)."""
    try:
        yield
    except ModelNotFoundError:
        raise ModelNotFoundError(model, f"the server has no model '{model}' {purpose} — "
                                        "`ragkit models list` shows what it has") from None


def _matrix(rows: Any, count: int, path: str, dimensions: int | None) -> np.ndarray:
    """Check the vectors a reply carries and return them as normalized float32 rows."""
    if dimensions and isinstance(rows, list):  # the legacy endpoint cannot truncate; do it here
        rows = [row[:dimensions] if isinstance(row, list) else row for row in rows]
    # /api/embed already normalizes, but the Backend contract must not rest on that.
    return check_vectors(rows, count, width=dimensions, source=f"Ollama's {path} reply",
                         advice="the embedding model or the server is broken; see the "
                                "`ollama serve` log, or pull the model again")


def _entries(reply: Mapping[str, Any]) -> list[ModelEntry]:
    """The ``models`` list of a ``/api/tags`` or ``/api/ps`` reply, typed."""
    records = reply.get("models")
    if not isinstance(records, list):
        return []
    return [ModelEntry.from_record(r) for r in records if isinstance(r, Mapping)]


def _generate_text(record: Mapping[str, Any]) -> str:
    return str(record.get("response") or "")


def _chat_text(record: Mapping[str, Any]) -> str:
    message = record.get("message")
    return str(message.get("content") or "") if isinstance(message, Mapping) else ""


def _generate_body(model: str, prompt: str, options: Mapping[str, Any] | None,
                   request: GenerateOptions | None, changes: dict[str, Any]) -> dict[str, Any]:
    """An ``/api/generate`` request with only the fields that are set."""
    fields = (request or GenerateOptions()).with_(**changes).fields()
    return _only_set(model=model, prompt=prompt, options=options, **fields)


def _chat_body(model: str, messages: Sequence[Message], options: Mapping[str, Any] | None,
               keep_alive: str | float | None, format: _Format,
               tools: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """An ``/api/chat`` request with only the fields that are set."""
    return _only_set(model=model, messages=[dict(m) for m in messages], options=options,
                     keep_alive=keep_alive, format=format, tools=tools)


def _only_set(**fields: Any) -> dict[str, Any]:
    """Drop unset fields so the server applies its own defaults; make values JSON-ready."""
    body: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            value = [dict(v) if isinstance(v, Mapping) else v for v in value]
        body[key] = value
    return body

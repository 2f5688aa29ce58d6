"""A client of Ollama's REST API (``requests``), implementing :class:`~ragkit.backend.Backend`.

Streaming replies are NDJSON: one JSON object per line, text deltas first and
a final ``done: true`` record with the metrics.  Errors are mapped in one
place, :func:`_raise_for`, plus :func:`_parse_line` for errors that arrive in
the middle of a stream (status 200, last line ``{"error": ...}``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests

from .backend import Message, Metrics, Reply, StreamChunk, collect, normalize_rows
from .errors import (
    BackendError,
    BadRequestError,
    ConnectError,
    ModelNotFoundError,
    ProtocolError,
    RequestTimeoutError,
    ServerError,
    StreamError,
)
from .host import parse_host, with_tag

__all__ = ["ModelInfo", "OllamaClient"]


@dataclass(frozen=True)
class ModelInfo:
    """What ``/api/show`` says about a model."""

    name: str
    details: dict[str, Any] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    model_info: dict[str, Any] = field(default_factory=dict)

    def _arch_value(self, key: str) -> int | None:
        arch = self.model_info.get("general.architecture")
        value = self.model_info.get(f"{arch}.{key}") if arch else None
        return int(value) if value is not None else None

    @property
    def embedding_length(self) -> int | None:
        """Vector size of the model (``<arch>.embedding_length``)."""
        return self._arch_value("embedding_length")

    @property
    def context_length(self) -> int | None:
        """Trained context window (``<arch>.context_length``)."""
        return self._arch_value("context_length")


class OllamaClient:
    """Talks to one Ollama server."""

    name = "ollama"

    def __init__(
        self,
        host: str | None = None,
        *,
        timeout: float = 300.0,
        connect_timeout: float = 3.0,
        retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        self.host = parse_host(host)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.backoff = backoff
        self._session = session or requests.Session()
        self._legacy_embed = False  # set once the server turns out to lack /api/embed

    def describe(self) -> str:
        """One line for the user."""
        return f"Ollama at {self.host}"

    # -- transport -----------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
        stream: bool = False, model: str | None = None, timeout: float | None = None,
    ) -> requests.Response:
        """Send one request; any failure becomes a :class:`BackendError`."""
        limit = (self.connect_timeout, timeout if timeout is not None else self.timeout)
        try:
            response = self._session.request(method, self.host + path, json=body,
                                             stream=stream, timeout=limit)
        except requests.exceptions.ConnectTimeout as exc:
            raise ConnectError(self.host, str(exc)) from None
        except requests.exceptions.Timeout:
            raise RequestTimeoutError(self.host, limit[1]) from None
        except requests.exceptions.ConnectionError as exc:
            raise ConnectError(self.host, str(exc)) from None
        if response.status_code >= 400:
            _raise_for(response, model or (body or {}).get("model"))
        return response

    def _json(self, method: str, path: str, body: Mapping[str, Any] | None = None,
              **kwargs: Any) -> Any:
        response = self._request(method, path, body, **kwargs)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ProtocolError(f"Ollama sent a reply that is not JSON on {path}: "
                                f"{response.text[:80]!r}") from None

    def _lines(self, path: str, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The NDJSON records of a streamed reply, each checked for an error."""
        response = self._request("POST", path, body, stream=True)
        try:
            for line in response.iter_lines():
                if line.strip():
                    yield _parse_line(line)
        except requests.exceptions.RequestException as exc:  # the server went away mid-reply
            if isinstance(exc, requests.exceptions.Timeout | requests.exceptions.ReadTimeout):
                raise RequestTimeoutError(self.host, self.timeout) from None
            raise ProtocolError("the connection to Ollama broke mid-reply — "
                                "the server may have crashed; retry") from None
        finally:
            response.close()

    # -- embeddings ----------------------------------------------------------------

    def embed(
        self, model: str, texts: Sequence[str], *, truncate: bool = True,
        dimensions: int | None = None, keep_alive: str | float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """Embed ``texts`` in one ``/api/embed`` request (legacy endpoint as a fallback)."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self._legacy_embed:
            return self._embed_legacy(model, texts, keep_alive, options)
        body = _drop_none({"model": model, "input": list(texts), "truncate": truncate,
                           "dimensions": dimensions, "keep_alive": keep_alive,
                           "options": options})
        try:
            reply = self._retrying(lambda: self._json("POST", "/api/embed", body))
        except _NoRoute:
            self._legacy_embed = True
            return self._embed_legacy(model, texts, keep_alive, options)
        vectors = reply.get("embeddings") if isinstance(reply, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(texts):
            raise ProtocolError("Ollama's /api/embed reply has no 'embeddings' for every input")
        return np.asarray(vectors, dtype=np.float32)

    def _embed_legacy(self, model: str, texts: Sequence[str], keep_alive: Any,
                      options: Any) -> np.ndarray:
        """Old servers: one ``/api/embeddings`` call per text; vectors come unnormalized."""
        rows = []
        for text in texts:
            body = _drop_none({"model": model, "prompt": text, "keep_alive": keep_alive,
                               "options": options})
            reply = self._retrying(lambda b=body: self._json("POST", "/api/embeddings", b))
            if "embedding" not in reply:
                raise ProtocolError("Ollama's /api/embeddings reply has no 'embedding'")
            rows.append(reply["embedding"])
        return normalize_rows(np.asarray(rows, dtype=np.float32))

    def _retrying(self, call: Any) -> Any:
        """Retry an idempotent call on dropped connections, timeouts, 500 and 503."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except (ConnectError, RequestTimeoutError, ServerError, ProtocolError):
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    # -- generation ----------------------------------------------------------------

    def generate(
        self, model: str, prompt: str, *, system: str | None = None,
        options: Mapping[str, Any] | None = None, raw: bool = False,
        keep_alive: str | float | None = None, format: str | Mapping[str, Any] | None = None,
        images: Sequence[str] | None = None, template: str | None = None,
        context: Sequence[int] | None = None, suffix: str | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream ``/api/generate``."""
        body = _generate_body(locals())
        return self._chunks("/api/generate", {**body, "stream": True}, "response")

    def generate_full(self, model: str, prompt: str, **kwargs: Any) -> Reply:
        """``/api/generate`` with ``stream: false``: one reply object."""
        body = _generate_body({"model": model, "prompt": prompt, **kwargs})
        return self._whole("/api/generate", body, lambda r: r.get("response", ""))

    def chat(
        self, model: str, messages: Sequence[Message], *,
        options: Mapping[str, Any] | None = None, keep_alive: str | float | None = None,
        format: str | Mapping[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream ``/api/chat``."""
        body = _drop_none({"model": model, "messages": [dict(m) for m in messages],
                           "options": options, "keep_alive": keep_alive, "format": format,
                           "tools": tools})
        return self._chunks("/api/chat", {**body, "stream": True}, "message")

    def chat_full(self, model: str, messages: Sequence[Message], **kwargs: Any) -> Reply:
        """``/api/chat`` with ``stream: false``: one reply object."""
        body = _drop_none({"model": model, "messages": [dict(m) for m in messages], **kwargs})
        return self._whole("/api/chat", body, lambda r: (r.get("message") or {}).get("content", ""))

    def _chunks(self, path: str, body: dict[str, Any], field_name: str) -> Iterator[StreamChunk]:
        for record in self._lines(path, body):
            text = record.get("response", "") if field_name == "response" else \
                (record.get("message") or {}).get("content", "")
            if record.get("done"):
                yield StreamChunk(text, True, record.get("done_reason"),
                                  Metrics.from_record(record))
                return
            yield StreamChunk(text)
        raise ProtocolError("the stream ended before the final record — "
                            "the server may have crashed; retry")

    def _whole(self, path: str, body: dict[str, Any], text_of: Any) -> Reply:
        record = self._json("POST", path, {**body, "stream": False})
        if isinstance(record, dict) and record.get("error"):
            raise StreamError(str(record["error"]))
        return collect([StreamChunk(text_of(record), True, record.get("done_reason"),
                                    Metrics.from_record(record))])

    # -- models --------------------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        """Models the server has (``/api/tags``)."""
        return list(self._json("GET", "/api/tags").get("models") or [])

    def has_model(self, model: str) -> bool:
        """Whether the server has ``model`` (a bare name means ``:latest``)."""
        wanted = with_tag(model)
        return any(with_tag(m.get("name") or m.get("model", "")) == wanted
                   for m in self.list_models())

    def show(self, model: str) -> ModelInfo:
        """Details of one model (``/api/show``)."""
        r = self._json("POST", "/api/show", {"model": model})
        return ModelInfo(model, r.get("details") or {}, r.get("capabilities") or [],
                         r.get("model_info") or {})

    def pull(self, model: str) -> Iterator[dict[str, Any]]:
        """Download a model, yielding progress records ``{status, total, completed}``."""
        yield from self._lines("/api/pull", {"model": model, "stream": True})

    def copy(self, source: str, destination: str) -> None:
        """Copy a model under a new name."""
        self._request("POST", "/api/copy", {"source": source, "destination": destination},
                      model=source)

    def delete(self, model: str) -> None:
        """Delete a model from the server."""
        self._request("DELETE", "/api/delete", {"model": model})

    def ps(self) -> list[dict[str, Any]]:
        """Models loaded in memory right now."""
        return list(self._json("GET", "/api/ps").get("models") or [])

    def version(self) -> str:
        """The server's version string."""
        return str(self._json("GET", "/api/version").get("version", ""))

    def is_alive(self, timeout: float = 1.0) -> bool:
        """Whether a server answers ``HEAD /`` within ``timeout`` seconds; never raises."""
        try:
            r = self._session.head(self.host + "/", timeout=(timeout, timeout))
        except requests.exceptions.RequestException:
            return False
        return r.status_code == 200


class _NoRoute(BackendError):
    """The server has no such endpoint (an old Ollama without /api/embed)."""


def _raise_for(response: requests.Response, model: str | None) -> None:
    """Map an HTTP error status to the exception tree (the one place this happens)."""
    status = response.status_code
    try:
        error = str(response.json().get("error", ""))
        is_json = True
    except (ValueError, AttributeError):
        error, is_json = response.text.strip()[:200], False
    if status == 404 and not is_json:
        raise _NoRoute(f"Ollama has no endpoint {response.request.path_url} ({error})")
    if status == 404:
        raise ModelNotFoundError(model or "?")
    if status >= 500:
        raise ServerError(status, error or response.reason)
    raise BadRequestError(status, error or response.reason)


def _parse_line(line: bytes) -> dict[str, Any]:
    """One NDJSON record; an ``error`` field mid-stream becomes :class:`StreamError`."""
    try:
        record = json.loads(line)
    except ValueError:
        raise ProtocolError(f"Ollama sent a line that is not JSON: {line[:80]!r}") from None
    if not isinstance(record, dict):
        raise ProtocolError(f"Ollama sent a line that is not a JSON object: {line[:80]!r}")
    if record.get("error"):
        raise StreamError(str(record["error"]))
    return record


def _generate_body(args: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("model", "prompt", "system", "options", "keep_alive", "format", "images",
            "template", "context", "suffix")
    body = _drop_none({k: args.get(k) for k in keys})
    if args.get("raw"):
        body["raw"] = True
    return body


def _drop_none(body: Mapping[str, Any]) -> dict[str, Any]:
    """Only send fields that are set, as the official client does."""
    return {k: v for k, v in body.items() if v is not None}

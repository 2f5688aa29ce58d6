"""The model backend the served indexes use: ragkit's own, plus what a server needs.

:class:`ServerBackend` implements ragkit's :class:`~ragkit.Backend` protocol, so
``Index.ask_stream`` runs unchanged, and adds three things around it:

* **Pass-through fields.** A client's own system message, the messages after
  its question (tool results), and ``keep_alive``/``format``/``think``/``tools``
  reach the model.  They travel in a :class:`Passthrough` set for the worker
  thread that runs the request (a context variable), because the library's
  calls do not carry them.
* **Upstream records as they are.** For a model on Ollama, the request goes out
  with every field and each NDJSON record is read whole: ``thinking`` and
  ``tool_calls`` are handed to :attr:`Passthrough.on_extra`, and the metrics
  are Ollama's own.
* **Serialized engine calls.** The embedded engine is not thread-safe: its
  embedding calls take one lock and its generations another, so any number of
  clients queue instead of crashing it (a search can still embed its query
  while another client's answer is generated).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from ..backends.base import Metrics, StreamChunk
from ..backends.chooser import BackendChooser
from ..errors import (
    BadRequestError,
    ConnectError,
    ModelNotFoundError,
    ProtocolError,
    RequestTimeoutError,
    ServerError,
    StreamError,
)

__all__ = ["Passthrough", "ServerBackend", "passthrough"]


@dataclass
class Passthrough:
    """What a request adds to the library's model call, and how to stop it."""

    #: The client's own system message, kept ahead of ragkit's rules and passages.
    system: str | None = None
    #: Messages after the client's last user message (a tool call and its result).
    tail: list[dict[str, Any]] = field(default_factory=list)
    #: keep_alive, format, think, tools: sent to Ollama exactly as the client gave them.
    fields: dict[str, Any] = field(default_factory=dict)
    #: Called with the non-text parts of a record (``thinking``, ``tool_calls``).
    on_extra: Callable[[dict[str, Any]], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _streams: list[Any] = field(default_factory=list)

    def cancel(self) -> None:
        """Stop the request: the upstream connection is closed, so Ollama stops generating."""
        self.cancelled.set()
        for close in list(self._closers):
            with contextlib.suppress(Exception):
                close()

    def finish(self) -> None:
        """Close every stream this request opened (called by the thread that iterated them)."""
        for stream in self._streams:
            with contextlib.suppress(Exception):
                stream.close()
        self._streams.clear()


_CURRENT: ContextVar[Passthrough | None] = ContextVar("ragkit_passthrough", default=None)


@contextlib.contextmanager
def passthrough(extra: Passthrough) -> Iterator[Passthrough]:
    """Make ``extra`` apply to the model calls made in this thread until the block ends."""
    token = _CURRENT.set(extra)
    try:
        yield extra
    finally:
        extra.finish()
        _CURRENT.reset(token)


def _current() -> Passthrough:
    return _CURRENT.get() or Passthrough()


class ServerBackend:
    """A :class:`~ragkit.Backend` over ragkit's chooser, for many clients at once."""

    name = "server"

    def __init__(self, chooser: BackendChooser, timeout: float) -> None:
        self.chooser = chooser
        self.host = chooser.host
        self._http = httpx.Client(base_url=self.host, timeout=httpx.Timeout(timeout, connect=3.0))
        self._embed_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    def describe(self) -> str:
        """One line naming the backends behind this one."""
        return f"ragkit serve over {self.chooser.choice} (Ollama at {self.host})"

    def has_model(self, model: str) -> bool:
        """Whether some backend serves ``model`` right now."""
        try:
            return self.chooser.for_model(model).has_model(model)
        except Exception:  # no backend at all: as good as not having it
            return False

    def close(self) -> None:
        """Release the HTTP connections to Ollama."""
        self._http.close()

    # -- the Backend protocol ------------------------------------------------------

    def special_tokens(self, model: str) -> Sequence[str]:
        """The chat template's special tokens, which prompts defuse in document text."""
        backend = self.chooser.for_model(model)
        if backend.name != "embedded":
            return backend.special_tokens(model)
        with self._generate_lock:  # reading them may load the generator
            return backend.special_tokens(model)

    def embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; the embedded engine is entered by one thread at a time."""
        backend = self.chooser.for_model(model)
        if backend.name != "embedded":
            return backend.embed(model, texts)
        with self._embed_lock:
            return backend.embed(model, texts)

    def chat(self, model: str, messages: Sequence[Mapping[str, Any]], *,
             options: Mapping[str, Any] | None = None, keep_alive: str | float | None = None,
             format: str | Mapping[str, Any] | None = None) -> Iterator[StreamChunk]:
        """Stream the next message, with the request's system message and tail added."""
        extra = _current()
        sent = _with_client_messages([dict(m) for m in messages], extra)
        body = _body(**{"model": model, "messages": sent, "options": options,
                        "keep_alive": keep_alive, "format": format, **extra.fields})
        return self._track(extra, self._stream("/api/chat", body, extra))

    def generate(self, model: str, prompt: str, *, system: str | None = None,
                 options: Mapping[str, Any] | None = None, raw: bool = False,
                 keep_alive: str | float | None = None,
                 format: str | Mapping[str, Any] | None = None,
                 images: Sequence[str] | None = None) -> Iterator[StreamChunk]:
        """Stream a completion of ``prompt``, with the client's system message if any."""
        extra = _current()
        fields = {k: v for k, v in extra.fields.items() if k != "tools"}  # generate has none
        body = _body(**{"model": model, "prompt": prompt, "system": system or extra.system,
                        "options": options, "raw": raw or None, "keep_alive": keep_alive,
                        "format": format, "images": images, **fields})
        return self._track(extra, self._stream("/api/generate", body, extra))

    # -- streams -------------------------------------------------------------------

    @staticmethod
    def _track(extra: Passthrough, stream: Iterator[StreamChunk]) -> Iterator[StreamChunk]:
        extra._streams.append(stream)
        return stream

    def _stream(self, path: str, body: dict[str, Any],
                extra: Passthrough) -> Iterator[StreamChunk]:
        backend = self.chooser.for_model(str(body["model"]))
        if backend.name == "ollama":
            yield from self._ollama(path, body, extra)
        else:
            yield from self._engine(backend, path, body, extra)

    def _engine(self, backend: Any, path: str, body: dict[str, Any],
                extra: Passthrough) -> Iterator[StreamChunk]:
        """The embedded engine, holding the generation lock for the whole reply."""
        model = str(body["model"])
        if body.get("tools"):
            raise BadRequestError(400, f"{model} does not support tools")
        if body.get("think"):
            raise BadRequestError(400, f'"{model}" does not support thinking')
        common = {"options": body.get("options"), "format": body.get("format"),
                  "keep_alive": body.get("keep_alive")}
        with self._generate_lock:
            if path == "/api/chat":
                chunks = backend.chat(model, body["messages"], **common)
            else:
                chunks = backend.generate(model, body["prompt"], system=body.get("system"),
                                          raw=bool(body.get("raw")), **common)
            with contextlib.closing(chunks):
                for chunk in chunks:
                    if extra.cancelled.is_set():
                        return
                    yield chunk

    def _ollama(self, path: str, body: dict[str, Any],
                extra: Passthrough) -> Iterator[StreamChunk]:
        """Stream from Ollama, reading each record whole; a cancel closes the connection."""
        try:
            request = self._http.build_request("POST", path, json={**body, "stream": True})
            response = self._http.send(request, stream=True)
        except httpx.TimeoutException:
            raise RequestTimeoutError(self.host, self._http.timeout.read or 0) from None
        except httpx.HTTPError as exc:
            raise ConnectError(self.host, str(exc)) from None
        extra._closers.append(response.close)
        try:
            if response.status_code >= 400:
                raise _status_error(response, str(body["model"]))
            yield from _records(response, path, extra)
        except httpx.HTTPError as exc:
            if extra.cancelled.is_set():
                return
            raise ProtocolError(f"Ollama at {self.host} broke off its reply: {exc}") from None
        finally:
            response.close()


def _records(response: httpx.Response, path: str, extra: Passthrough) -> Iterator[StreamChunk]:
    """StreamChunks of an NDJSON reply; non-text fields go to ``extra.on_extra``."""
    key = "message" if path == "/api/chat" else None
    for line in response.iter_lines():
        if extra.cancelled.is_set():
            return
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ProtocolError(f"Ollama sent a line that is not JSON: {line[:80]!r}") from None
        if not isinstance(record, dict):
            raise ProtocolError(f"Ollama sent a line that is not a JSON object: {line[:80]!r}")
        if record.get("error"):
            raise StreamError(str(record["error"]))
        part = record.get(key) if key else record
        part = part if isinstance(part, dict) else {}
        text = str(part.get("content" if key else "response") or "")
        others = {k: v for k, v in part.items()
                  if k in ("thinking", "tool_calls", "images") and v}
        if others and extra.on_extra:
            extra.on_extra(others)
        if record.get("done"):
            yield StreamChunk(text, True, record.get("done_reason"), Metrics.from_record(record))
            return
        yield StreamChunk(text)
    raise ProtocolError("Ollama's stream ended before its final record — it may have crashed")


def _status_error(response: httpx.Response, model: str) -> Exception:
    """The ragkit error for an Ollama reply with an error status."""
    response.read()
    try:
        text = str(json.loads(response.content).get("error"))
    except (ValueError, AttributeError):
        text = response.text.strip()[:200] or response.reason_phrase
    if response.status_code == 404:
        return ModelNotFoundError(model, f"model '{model}' not found — run `ollama pull {model}`")
    if response.status_code < 500:
        return BadRequestError(response.status_code, text)
    return ServerError(response.status_code, text)


def _with_client_messages(messages: list[dict[str, Any]],
                          extra: Passthrough) -> list[dict[str, Any]]:
    """ragkit's messages with the client's system message first and its tail last."""
    if extra.system:
        if messages and messages[0].get("role") == "system":
            content = f"{extra.system}\n\n{messages[0].get('content') or ''}"
            messages[0] = {**messages[0], "content": content}
        else:
            messages.insert(0, {"role": "system", "content": extra.system})
    return messages + list(extra.tail)


def _body(**fields: Any) -> dict[str, Any]:
    """A request body without the fields that are not set."""
    return {k: v for k, v in fields.items() if v is not None}

"""A client of Ollama's REST API over ``requests``, implementing :class:`~ragkit.backend.Backend`.

Three facts of the wire protocol shape this module:

* Streamed replies are NDJSON, and an error in the middle of a stream keeps
  status 200: every line is checked for ``error`` (:func:`_record`).
* A 404 with a JSON ``{"error": ...}`` body means "no such model"; a plain-text
  ``404 page not found`` comes from the router and means "no such endpoint".
  Only the latter sends embeddings to the legacy ``/api/embeddings``.
* Only embedding is retried, because it is idempotent; re-running a generation
  would silently change what the user already saw stream by.

Every failed request becomes a ragkit error in one place,
:meth:`OllamaClient._error`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urljoin, urlsplit

import numpy as np
import requests
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from . import transport
from .backend import Message, Metrics, Reply, StreamChunk, check_vectors
from .errors import (
    BackendError,
    BadRequestError,
    ConnectError,
    ModelNotFoundError,
    ProtocolError,
    RequestTimeoutError,
    ServerError,
    StreamError,
    UsageError,
    VectorError,
)
from .host import parse_host, with_tag
from .transport import Deadline, Expired, TooLarge, lines, read_body, watching

__all__ = ["ModelInfo", "OllamaClient"]

#: Statuses worth retrying an idempotent request on: runner failure, queue full.
_RETRY_STATUSES = frozenset({500, 503})

_Failure = requests.RequestException | requests.Response
_MAX_REDIRECTS = 5


class _Cap(NamedTuple):
    """The most bytes ragkit reads of one reply, and why that is enough."""

    size: int
    reason: str


# Replies are capped so a broken server cannot make ragkit hold gigabytes.  An
# embedding reply may take MAX_DIM numbers of up to _NUMBER_BYTES characters
# per text (Ollama writes a float32 in at most 15); any other reply, and one
# stream line (a final record with the `context` token ids of a 1M-token
# window stays under 10 MB), 16 MB; a whole stream 256 MB.
MAX_DIM = 8192
_NUMBER_BYTES = 24
_REPLY_CAP = _Cap(16_000_000, "ragkit's cap for a reply")
_LINE_CAP = _Cap(16_000_000, "ragkit's cap for one record")
_STREAM_CAP = _Cap(256_000_000, "ragkit's cap for a whole stream")
#: A streamed generation must end within this many timeouts (each record within one).
_STREAM_FACTOR = 10
_ERROR_BODY = 64 * 1024  # the start of an error reply holds its message
_T = TypeVar("_T")
_Format = str | Mapping[str, Any] | None


@dataclass(frozen=True)
class ModelInfo:
    """What ``/api/show`` says about a model."""

    name: str
    details: Mapping[str, Any] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    model_info: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, name: str, record: Mapping[str, Any]) -> ModelInfo:
        """Build from an ``/api/show`` reply (fields missing on old servers default to empty)."""
        return cls(name, dict(record.get("details") or {}),
                   tuple(record.get("capabilities") or ()), dict(record.get("model_info") or {}))

    @property
    def embedding_length(self) -> int | None:
        """Vector size (``<arch>.embedding_length``), None if the server does not say."""
        return self._arch_int("embedding_length")

    @property
    def context_length(self) -> int | None:
        """Trained context window (``<arch>.context_length``), None if the server does not say."""
        return self._arch_int("context_length")

    def _arch_int(self, key: str) -> int | None:
        # Keys are namespaced by architecture: bert.embedding_length, llama.context_length, ...
        arch = self.model_info.get("general.architecture")
        value = self.model_info.get(f"{arch}.{key}") if arch else None
        return int(value) if isinstance(value, (int, float)) else None


class OllamaClient:
    """Talks to one Ollama server; implements :class:`~ragkit.backend.Backend`."""

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
        self._session = session if session is not None else transport.session()
        self._legacy_embed = False  # set once the server turns out to lack /api/embed

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
            except _NoRoute:
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
            record = self._json_once("POST", path, body, _embed_limit(count))
            rows = record.get("embeddings") if path == "/api/embed" else [record.get("embedding")]
            try:
                return _matrix(rows, count, path, dimensions)
            except VectorError as exc:
                raise _Transient(exc) from None

        return self._retrying(once, True)

    # -- generation ----------------------------------------------------------------

    def generate(
        self, model: str, prompt: str, *, system: str | None = None,
        options: Mapping[str, Any] | None = None, raw: bool = False,
        keep_alive: str | float | None = None, format: _Format = None,
        images: Sequence[str] | None = None, template: str | None = None,
        context: Sequence[int] | None = None, suffix: str | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream a completion from ``/api/generate``: text deltas, then a final chunk."""
        body = _generate_body(model, prompt, system=system, options=options, raw=raw,
                              keep_alive=keep_alive, format=format, images=images,
                              template=template, context=context, suffix=suffix)
        return self._chunks("/api/generate", body, _generate_text)

    def generate_full(
        self, model: str, prompt: str, *, system: str | None = None,
        options: Mapping[str, Any] | None = None, raw: bool = False,
        keep_alive: str | float | None = None, format: _Format = None,
        images: Sequence[str] | None = None, template: str | None = None,
        context: Sequence[int] | None = None, suffix: str | None = None,
    ) -> Reply:
        """The whole completion from ``/api/generate`` with ``stream: false``."""
        body = _generate_body(model, prompt, system=system, options=options, raw=raw,
                              keep_alive=keep_alive, format=format, images=images,
                              template=template, context=context, suffix=suffix)
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
        records = self._records(path, {**body, "stream": True},
                                total=_STREAM_FACTOR * self.timeout)
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

    def list_models(self) -> list[dict[str, Any]]:
        """The models the server has (``GET /api/tags``)."""
        return list(self._json("GET", "/api/tags").get("models") or [])

    def has_model(self, model: str) -> bool:
        """Whether the server has ``model``; a bare name means its ``:latest`` tag."""
        wanted = with_tag(model)
        return any(with_tag(m.get("name") or m.get("model") or "") == wanted
                   for m in self.list_models())

    def show(self, model: str) -> ModelInfo:
        """Details, capabilities and architecture facts of one model (``/api/show``)."""
        return ModelInfo.from_record(model, self._json("POST", "/api/show", {"model": model}))

    def pull(self, model: str) -> Iterator[dict[str, Any]]:
        """Download ``model``, yielding progress records ``{status, digest, total, completed}``."""
        status = None
        records = self._records("/api/pull", {"model": model, "stream": True})
        with contextlib.closing(records):
            try:
                for record in records:
                    status = record.get("status")
                    yield record
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

    def ps(self) -> list[dict[str, Any]]:
        """The models loaded in memory right now (``/api/ps``)."""
        return list(self._json("GET", "/api/ps").get("models") or [])

    def version(self) -> str:
        """The server's version string (``/api/version``)."""
        return str(self._json("GET", "/api/version").get("version", ""))

    def is_alive(self, timeout: float = 1.0) -> bool:
        """Whether the server answers ``HEAD /`` within ``timeout`` seconds; never raises."""
        deadline = Deadline(timeout)
        try:
            with watching(deadline), self._session.head(
                    self.host + "/", timeout=(timeout, timeout), allow_redirects=False) as reply:
                return reply.status_code == 200
        except Exception:  # a probe answers yes or no, whatever went wrong
            return False
        finally:
            deadline.close()

    # -- transport -----------------------------------------------------------------

    def _json(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
              retry: bool = False) -> dict[str, Any]:
        """One request whose reply is a JSON object (or empty, as copy and delete answer).

        With ``retry``, a garbled reply is asked for again too, like a failed request.
        """
        return self._retrying(lambda: self._json_once(method, path, body, _REPLY_CAP), retry)

    def _json_once(self, method: str, path: str, body: Mapping[str, Any] | None,
                   cap: _Cap) -> dict[str, Any]:
        """One try of :meth:`_json`, its reply read whole within the timeout and ``cap``."""
        deadline = Deadline(self.timeout)
        try:
            response = self._send(method, path, body, deadline)
            with response, self._reading(path, body, deadline, cap):
                content = read_body(response, cap.size, deadline)
        finally:
            deadline.close()
        try:
            return _record(content, path, "reply") if content.strip() else {}
        except ProtocolError as exc:
            raise _Transient(exc) from None

    def _records(self, path: str, body: Mapping[str, Any], *, total: float | None = None
                 ) -> Generator[dict[str, Any], None, None]:
        """The NDJSON records of a streamed reply, each checked for an error.

        The first record is due within the timeout, and each next one within the
        timeout of the one before (while the caller handles a record, the clock
        stops); ``total`` seconds, if given, cap the whole stream.
        """
        deadline = Deadline(self.timeout, total=total)
        try:
            response = self._retrying(lambda: self._send("POST", path, body, deadline), False)
            with response, self._reading(path, body, deadline, _LINE_CAP):
                for line in lines(response, deadline, line_limit=_LINE_CAP.size,
                                  total_limit=_STREAM_CAP.size):
                    if line.strip():
                        record = _record(line, path, "line")
                        deadline.suspend()
                        yield record
                        deadline.restart(self.timeout)
        except _Transient as failed:  # a stream is never retried
            raise failed.error from None
        finally:
            deadline.close()

    def _retrying(self, once: Callable[[], _T], retry: bool) -> _T:
        """``once()``, tried again with backoff on a :class:`_Transient` failure if ``retry``."""
        attempts = 1 + self.retries if retry else 1
        for attempt in range(attempts):
            try:
                return once()
            except _Transient as failed:
                if attempt + 1 == attempts:
                    raise failed.error from None
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None,
              deadline: Deadline) -> requests.Response:
        """Send one request, following redirects only within the same server.

        A failure raises its mapped error, wrapped in :class:`_Transient` when
        trying again may help.
        """
        url = self.host + path
        for _ in range(_MAX_REDIRECTS + 1):
            response = self._request(method, url, path, body, deadline)
            if not response.is_redirect:
                return response
            url = self._redirect(response, url, path)
        raise ProtocolError(
            f"Ollama at {self.host} redirected {path} more than {_MAX_REDIRECTS} times, in a "
            "loop — check OLLAMA_HOST (or --host) and any proxy in front of Ollama")

    def _request(self, method: str, url: str, path: str, body: Mapping[str, Any] | None,
                 deadline: Deadline) -> requests.Response:
        """One HTTP exchange up to the reply's headers; an error status raises."""
        try:
            with watching(deadline):
                response = self._session.request(
                    method, url, json=body, stream=True, allow_redirects=False,
                    timeout=(self.connect_timeout, self.timeout))
        except requests.RequestException as exc:
            raise self._failed(exc, path, body, deadline) from None
        if response.status_code < 400:
            return response
        with response:
            raise self._failed(response, path, body, deadline)

    def _redirect(self, response: requests.Response, url: str, path: str) -> str:
        """Where a redirect leads; one to another server is refused, so no text goes there."""
        with response:
            target = urljoin(url, response.headers.get("Location", ""))
        if _origin(target) != _origin(self.host):
            raise ProtocolError(
                f"Ollama at {self.host} redirected {path} to {_shown(target)}, another server "
                "— ragkit does not follow it, so your text was not sent there; if that is your "
                f"Ollama, set OLLAMA_HOST (or --host) to {_origin(target)}")
        return target

    @contextlib.contextmanager
    def _reading(self, path: str, body: Mapping[str, Any] | None, deadline: Deadline,
                 cap: _Cap) -> Iterator[None]:
        """Map what can go wrong while a reply's body is read."""
        try:
            yield
        except (requests.RequestException, Expired) as exc:
            raise self._failed(exc, path, body, deadline) from None
        except TooLarge as exc:
            raise _too_large(path, exc.what, cap) from None

    def _failed(self, failure: _Failure | Expired, path: str, body: Mapping[str, Any] | None,
                deadline: Deadline) -> Exception:
        """The error for a failed request, as :class:`_Transient` if trying again may help."""
        if deadline.expired:  # the watchdog's shutdown looks like a dropped connection
            return _Transient(self._timeout(deadline.expired))
        if isinstance(failure, Expired):
            return _Transient(self._timeout(failure.kind))
        error = self._error(failure, path, body)
        return _Transient(error) if _transient(failure) else error

    def _timeout(self, kind: str) -> RequestTimeoutError:
        """The timeout error for the limit that ran out (see :class:`.transport.Deadline`)."""
        limit = self.timeout
        what = None
        if kind == "pause":
            what = (f"paused for over {limit:g} s in the middle of its reply — the server may "
                    "be overloaded")
        elif kind == "total":
            what = (f"did not finish its reply within {_STREAM_FACTOR * limit:g} s "
                    f"({_STREAM_FACTOR} × the timeout) — the model may be rambling (cap it "
                    "with -o num_predict=N)")
        return RequestTimeoutError(self.host, limit, what)

    def _error(self, failure: _Failure, path: str,
               body: Mapping[str, Any] | None) -> BackendError:
        """Map a failed request to the error tree: the one place HTTP failures are translated."""
        if isinstance(failure, requests.Response):
            status = failure.status_code
            error, is_json = _error_text(failure)
            model = (body or {}).get("model") or (body or {}).get("source")
            if status == 404 and not is_json:
                return _NoRoute(status, f"{path} does not exist on this server ({error})")
            if status == 404 and model:
                return ModelNotFoundError(str(model))
            return BadRequestError(status, error) if status < 500 else ServerError(status, error)
        if isinstance(failure, requests.ConnectTimeout):
            return RequestTimeoutError(self.host, self.connect_timeout)
        if isinstance(failure, requests.Timeout) or _caused_by(failure, ReadTimeoutError):
            return RequestTimeoutError(self.host, self.timeout)  # before or during the reply
        if isinstance(failure, requests.exceptions.ChunkedEncodingError) or (
                isinstance(failure, requests.ConnectionError)
                and not _caused_by(failure, NewConnectionError)):
            # The server took the request, then hung up: it is there, but it failed.
            return ProtocolError(f"Ollama at {self.host} closed the connection without a complete "
                                 f"reply to {path} — the server may have crashed; retry")
        return ConnectError(self.host, str(failure))


class _Transient(Exception):
    """A failure that trying the same idempotent request again may cure; ``error`` is its
    mapped error, raised once the tries run out (:meth:`OllamaClient._retrying`)."""

    def __init__(self, error: BackendError) -> None:
        super().__init__(str(error))
        self.error = error


class _NoRoute(BadRequestError):
    """A 404 from the router, not from a handler: the server lacks the endpoint."""

    def advice(self) -> str:
        """An endpoint is missing: the wrong server, or an old Ollama."""
        return "is OLLAMA_HOST an Ollama server, and a recent one?"


@contextlib.contextmanager
def _absent(model: str, purpose: str) -> Iterator[None]:
    """A missing model, where pulling it is not the advice (copy, delete)."""
    try:
        yield
    except ModelNotFoundError:
        raise ModelNotFoundError(model, f"the server has no model '{model}' {purpose} — "
                                        "`ragkit models list` shows what it has") from None


def _transient(failure: _Failure) -> bool:
    """Whether trying the same idempotent request again may succeed."""
    if isinstance(failure, requests.Response):
        return failure.status_code in _RETRY_STATUSES
    return isinstance(failure, (requests.ConnectionError, requests.Timeout,
                                requests.exceptions.ChunkedEncodingError))


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether urllib3's ``kind`` is what ``requests`` wrapped (directly or via MaxRetryError)."""
    inner = exc.args[0] if exc.args else None
    return isinstance(inner, kind) or isinstance(getattr(inner, "reason", None), kind)


def _error_text(response: requests.Response) -> tuple[str, bool]:
    """The server's own error text, and whether it came as Ollama's JSON ``{"error": ...}``."""
    try:  # the start of the body is enough, whatever its size
        content = next(response.iter_content(_ERROR_BODY), b"")
    except (requests.RequestException, Expired):
        content = b""
    try:
        payload = json.loads(content)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        return str(payload["error"]), True
    text = content.decode("utf-8", "replace").strip()[:200]
    return text or response.reason or "no reason given", False


def _too_large(path: str, what: str, cap: _Cap) -> ProtocolError:
    """The error for a reply, stream line or whole stream over its cap."""
    cap = {"line": _LINE_CAP, "stream": _STREAM_CAP}.get(what, cap)
    subject = {"line": f"a line of Ollama's stream on {path}",
               "stream": f"Ollama's stream on {path}"}.get(what, f"Ollama's reply to {path}")
    return ProtocolError(
        f"{subject} is larger than {_size(cap.size)}, {cap.reason} — the server "
        "misbehaves; check that OLLAMA_HOST (or --host) is an Ollama server, and its log")


def _size(n: int) -> str:
    """A byte count for a message: ``262 kB``, ``16 MB``."""
    return f"{n / 1e6:.3g} MB" if n >= 1e6 else f"{n / 1e3:.3g} kB"


def _embed_limit(count: int) -> _Cap:
    """The cap on a reply of ``count`` embedding vectors."""
    vectors = f"{count} vectors" if count > 1 else "one vector"
    return _Cap(64 * 1024 + count * MAX_DIM * _NUMBER_BYTES,
                f"the most {vectors} of up to {MAX_DIM} numbers can take")


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, with the scheme's default port filled in."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a garbled port in a Location header: no server we know
        port = None
    port = port or {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _shown(url: str) -> str:
    """``url`` without credentials or query, for a message."""
    parts = urlsplit(url)
    return f"{_origin(url)}{parts.path}"


def _record(data: bytes, path: str, what: str) -> dict[str, Any]:
    """One JSON object (a whole reply or a stream line); an ``error`` field raises StreamError."""
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise ProtocolError(f"Ollama sent a {what} that is not a JSON object on {path}: "
                            f"{data[:80].decode('utf-8', 'replace')!r}")
    if record.get("error"):
        raise StreamError(str(record["error"]))
    return record


def _matrix(rows: Any, count: int, path: str, dimensions: int | None) -> np.ndarray:
    """Check the vectors a reply carries and return them as normalized float32 rows."""
    if dimensions and isinstance(rows, list):  # the legacy endpoint cannot truncate; do it here
        rows = [row[:dimensions] if isinstance(row, list) else row for row in rows]
    # /api/embed already normalizes, but the Backend contract must not rest on that.
    return check_vectors(rows, count, width=dimensions, source=f"Ollama's {path} reply",
                         advice="the embedding model or the server is broken; see the "
                                "`ollama serve` log, or pull the model again")


def _generate_text(record: Mapping[str, Any]) -> str:
    return str(record.get("response") or "")


def _chat_text(record: Mapping[str, Any]) -> str:
    message = record.get("message")
    return str(message.get("content") or "") if isinstance(message, Mapping) else ""


def _generate_body(model: str, prompt: str, *, raw: bool, **fields: Any) -> dict[str, Any]:
    """An ``/api/generate`` request with only the fields that are set."""
    return _only_set(model=model, prompt=prompt, raw=True if raw else None, **fields)


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

"""One exchange with an Ollama server: sent, read within its deadline and cap, failures mapped.

Facts of the wire protocol this module handles:

* Streamed replies are NDJSON, and an error in the middle of a stream keeps
  status 200: every line is checked for ``error`` (:func:`_record`).
* A 404 with a JSON ``{"error": ...}`` body means "no such model"; a plain-text
  ``404 page not found`` comes from the router and means "no such endpoint"
  (:class:`NoRoute`, which sends embeddings to the legacy ``/api/embeddings``).
* Ollama never redirects.  A redirect within the same server (a proxy moving
  a path) is followed with the same request; one to another host or port is
  refused, so document text never goes where the user did not point ragkit.

Replies are capped (see :class:`Cap`) and must be complete within the timeout
(:class:`~ragkit.backends.transport.Deadline`): a broken server can neither fill the
memory nor hold ragkit forever.  Every failed request becomes a ragkit error in
one place, :meth:`OllamaHTTP._error`; failures worth another try come wrapped
in :class:`Transient`, and the client decides whether to try again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator, Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from ..errors import (
    BackendError,
    BadRequestError,
    ConnectError,
    ModelNotFoundError,
    ProtocolError,
    RequestTimeoutError,
    ServerError,
    StreamError,
)
from .transport import Deadline, Expired, TooLarge, lines, read_body, watching

__all__ = ["MAX_DIM", "REPLY_CAP", "STREAM_FACTOR", "Cap", "NoRoute", "OllamaHTTP", "Transient",
           "embed_cap"]

#: Statuses worth retrying an idempotent request on: runner failure, queue full.
_RETRY_STATUSES = frozenset({500, 503})
_MAX_REDIRECTS = 5
_Failure = requests.RequestException | requests.Response


class Cap(NamedTuple):
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
REPLY_CAP = Cap(16_000_000, "ragkit's cap for a reply")
_LINE_CAP = Cap(16_000_000, "ragkit's cap for one record")
_STREAM_CAP = Cap(256_000_000, "ragkit's cap for a whole stream")
#: A streamed generation must end within this many timeouts (each record within one).
STREAM_FACTOR = 10
_ERROR_BODY = 64 * 1024  # the start of an error reply holds its message


class OllamaHTTP:
    """Requests to one Ollama server, each read whole (or as a stream) within its limits."""

    def __init__(self, host: str, timeout: float, connect_timeout: float,
                 session: requests.Session) -> None:
        self.host, self.timeout, self.connect_timeout = host, timeout, connect_timeout
        self.session = session

    def alive(self, timeout: float) -> bool:
        """Whether the server answers ``HEAD /`` with 200 within ``timeout``; never raises."""
        deadline = Deadline(timeout)
        try:
            with watching(deadline), self.session.head(
                    self.host + "/", timeout=(timeout, timeout), allow_redirects=False) as reply:
                return reply.status_code == 200
        except Exception:  # a probe answers yes or no, whatever went wrong
            return False
        finally:
            deadline.close()

    def json(self, method: str, path: str, body: Mapping[str, Any] | None,
             cap: Cap = REPLY_CAP) -> dict[str, Any]:
        """A reply that is one JSON object (or empty), read whole within the timeout and ``cap``.

        A garbled reply raises :class:`Transient`: asking again may cure it.
        """
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
            raise Transient(exc) from None

    def records(self, path: str, body: Mapping[str, Any], *, total: float | None = None
                ) -> Generator[dict[str, Any], None, None]:
        """The NDJSON records of a streamed reply, each checked for an error (never retried).

        The first record is due within the timeout, and each next one within the
        timeout of the one before (while the caller handles a record, the clock
        stops); ``total`` seconds, if given, cap the whole stream.
        """
        deadline = Deadline(self.timeout, total=total)
        try:
            response = self._send("POST", path, body, deadline)
            with response, self._reading(path, body, deadline):
                for line in lines(response, deadline, line_limit=_LINE_CAP.size,
                                  total_limit=_STREAM_CAP.size):
                    if line.strip():
                        record = _record(line, path, "line")
                        deadline.suspend()
                        yield record
                        deadline.restart(self.timeout)
        except Transient as failed:  # a stream is never retried
            raise failed.error from None
        finally:
            deadline.close()

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None,
              deadline: Deadline) -> requests.Response:
        """Send one request, following redirects only within the same server.

        A failure raises its mapped error, wrapped in :class:`Transient` when
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
                response = self.session.request(
                    method, url, json=body, stream=True, allow_redirects=False,
                    timeout=(self.connect_timeout, self.timeout))
        except requests.RequestException as exc:
            raise self._failed(exc, path, body, deadline) from None
        except Exception:
            if deadline.expired:  # whatever a read cut short by the watchdog raises
                raise self._failed(Expired(deadline.expired), path, body, deadline) from None
            raise
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
                 cap: Cap = REPLY_CAP) -> Iterator[None]:
        """Map what can go wrong while a reply's body is read (``cap``: the reply's own)."""
        try:
            yield
        except (requests.RequestException, Expired) as exc:
            raise self._failed(exc, path, body, deadline) from None
        except TooLarge as exc:
            raise _too_large(path, exc.what, cap) from None
        except Exception:
            if deadline.expired:  # whatever a read cut short by the watchdog raises
                raise self._failed(Expired(deadline.expired), path, body, deadline) from None
            raise

    def _failed(self, failure: _Failure | Expired, path: str, body: Mapping[str, Any] | None,
                deadline: Deadline) -> Exception:
        """The error for a failed request, as :class:`Transient` if trying again may help."""
        if deadline.expired:  # the watchdog's shutdown looks like a dropped connection
            return Transient(self._timeout(deadline.expired))
        if isinstance(failure, Expired):
            return Transient(self._timeout(failure.kind))
        if _read_timeout(failure):  # the socket's own timeout beat the watchdog to it
            return Transient(self._timeout(deadline.running))
        error = self._error(failure, path, body)
        return Transient(error) if _transient(failure) else error

    def _timeout(self, kind: str) -> RequestTimeoutError:
        """The timeout error for the limit that ran out (see ``transport.Deadline``)."""
        limit = self.timeout
        what = None
        if kind == "pause":
            what = (f"paused for over {limit:g} s in the middle of its reply — the server may "
                    "be overloaded")
        elif kind == "total":
            what = (f"did not finish its reply within {STREAM_FACTOR * limit:g} s "
                    f"({STREAM_FACTOR} × the timeout) — the model may be rambling (cap it "
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
                return NoRoute(status, f"{path} does not exist on this server ({error})")
            if status == 404 and model:
                return ModelNotFoundError(str(model))
            return BadRequestError(status, error) if status < 500 else ServerError(status, error)
        if isinstance(failure, requests.ConnectTimeout):
            return RequestTimeoutError(self.host, self.connect_timeout)
        if isinstance(failure, requests.exceptions.ChunkedEncodingError) or (
                isinstance(failure, requests.ConnectionError)
                and not _caused_by(failure, NewConnectionError)):
            # The server took the request, then hung up: it is there, but it failed.
            return ProtocolError(f"Ollama at {self.host} closed the connection without a complete "
                                 f"reply to {path} — the server may have crashed; retry")
        return ConnectError(self.host, str(failure))


class Transient(Exception):
    """A failure that trying the same idempotent request again may cure; ``error`` is its
    mapped error, raised once the tries run out (``OllamaClient._retrying``)."""

    def __init__(self, error: BackendError) -> None:
        super().__init__(str(error))
        self.error = error


class NoRoute(BadRequestError):
    """A 404 from the router, not from a handler: the server lacks the endpoint."""

    def advice(self) -> str:
        """An endpoint is missing: the wrong server, or an old Ollama."""
        return "is OLLAMA_HOST an Ollama server, and a recent one?"


def _transient(failure: _Failure) -> bool:
    """Whether trying the same idempotent request again may succeed."""
    if isinstance(failure, requests.Response):
        return failure.status_code in _RETRY_STATUSES
    return isinstance(failure, (requests.ConnectionError, requests.Timeout,
                                requests.exceptions.ChunkedEncodingError))


def _read_timeout(failure: _Failure) -> bool:
    """Whether the socket's read timeout ended the request (not the connection attempt)."""
    if isinstance(failure, requests.ConnectTimeout) or not isinstance(failure, Exception):
        return False
    return isinstance(failure, requests.Timeout) or _caused_by(failure, ReadTimeoutError)


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


def _too_large(path: str, what: str, cap: Cap) -> ProtocolError:
    """The error for a ``reply`` over ``cap``, or a stream ``line`` or ``stream`` over its own."""
    cap = {"line": _LINE_CAP, "stream": _STREAM_CAP}.get(what, cap)
    subject = {"line": f"a line of Ollama's stream on {path}",
               "stream": f"Ollama's stream on {path}"}.get(what, f"Ollama's reply to {path}")
    return ProtocolError(
        f"{subject} is larger than {_size(cap.size)}, {cap.reason} — the server "
        "misbehaves; check that OLLAMA_HOST (or --host) is an Ollama server, and its log")


def _size(n: int) -> str:
    """A byte count for a message: ``262 kB``, ``16 MB``."""
    return f"{n / 1e6:.3g} MB" if n >= 1e6 else f"{n / 1e3:.3g} kB"


def embed_cap(count: int) -> Cap:
    """The cap on a reply of ``count`` embedding vectors."""
    vectors = f"{count} vectors" if count > 1 else "one vector"
    return Cap(64 * 1024 + count * MAX_DIM * _NUMBER_BYTES,
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

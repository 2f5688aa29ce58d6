"""Errors as each face of the server spells them.

Every failure becomes an :class:`ApiError` (status, message, and for OpenAI's
shape a code and the offending field) in one place, :func:`api_error`, and is
rendered in the shape of the API the client spoke: Ollama's ``{"error": "..."}``,
OpenAI's ``{"error": {"message", "type", "param", "code"}}``, or the native
``{"error": "...", "field": ...}``.  Caller mistakes are 4xx, never 5xx, because
OpenAI's client retries a 5xx twice (re-running a costly generation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

from ..errors import (
    BackendError,
    ConnectError,
    EmbeddingMismatchError,
    IndexBusyError,
    IndexNotFoundError,
    ModelNotFoundError,
    RagkitError,
    RequestTimeoutError,
    ResponseError,
    StreamError,
    UsageError,
)

__all__ = ["ApiError", "api_error", "error_body", "error_line", "error_response", "face_of"]


@dataclass
class ApiError(Exception):
    """A failure to report to the client: HTTP status, message, and optional details."""

    status: int
    message: str
    #: OpenAI's machine-readable code, e.g. ``model_not_found``.
    code: str | None = None
    #: The request field at fault, when there is one.
    param: str | None = None
    #: False for a 5xx that retrying cannot cure (sent as ``x-should-retry: false``).
    retry: bool = True

    def __str__(self) -> str:
        return self.message


def api_error(exc: BaseException) -> ApiError:
    """Map any exception to the :class:`ApiError` a client should see."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, (ModelNotFoundError, IndexNotFoundError)):
        return ApiError(404, str(exc), "model_not_found", "model")
    if isinstance(exc, UsageError):
        return ApiError(400, str(exc), "invalid_request")
    if isinstance(exc, ResponseError):  # the upstream's own status and words
        return ApiError(exc.status_code, exc.error, retry=exc.status_code == 503)
    if isinstance(exc, ConnectError):
        return ApiError(502, f"cannot reach the upstream Ollama at {exc.host} — start "
                        "`ollama serve`, or point ragkit serve --host at it")
    if isinstance(exc, RequestTimeoutError):
        return ApiError(504, str(exc))
    if isinstance(exc, StreamError):
        return ApiError(502, exc.error)
    if isinstance(exc, BackendError):
        return ApiError(502, str(exc))
    if isinstance(exc, IndexBusyError):
        return ApiError(503, str(exc))
    if isinstance(exc, (EmbeddingMismatchError, RagkitError)):
        return ApiError(500, str(exc), retry=False)
    return ApiError(500, f"internal error: {type(exc).__name__}: {exc} — please report it",
                    retry=False)


def face_of(path: str) -> str:
    """Which API a path belongs to: ``openai``, ``native`` or ``ollama``.

    >>> face_of("/v1/models"), face_of("/indexes/a/search"), face_of("/api/chat")
    ('openai', 'native', 'ollama')
    """
    if path == "/v1" or path.startswith("/v1/"):
        return "openai"
    if path == "/indexes" or path.startswith("/indexes/"):
        return "native"
    return "ollama"


def error_body(error: ApiError, face: str) -> dict[str, Any]:
    """The JSON body of ``error`` in ``face``'s shape."""
    if face == "openai":
        kind = {401: "authentication_error", 404: "not_found_error"}.get(error.status)
        if kind is None:
            kind = "invalid_request_error" if error.status < 500 else "server_error"
        return {"error": {"message": error.message, "type": kind, "param": error.param,
                          "code": error.code}}
    if face == "native" and error.param:
        return {"error": error.message, "field": error.param}
    return {"error": error.message}


def error_response(error: ApiError, face: str) -> Response:
    """A complete error response in ``face``'s shape."""
    headers = {}
    if error.status >= 500 and not error.retry:
        headers["x-should-retry"] = "false"
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(error, face), error.status, headers=headers)


def error_line(error: ApiError, face: str) -> bytes:
    """An error in the middle of a stream: an NDJSON line, or an SSE event for OpenAI."""
    data = json.dumps(error_body(error, face), ensure_ascii=False)
    return f"data: {data}\n\n".encode() if face == "openai" else f"{data}\n".encode()

"""Pass-through: requests for any model that is not ``rag/...`` go to the upstream Ollama.

The request body is forwarded byte for byte and the reply is relayed as it
arrives (``aiter_raw``: no decoding, no re-framing), so streams keep Ollama's
exact NDJSON and the added latency is one local hop.  Three things are added:

* the client's ``Authorization`` header (ragkit's own key) is not sent on;
* an upstream that cannot be reached is a 502 in the face's error shape;
* an upstream that dies mid-stream ends the stream with an error line
  (NDJSON ``{"error"}``, or an SSE error event on ``/v1``), as Ollama itself
  reports mid-stream failures; and a client that hangs up closes the upstream
  connection, which makes Ollama stop generating.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .errors import ApiError, error_line, error_response, face_of

__all__ = ["Upstream"]

#: Headers that describe one connection, not the message: never forwarded.
_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                  "te", "trailer", "transfer-encoding", "upgrade", "host", "authorization",
                  "content-length"})
_STREAMED = ("application/x-ndjson", "text/event-stream")


class Upstream:
    """The Ollama server behind ragkit: pass-through and a few JSON look-ups."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url
        self.client = httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(timeout, connect=3.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64))

    async def aclose(self) -> None:
        """Close the connections to the upstream."""
        await self.client.aclose()

    def unreachable(self, exc: Exception) -> ApiError:
        """The error for a failed connection to the upstream."""
        if isinstance(exc, httpx.TimeoutException):
            return ApiError(504, f"the upstream Ollama at {self.base_url} did not answer in time")
        return ApiError(502, f"cannot reach the upstream Ollama at {self.base_url} — start "
                        "`ollama serve`, or point ragkit serve --host at it")

    async def json(self, method: str, path: str, body: Any = None) -> Any:
        """The upstream's JSON reply, or None when it is down or answers with an error."""
        try:
            response = await self.client.request(method, path, json=body)
            return response.json() if response.status_code < 400 else None
        except (httpx.HTTPError, ValueError):
            return None

    async def forward(self, request: Request, body: bytes, path: str | None = None) -> Response:
        """Send ``request`` (with ``body``) upstream and relay the reply as it streams."""
        face = face_of(request.url.path)
        target = path or request.url.path
        if request.url.query:
            target += "?" + request.url.query
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        outgoing = self.client.build_request(request.method, target, content=body,
                                             headers=headers)
        try:
            reply = await self.client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            return error_response(self.unreachable(exc), face)
        kept = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP}
        ctype = reply.headers.get("content-type", "")
        if not ctype.startswith(_STREAMED) and "content-length" in reply.headers:
            kept["content-length"] = reply.headers["content-length"]
        return StreamingResponse(_relay(reply, face, ctype.startswith(_STREAMED)),
                                 status_code=reply.status_code, headers=kept)


async def _relay(reply: httpx.Response, face: str, streamed: bool) -> AsyncIterator[bytes]:
    """The upstream's bytes as they come; an error line if it breaks off a stream."""
    ended = True  # whether the last byte relayed ends a line
    try:
        async for data in reply.aiter_raw():
            ended = data.endswith(b"\n") if data else ended
            yield data
    except httpx.HTTPError as exc:
        if streamed:
            broke = ApiError(502, f"the upstream Ollama broke off its reply: {exc}")
            yield (b"" if ended else b"\n") + error_line(broke, face)
    finally:  # also when the client hung up: closing tells Ollama to stop generating
        with contextlib.suppress(Exception):
            await reply.aclose()

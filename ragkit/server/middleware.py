"""What every request goes through before it reaches a face: the key, the size cap, the log.

A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``, which
buffers through an extra task per request and would add latency to every
streamed token of a pass-through.
"""

from __future__ import annotations

import contextlib
import hmac
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_response, face_of

__all__ = ["BodyTooLarge", "Gate"]


class BodyTooLarge(ApiError):
    """The body went past the cap while it was being read (the app renders it as a 413)."""


class Gate:
    """Checks ``Authorization: Bearer KEY``, caps request bodies and logs each request."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body: int,
                 log: TextIO | None = sys.stderr) -> None:
        self.app = app
        self.state: Any = getattr(app, "state", None)  # the wrapped app's, for its owner
        self.api_key = api_key
        self.max_body = max_body
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await error_response(refusal, face_of(scope["path"]))(scope, receive, logged_send)
                return
            try:
                await self.app(scope, self._capped(receive), logged_send)
            except BodyTooLarge as error:  # raised outside the app's own error handlers
                if status[0] == 0:
                    await error_response(error, face_of(scope["path"]))(
                        scope, receive, logged_send)
            except Exception as exc:  # already answered with a 500: one line, not a traceback
                self._say(f"internal error on {scope['path']}: {type(exc).__name__}: {exc}")
        finally:
            self._log_line(scope, status[0], started)

    def _refusal(self, scope: Scope) -> ApiError | None:
        """Why the request is refused before it is read (a bad key, a declared huge body)."""
        headers = dict(scope["headers"])
        if self.api_key is not None:
            given = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    token.strip().encode(), self.api_key.encode()):
                return ApiError(401, "missing or wrong API key — send the header "
                                "'Authorization: Bearer KEY' with ragkit serve's --api-key",
                                "invalid_api_key")
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_body:
            return ApiError(413, self._too_large_text())
        return None

    def _too_large_text(self) -> str:
        return (f"the request body is larger than {self.max_body // 1024 // 1024} MiB — "
                "send less (big images, long documents)")

    def _capped(self, receive: Receive) -> Callable[[], Any]:
        """``receive`` that stops a chunked body at the cap, whatever Content-Length said."""
        seen = [0]

        async def capped() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.max_body:
                    raise BodyTooLarge(413, self._too_large_text())
            return message

        return capped

    def _log_line(self, scope: Scope, status: int, started: float) -> None:
        """``ragkit: 127.0.0.1 POST /api/chat 200 12 ms`` on stderr."""
        client = scope.get("client") or ("-", 0)
        ms = (time.perf_counter() - started) * 1000
        shown = status or 499  # the client went away before any reply
        self._say(f"{client[0]} {scope['method']} {scope['path']} {shown} {ms:.0f} ms")

    def _say(self, line: str) -> None:
        if self.log is None:
            return
        with contextlib.suppress(OSError, ValueError):  # a closed stderr must not stop serving
            print(f"ragkit: {line}", file=self.log, flush=True)

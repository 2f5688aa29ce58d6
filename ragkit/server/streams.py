"""Running a blocking answer in a worker thread and reading its events from async code.

:func:`start` runs ``work(emit)`` in a thread of the server's own pool and
returns a :class:`Feed`, an async iterator of ``(kind, value)`` events.  The
faces await the **first** event before answering: an error that happens
before any text (a missing model, a bad option) becomes a proper HTTP error
status, as Ollama and OpenAI do, and only errors after it are sent in-stream.
Closing the feed (the client hung up) cancels the request: the upstream
connection is closed and the worker stops at its next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.to_thread
from starlette.responses import StreamingResponse

from .backend import Passthrough
from .errors import api_error, error_line

__all__ = ["WORKERS", "Feed", "blocking", "collect", "ndjson", "opened", "start"]

#: Worker threads for answers and searches: more clients than this wait their turn.
WORKERS = 64
_limiter: anyio.CapacityLimiter | None = None
_running: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks


class _Stop(Exception):
    """Raised inside the worker once the client has gone: stops it where it is."""


def limiter() -> anyio.CapacityLimiter:
    """The server's pool of worker threads (created in the event loop that uses it)."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(WORKERS)
    return _limiter


async def blocking(func: Callable[..., Any], *args: Any) -> Any:
    """Run ``func(*args)`` in a worker thread and return its result."""
    return await anyio.to_thread.run_sync(func, *args, limiter=limiter())


class Feed:
    """The events of one running request, in order; ``error`` events carry the exception."""

    def __init__(self, extra: Passthrough) -> None:
        self.extra = extra
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        return self._events()

    async def _events(self) -> AsyncIterator[tuple[str, Any]]:
        while True:
            kind, value = await self.queue.get()
            yield kind, value
            if kind in ("done", "error"):
                return

    async def next(self) -> tuple[str, Any]:
        """The next event (the first one decides between a stream and an error status)."""
        return await self.queue.get()

    def close(self) -> None:
        """Cancel the request if it is still running (safe to call twice)."""
        self.extra.cancel()


def start(work: Callable[[Callable[[str, Any], None]], None], extra: Passthrough) -> Feed:
    """Run ``work(emit)`` in a worker thread; its events, then any error, go to the feed."""
    feed = Feed(extra)
    loop = asyncio.get_running_loop()

    def emit(kind: str, value: Any) -> None:
        if extra.cancelled.is_set():
            raise _Stop
        loop.call_soon_threadsafe(feed.queue.put_nowait, (kind, value))

    def run() -> None:
        try:
            work(emit)
        except _Stop:
            pass
        except BaseException as exc:  # every failure is reported to the client, never lost
            if not extra.cancelled.is_set():
                loop.call_soon_threadsafe(feed.queue.put_nowait, ("error", exc))

    async def supervise() -> None:
        with contextlib.suppress(Exception):
            await blocking(run)

    feed.task = loop.create_task(supervise())
    _running.add(feed.task)
    feed.task.add_done_callback(_running.discard)
    return feed


async def opened(work: Callable[[Callable[[str, Any], None]], None],
                 extra: Passthrough) -> tuple[Feed, tuple[str, Any]]:
    """Start ``work`` and wait for its first event; an early error is raised as an ApiError."""
    feed = start(work, extra)
    first = await feed.next()
    if first[0] == "error":
        feed.close()
        raise api_error(first[1])
    return feed, first


async def collect(feed: Feed, first: tuple[str, Any]) -> list[tuple[str, Any]]:
    """Every event up to ``done``, for a reply that is not streamed; an error raises."""
    events, event = [], first
    try:
        while True:
            if event[0] == "error":
                raise api_error(event[1])
            events.append(event)
            if event[0] == "done":
                return events
            event = await feed.next()
    finally:
        feed.close()


def ndjson(feed: Feed, first: tuple[str, Any],
           render: Callable[[str, Any], dict[str, Any] | None], face: str) -> StreamingResponse:
    """A stream of one JSON object per line; an error after the first line is a last line."""

    async def lines() -> AsyncIterator[bytes]:
        event = first
        try:
            while True:
                kind, value = event
                if kind == "error":
                    yield error_line(api_error(value), face)
                    return
                record = render(kind, value)
                if record is not None:
                    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
                    yield line.encode() + b"\n"
                if kind == "done":
                    return
                event = await feed.next()
        finally:  # also when the client hung up: the generation is stopped upstream
            feed.close()

    return StreamingResponse(lines(), media_type="application/x-ndjson")

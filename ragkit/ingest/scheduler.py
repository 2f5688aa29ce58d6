"""Embedding prepared chunks, with several requests in flight (the ingest pipeline's middle).

Each batch of about ``batch_size`` chunks goes out as ``/api/embed`` requests
of many texts, and up to ``parallel`` requests are in flight at once
(``RAGKIT_PARALLEL``; by default ``OLLAMA_NUM_PARALLEL`` + 1, so the server
always has the next request queued while ragkit decodes, writes and chunks).
Batches come back in order, each as soon as its vectors have arrived.

With several Ollama hosts (:class:`~ragkit.backends.hosts.HostPool`), ``parallel``
is each host's own limit and the pipeline keeps ``parallel × hosts`` requests in
flight (:func:`in_flight`); the pool sends each to the least busy host.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ..settings import Settings
from .prepare import _Prepared

__all__ = ["EmbedFn", "default_parallel", "in_flight"]

#: Embeds a batch of document texts into normalized float32 rows.
EmbedFn = Callable[[Sequence[str]], np.ndarray]


def default_parallel(settings: Settings | None = None) -> int:
    """Embedding requests in flight: ``RAGKIT_PARALLEL``, else ``OLLAMA_NUM_PARALLEL`` + 1.

    One more than the server runs at once, so a request is always waiting at the
    server while ragkit handles the last reply (see :class:`~ragkit.settings.Settings`).
    """
    return (settings or Settings.from_env()).parallel


def in_flight(backend: Any, per_host: int) -> int:
    """Requests to keep in flight on ``backend``: ``per_host`` for each host it spreads over.

    A backend that spreads requests over several servers has ``share(per_host)``,
    which sets each server's limit and returns the total; any other serves ``per_host``.
    """
    share = getattr(backend, "share", None)
    return int(share(per_host)) if callable(share) else per_host


def _embed_batch(embed: EmbedFn, texts: list[str], size: int) -> np.ndarray:
    """Embed ``texts`` in requests of at most ``size`` texts each."""
    parts = [embed(texts[i : i + size]) for i in range(0, len(texts), size)]
    return np.vstack(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def _embed_ahead(
    batches: Iterable[list[_Prepared]], embed: EmbedFn, size: int, in_flight: int
) -> Iterator[tuple[list[_Prepared], np.ndarray]]:
    """Yield each batch with its vectors, in order, keeping ``in_flight`` requests busy.

    The chunk texts of consecutive batches form one stream, cut into requests of
    ``size`` texts (so a batch boundary never produces a small request); up to
    ``in_flight`` requests run in a thread pool, with one more queued behind them.
    A batch is handed back (to be committed) as soon as the requests covering
    its texts are done, while the following requests keep running.
    """
    if in_flight <= 1:
        for batch in batches:
            yield batch, _embed_batch(embed, _texts(batch), size)
        return
    requests = _Requests(embed, size, in_flight)
    try:
        for batch in batches:
            requests.add(batch)
            yield from requests.finished(in_flight + 1)
        requests.flush()
        yield from requests.finished(0)
    finally:
        requests.close()


def _texts(batch: list[_Prepared]) -> list[str]:
    return [t for p in batch for t in p.texts]


class _Requests:
    """Embedding requests in flight, and the batches waiting for their vectors."""

    def __init__(self, embed: EmbedFn, size: int, in_flight: int) -> None:
        self._embed, self._size = embed, size
        self._pool = ThreadPoolExecutor(in_flight, thread_name_prefix="ragkit-embed")
        self._waiting: deque[tuple[list[_Prepared], int, int]] = deque()  # batch, first, end text
        self._running: deque[Future[np.ndarray]] = deque()
        self._done: list[np.ndarray] = []  # finished vectors from text ``_base`` on, in order
        self._base = self._finished = self._total = 0
        self._unsent: list[str] = []

    def add(self, batch: list[_Prepared]) -> None:
        """Queue a batch's texts, sending every full request among them."""
        texts = _texts(batch)
        self._waiting.append((batch, self._total, self._total + len(texts)))
        self._total += len(texts)
        self._unsent.extend(texts)
        while len(self._unsent) >= self._size:
            self._send(self._size)

    def flush(self) -> None:
        """Send the texts left over as one last, smaller request."""
        if self._unsent:
            self._send(len(self._unsent))

    def finished(self, limit: int) -> Iterator[tuple[list[_Prepared], np.ndarray]]:
        """Batches whose vectors are in, waiting for requests until at most ``limit`` run."""
        while True:
            yield from self._ready()
            if len(self._running) <= limit:
                return
            vectors = self._running.popleft().result()
            self._done.append(vectors)
            self._finished += len(vectors)

    def close(self) -> None:
        """Cancel what has not started; wait for the pool only if nothing is left running."""
        for future in self._running:
            future.cancel()
        self._pool.shutdown(wait=not self._running)

    def _send(self, n: int) -> None:
        self._running.append(self._pool.submit(self._embed, self._unsent[:n]))
        del self._unsent[:n]

    def _ready(self) -> Iterator[tuple[list[_Prepared], np.ndarray]]:
        """The waiting batches whose texts are all embedded, with their rows."""
        while self._waiting and self._waiting[0][2] <= self._finished:
            batch, first, end = self._waiting.popleft()
            if end == first:
                yield batch, np.zeros((0, 0), dtype=np.float32)
                continue
            rows = np.vstack(self._done) if len(self._done) > 1 else self._done[0]
            yield batch, rows[first - self._base : end - self._base]
            self._done[:] = [rows[end - self._base :]]
            self._base = end

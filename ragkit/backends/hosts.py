"""Several Ollama hosts behind one backend: an ingest spreads over them, a query takes the first.

``OLLAMA_HOST`` may hold a comma-separated list, and ``--host`` may be repeated
(each value may be a list too).  :func:`parse_hosts` reads them; with one host
ragkit uses a plain :class:`~.ollama.OllamaClient`, with several a :class:`HostPool`:

* **Embedding** goes to the healthy host with the fewest requests in flight,
  the earliest on a tie, and waits while every healthy host has ``per_host``
  requests running.  A lone request (a query) therefore goes to the first
  healthy host, while an ingest, which keeps ``per_host × hosts`` requests in
  flight (:meth:`HostPool.share`), keeps every host busy with its own limit.
* A request that fails in a way another server may not (no connection, a
  timeout, a 5xx, a garbled reply or unusable vectors) is sent again to
  another host: embedding is idempotent.  A host that cannot be reached, or
  that fails :data:`STRIKES` times in a row, is left out for
  :data:`REST_SECONDS` with one warning (per host and process); its work goes
  to the others.  With one host left, failures are retried on it with the
  client's backoff, as with a single host.
* **Generation** streams from the first healthy host.  It moves on only when
  a host fails before its first record (so nothing was shown yet); a stream
  cut short later is not re-run, as with one host.
* When no host can serve, the error is the one a single host gives (exit 3);
  if none could even be reached it names them all.
* Everything else (the model list, show, pull, version) talks to the first
  healthy host; :attr:`HostPool.clients` gives each host's own client.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from ..errors import (
    BackendError,
    ConnectError,
    ModelNotFoundError,
    ProtocolError,
    RequestTimeoutError,
    ServerError,
    VectorError,
)
from .base import Message, StreamChunk
from .ollama import OllamaClient

__all__ = ["REST_SECONDS", "STRIKES", "HostPool"]

_T = TypeVar("_T")

#: Failures in a row after which a reachable host is left out for a while.
STRIKES = 3
#: How long a host that failed is left out before it is tried again (a server may restart).
REST_SECONDS = 60.0
#: Failures another server may not have: the request is sent again, elsewhere.
_HOST_FAILURES = (ConnectError, RequestTimeoutError, ServerError, ProtocolError, VectorError)
#: Tries of one request, over all hosts (1 + the single-host client's retries).
_TRIES = 4


class HostPool:
    """Several Ollama servers as one :class:`~ragkit.backends.base.Backend` (see the module doc)."""

    name = "ollama"

    def __init__(self, hosts: Sequence[str], *, timeout: float = 300.0, per_host: int = 2,
                 warn: Callable[[str], None] | None = None, backoff: float = 0.5,
                 clients: Sequence[OllamaClient] | None = None) -> None:
        # Each client tries once: a failed request moves to another host at once.
        self.clients = list(clients) if clients is not None else [
            OllamaClient(h, timeout=timeout, retries=0) for h in hosts]
        self.hosts = [c.host for c in self.clients]
        self.per_host = max(1, per_host)
        self.backoff = backoff
        self._warn = warn
        self._cond = threading.Condition()
        self._busy = [0] * len(self.clients)
        self._strikes = [0] * len(self.clients)
        self._resting = [0.0] * len(self.clients)  # monotonic time until which a host is left out
        self._warned: set[int] = set()
        self._lacking: set[tuple[int, str]] = set()  # (host, model) the host said it lacks
        self._pending: list[str] = []  # warnings held until another host has served

    def describe(self) -> str:
        """One line for the user: the hosts, first (the one queries use) first."""
        return f"Ollama at {', '.join(self.hosts)}"

    def share(self, per_host: int) -> int:
        """Let each host have ``per_host`` embedding requests in flight; the total to keep going."""
        with self._cond:
            self.per_host = max(1, per_host)
            self._cond.notify_all()
        return self.per_host * len(self.clients)

    # -- the Backend protocol --------------------------------------------------------

    def embed(self, model: str, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        """Embed on the least busy healthy host, moving to another if it fails."""
        return self._spread(model, lambda c: c.embed(model, texts, **kwargs))

    def generate(self, model: str, prompt: str, **kwargs: Any) -> Iterator[StreamChunk]:
        """Stream a completion from the first healthy host."""
        return self._stream(model, lambda c: c.generate(model, prompt, **kwargs))

    def chat(self, model: str, messages: Sequence[Message], **kwargs: Any
             ) -> Iterator[StreamChunk]:
        """Stream the next chat message from the first healthy host."""
        return self._stream(model, lambda c: c.chat(model, messages, **kwargs))

    def has_model(self, model: str) -> bool:
        """Whether the first healthy host has ``model``."""
        return self._first(lambda c: c.has_model(model))

    def special_tokens(self, model: str) -> Sequence[str]:
        """The special tokens of ``model``'s template, as the first healthy host says."""
        return self._first(lambda c: c.special_tokens(model))

    def is_alive(self, timeout: float = 1.0) -> bool:
        """Whether any host answers; never raises."""
        return any(c.is_alive(timeout) for c in self.clients)

    def __getattr__(self, name: str) -> Any:
        """Other client methods (list_models, show, pull, version...): on the first healthy host."""
        if name.startswith("_") or "clients" not in self.__dict__:  # not during __init__
            raise AttributeError(name)
        method = getattr(self.clients[0], name)
        if not callable(method):
            return method
        return lambda *args, **kwargs: self._first(lambda c: getattr(c, name)(*args, **kwargs))

    # -- which host ------------------------------------------------------------------

    def _order(self, model: str | None = None) -> list[int]:
        """Hosts to try, in order: the healthy ones; if none is, every host."""
        now = time.monotonic()
        ready = [i for i in range(len(self.clients)) if self._resting[i] <= now]
        usable = [i for i in ready or range(len(self.clients)) if (i, model) not in self._lacking]
        return usable or list(range(len(self.clients)))

    def _acquire(self, model: str, avoid: int | None) -> int:
        """A slot on the least busy healthy host (not ``avoid`` if another will do)."""
        with self._cond:
            while True:
                order = self._order(model)
                candidates = [i for i in order if i != avoid] or order
                free = [i for i in candidates if self._busy[i] < self.per_host]
                if free:
                    chosen = min(free, key=lambda i: (self._busy[i], i))
                    self._busy[chosen] += 1
                    return chosen
                self._cond.wait(1.0)  # a slot frees up, or a resting host comes back

    def _release(self, i: int) -> None:
        with self._cond:
            self._busy[i] -= 1
            self._cond.notify_all()

    # -- how requests are sent -------------------------------------------------------

    def _spread(self, model: str, call: Callable[[OllamaClient], _T]) -> _T:
        """``call`` on the least busy healthy host, again elsewhere after a host failure."""
        failures: list[BackendError] = []
        last: int | None = None
        while True:
            i = self._acquire(model, last)
            try:
                result = call(self.clients[i])
            except (*_HOST_FAILURES, ModelNotFoundError) as exc:
                self._failed(i, exc, model)
                failures.append(exc)
                tries = max(_TRIES, len(self.clients))  # every host gets its chance
                if len(failures) >= tries or self._gave_every_host_a_chance(failures, model):
                    raise self._all_failed(failures) from None
                if len(self._order(model)) == 1:  # only this one left: back off, as one host does
                    time.sleep(self.backoff * 2 ** (len(failures) - 1))
                last = i
                continue
            finally:
                self._release(i)
            self._succeeded(i)
            return result

    def _gave_every_host_a_chance(self, failures: list[BackendError], model: str) -> bool:
        """Whether nothing is left to try: no host is healthy, or every one lacks the model."""
        lacking = sum(1 for i in range(len(self.clients)) if (i, model) in self._lacking)
        if lacking == len(self.clients):
            return True
        now = time.monotonic()
        return len(failures) >= len(self.clients) and all(r > now for r in self._resting)

    def _stream(self, model: str, start: Callable[[OllamaClient], Iterator[StreamChunk]]
                ) -> Iterator[StreamChunk]:
        """The stream of the first healthy host that gets its first record out."""
        failures: list[BackendError] = []
        for i in self._order(model):
            stream = start(self.clients[i])
            with contextlib.closing(stream):  # type: ignore[type-var]
                try:
                    first = next(stream)
                except StopIteration:
                    return
                except (*_HOST_FAILURES, ModelNotFoundError) as exc:
                    self._failed(i, exc, model)
                    failures.append(exc)
                    continue
                self._succeeded(i)
                yield first
                yield from stream
                return
        raise self._all_failed(failures)

    def _first(self, call: Callable[[OllamaClient], _T]) -> _T:
        """``call`` on the first healthy host; on a host failure, on the next."""
        failures: list[BackendError] = []
        for i in self._order():
            try:
                return call(self.clients[i])
            except _HOST_FAILURES as exc:
                self._failed(i, exc, None)
                failures.append(exc)
        raise self._all_failed(failures)

    # -- bookkeeping -----------------------------------------------------------------

    def _failed(self, i: int, exc: BackendError, model: str | None) -> None:
        """Count a failure of host ``i``; leave it out, with one warning, once it is down."""
        with self._cond:
            if isinstance(exc, ModelNotFoundError):
                if model is not None and (i, model) not in self._lacking:
                    self._lacking.add((i, model))
                    self._say(f"warning: Ollama at {self.hosts[i]} has no model '{model}' — its "
                              "requests go to the other hosts (pull it there to use it)")
                return
            self._strikes[i] += 1
            if not (isinstance(exc, ConnectError) or self._strikes[i] >= STRIKES):
                return
            self._resting[i] = time.monotonic() + REST_SECONDS
            self._strikes[i] = 0
            if i not in self._warned:
                self._warned.add(i)
                self._say(f"warning: leaving out Ollama at {self.hosts[i]}, its work goes to "
                          f"the other hosts: {exc}")

    def _say(self, message: str) -> None:
        """Hold a warning until another host has served: when none can, the error says it all."""
        self._pending.append(message)

    def _succeeded(self, i: int) -> None:
        with self._cond:
            self._strikes[i] = 0
            pending, self._pending = self._pending, []
        for message in pending:
            if self._warn is not None:
                self._warn(message)

    def _all_failed(self, failures: list[BackendError]) -> BackendError:
        """The error when no host could serve: a single host's own, or one naming them all."""
        if failures and all(isinstance(f, ConnectError) for f in failures):
            hosts = list(dict.fromkeys(f.host for f in failures if isinstance(f, ConnectError)))
            return ConnectError(" or ".join(hosts))
        lacking = [f for f in failures if isinstance(f, ModelNotFoundError)]
        if lacking and len(lacking) == len(failures):
            return lacking[0]
        return next((f for f in failures if not isinstance(f, ModelNotFoundError)),
                    failures[-1] if failures else ConnectError(", ".join(self.hosts)))


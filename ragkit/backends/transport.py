"""Reading HTTP replies from a server that may misbehave: deadlines and size caps.

``requests`` only knows a timeout per socket read, so a server that trickles
one byte a second keeps a reply alive forever.  Here a :class:`Deadline` is
the moment a whole reply (or, in a stream, the next record) must be complete;
a watchdog thread shuts the connection's socket down at that moment, which
ends any read blocked on it, headers included.  The socket is known through
the connection classes of :func:`session`, which register it with the
deadline of the request running in the current thread.  A session from
elsewhere, or a connection through an HTTP proxy, has no watchdog; the
deadline is then only checked between reads.

Replies are read in 64 KB chunks and counted as they arrive, so a reply over
its cap is refused without being held (:func:`read_body`); stream lines are
split in one pass over each chunk (:func:`lines`), never by re-scanning what
is pending, which made ``iter_lines()`` quadratic on a long line.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

__all__ = ["CHUNK", "Deadline", "Expired", "TooLarge", "lines", "read_body", "session"]

#: Bytes asked of the socket per read.
CHUNK = 64 * 1024

_local = threading.local()  # .deadline: the Deadline of the request this thread is sending


class Expired(Exception):
    """A deadline ran out; ``kind`` says which limit: ``reply``, ``pause`` or ``total``."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class TooLarge(Exception):
    """A ``reply``, a stream ``line`` or a whole ``stream`` grew past its cap."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Deadline:
    """When a reply must be complete; once passed, the connection it reads from is shut down.

    ``total`` (seconds, optional) caps every :meth:`restart`: a stream whose
    records keep coming in time still has to end by then.
    """

    def __init__(self, seconds: float, *, total: float | None = None) -> None:
        now = time.monotonic()
        self._total_at = now + total if total else math.inf
        self._cond = threading.Condition()
        self._at, self._kind = self._limit(now + seconds, "reply")
        self._conn: Any = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self.expired: str | None = None  # the kind of limit that ran out, once one has

    def _limit(self, at: float, kind: str) -> tuple[float, str]:
        return (at, kind) if at < self._total_at else (self._total_at, "total")

    def restart(self, seconds: float) -> None:
        """The next record is due within ``seconds`` from now (never after the total cap)."""
        with self._cond:
            self._at, self._kind = self._limit(time.monotonic() + seconds, "pause")
            self._cond.notify()

    @property
    def running(self) -> str:
        """The kind of limit now running: ``reply``, ``pause`` or ``total``."""
        with self._cond:
            return self._kind

    def suspend(self) -> None:
        """Stop the clock while the caller, not the server, is busy (the total cap still runs)."""
        with self._cond:
            self._at, self._kind = self._total_at, "total"
            self._cond.notify()

    def check(self) -> None:
        """Raise :class:`Expired` if the deadline has passed (the check between reads)."""
        with self._cond:
            if self.expired is None and time.monotonic() >= self._at:
                self.expired = self._kind
            if self.expired is not None:
                raise Expired(self.expired)

    def cut_short(self) -> None:
        """Raise :class:`Expired` if the watchdog ended the reply (it may look complete)."""
        with self._cond:
            if self.expired is not None:
                raise Expired(self.expired)

    def watch(self, conn: Any) -> None:
        """Shut ``conn``'s socket down when the deadline passes (called as the request goes out)."""
        with self._cond:
            self._conn = conn
            conn._ragkit_deadline = self  # a later request on this connection takes it over
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="ragkit-deadline",
                                                daemon=True)
                self._thread.start()

    def close(self) -> None:
        """The reply is done with: stop watching (its connection may serve other requests)."""
        with self._cond:
            self._closed = True
            self._conn = None
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                left = self._at - time.monotonic()
                if left <= 0:
                    self.expired = self._kind
                    self._shutdown()
                    return
                self._cond.wait(None if math.isinf(left) else left)

    def _shutdown(self) -> None:
        """End every read blocked on the socket: it returns end-of-file at once."""
        conn = self._conn
        if conn is None or getattr(conn, "_ragkit_deadline", None) is not self:
            return
        with contextlib.suppress(OSError, AttributeError):
            # The plain socket's shutdown: a TLS socket's own would drop its TLS state under
            # the reading thread; this way that thread just reads end-of-file.
            socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)


@contextlib.contextmanager
def watching(deadline: Deadline) -> Iterator[None]:
    """Let the connection that sends this thread's next request register with ``deadline``."""
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = None


def _register(conn: Any) -> None:
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and conn.sock is not None:
        deadline.watch(conn)
    else:
        conn._ragkit_deadline = None  # a request without a deadline owns it now


class _Watched:
    """Mixin for urllib3 connections: register the socket with the running request's deadline."""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _register(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # a kept-alive connection: connect() is not called again
            _register(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    """An adapter whose direct connections report their sockets to the request's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def session() -> requests.Session:
    """A ``requests`` session whose requests a :class:`Deadline` can cut short."""
    s = requests.Session()
    adapter = _Adapter()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def read_body(response: requests.Response, limit: int, deadline: Deadline) -> bytes:
    """The whole body of ``response``; :class:`TooLarge` past ``limit`` bytes."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge("reply")  # refused before a byte of it is read
    body = bytearray()
    for chunk in response.iter_content(CHUNK):
        deadline.check()
        body += chunk
        if len(body) > limit:
            raise TooLarge("reply")
    deadline.cut_short()
    return bytes(body)


def lines(response: requests.Response, deadline: Deadline, *, line_limit: int,
          total_limit: int) -> Iterator[bytes]:
    """The lines of a streamed body, each at most ``line_limit`` bytes, all ``total_limit``."""
    pending = bytearray()
    total = 0
    for chunk in response.iter_content(CHUNK):
        deadline.check()
        total += len(chunk)
        if total > total_limit:
            raise TooLarge("stream")
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            pending += chunk[start:end]
            start = end + 1
            if len(pending) > line_limit:
                raise TooLarge("line")
            yield bytes(pending)
            pending.clear()
        pending += chunk[start:]
        if len(pending) > line_limit:
            raise TooLarge("line")
    deadline.cut_short()
    if pending:
        yield bytes(pending)

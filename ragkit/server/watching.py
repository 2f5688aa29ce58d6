"""``ragkit serve --watch PATH``: keep the served index in step with folders while serving.

The watcher (:func:`ragkit.ingest.watch.watch`) runs in a thread of the
server's process and holds the index's writer lock; the server's own
searches open the index read-only, so they see each committed file as soon
as it is in.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from ..errors import RagkitError, UsageError
from .config import ServerSettings

__all__ = ["watching"]

#: Seconds a stopping server waits for a watcher in the middle of an ingest (whatever it
#: has not committed by then is found again by the next catch-up, as after kill -9).
STOP_WAIT = 5.0


@contextlib.contextmanager
def watching(settings: ServerSettings, announce: Callable[[str], None]) -> Iterator[None]:
    """Watch ``settings.watch`` into the served index while the block runs.

    A busy index (another watcher or ingest) is refused here, before serving.
    A new index is built from the folders first, so that there is one to serve.
    """
    if not settings.watch:
        yield
        return
    from ..index import Index
    from ..ingest.watch import WatchEvent

    if len(settings.indexes) > 1:
        raise UsageError("--watch feeds one index — give at most one --index with it")
    name = settings.indexes[0] if settings.indexes else "default"
    index = Index.open(name, home=settings.home, backend=settings.backend, host=settings.host,
                       timeout=settings.timeout, embed_model=settings.embed_model, create=True,
                       announce=announce)
    stop, ready, failed = threading.Event(), threading.Event(), []

    def heard(event: WatchEvent) -> None:
        if event.kind == "ready":
            ready.set()
            announce(f"watching {', '.join(settings.watch)} into index '{index.name}'")
        elif event.kind in ("waiting", "polling"):
            announce(f"watch: {event.message}" + (" — waiting for it, retrying with backoff"
                                                   if event.kind == "waiting" else ""))
        elif event.kind == "resumed":
            announce("watch: the embedding backend answers again")

    def run() -> None:
        try:
            index.watch(list(settings.watch), stop, on_event=heard)
        except RagkitError as exc:
            failed.append(exc)
            announce(f"watching stopped: error: {exc}")
        finally:
            ready.set()

    with index:
        index.hold_writer_lock()  # a busy index is refused before serving
        thread = threading.Thread(target=run, name="ragkit-watch", daemon=True)
        thread.start()
        if not index.exists:  # nothing to serve before the first build
            announce(f"building index '{index.name}' from {', '.join(settings.watch)} first")
            ready.wait()
            if failed:
                raise failed[0]
        try:
            yield
        finally:
            stop.set()
            thread.join(STOP_WAIT)

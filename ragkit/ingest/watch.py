"""Watching: keep an index in step with folders by following the OS's file events.

1. The writer lock is taken (once the index exists) and held for the
   watcher's whole life, so a second watcher, or an ``ingest`` of the same
   index, is refused as a second ingest is.
2. Events are followed from the start (watchdog: inotify on Linux, FSEvents,
   kqueue or ReadDirectoryChangesW elsewhere; polling when the OS refuses, or
   on request), then one incremental ingest of every path catches up with
   what changed while no watcher ran.
3. Events are debounced: changed paths pile up until nothing happened for
   ``debounce`` seconds (editors save in bursts), or ``10 x debounce`` after
   the first.  The pile becomes the narrowest paths to walk again (the changed
   file; the folder of a deleted, moved or linked one; a new folder whole) and
   goes through the ordinary incremental ingest, so the skip rules, hostile
   files, per-file commits, content hashes and the pipelined embedder are
   those of ``ingest``.  A burst of thousands of files is a few ingests of
   their folders, never a request per file.
4. A backend that fails (server gone, busy, a crashed runner) is waited for
   with backoff, said once per outage; the changes are kept and retried.

``kill -9`` at any moment is as safe as during ``ingest``: files are committed
whole, and the catch-up at the next start finds what was not committed (by
mtime and size, then content hash).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, BadRequestError, LoadError, NothingIndexedError, RagkitError
from ..loading.files import IGNORED_DIRS, check_roots
from .reports import IngestProgress, IngestReport

if TYPE_CHECKING:
    from ..index import Index

__all__ = ["DEBOUNCE", "WatchEvent", "rescan_targets", "watch"]

#: Seconds of quiet before a pile of changes is indexed.
DEBOUNCE = 0.5
#: More paths than this in one pile are folded into their folders (the walk is cheap,
#: and each path given to ingest costs a pass over the index's files).
MAX_TARGETS = 64
RETRY_FIRST, RETRY_MOST = 1.0, 60.0  # seconds between tries while the backend is away
_AGAIN = 3  # tries when files vanish between the pile and the walk


@dataclass(frozen=True)
class WatchEvent:
    """Something the watcher did, for a display or a log.

    ``kind`` is ``"ready"`` (caught up, following events; ``report`` is the
    catch-up's), ``"synced"`` (a pile of changes is committed: ``report``),
    ``"waiting"`` (the backend failed, ``message`` says how; retrying with
    backoff), ``"resumed"`` (it answers again) or ``"polling"`` (the OS gives
    no file events: ``message``).  ``pending``: changed paths not indexed yet.
    """

    kind: str
    report: IngestReport | None = None
    message: str = ""
    pending: int = 0


def watch(
    index: Index,
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    stop_event: threading.Event,
    *,
    follow_symlinks: bool = False,
    batch_size: int = 64,
    parallel: int | None = None,
    debounce: float = DEBOUNCE,
    polling: bool = False,
    on_event: Callable[[WatchEvent], None] | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
) -> None:
    """Keep ``index`` in step with the files under ``paths`` until ``stop_event`` is set.

    Catches up first (an incremental ingest), then indexes changes as the OS
    reports them.  ``on_event`` hears what was done (:class:`WatchEvent`),
    ``progress`` follows each ingest.  ``polling``: stat the folders every
    second instead of OS events (network file systems).  Raises what an ingest
    raises, except backend failures, which are waited out.
    """
    _need_watchdog()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    roots = [Path(os.path.abspath(os.path.expanduser(os.fspath(p)))) for p in paths]
    check_roots(roots)
    tell = on_event or (lambda event: None)
    index.hold_writer_lock()  # an index that exists: a second watcher is refused now
    changes, observer = Changes(), None
    try:
        observer = start_observer(roots, changes, index.path, polling, tell)
        sync = _Syncer(index, changes, stop_event, tell,
                       dict(follow_symlinks=follow_symlinks, batch_size=batch_size,
                            parallel=parallel, progress=progress))
        report = sync.run(roots, roots)
        if report is None:
            return
        tell(WatchEvent("ready", report, pending=changes.count()))
        while not stop_event.is_set():
            changed = changes.take(stop_event, debounce, 10 * debounce)
            if changed and sync.run(changed, roots) is None:
                return
    finally:
        if observer is not None:
            observer.stop()
            observer.join()
        index.hold_writer_lock(False)


def _need_watchdog() -> None:
    """A one-line error, before anything is done, when the ``watch`` extra is missing."""
    try:
        import watchdog.observers  # noqa: F401
    except ImportError:
        raise RagkitError("watching needs the 'watch' extra (watchdog is missing) — run "
                          "`pip install 'ragkit[watch]'` or `make setup`") from None


class Changes:
    """Changed paths, piled up by the observer's thread and taken by the watcher's."""

    def __init__(self) -> None:
        self._paths: set[str] = set()
        self._first = self._last = 0.0
        self._ready = threading.Condition()

    def add(self, path: str) -> None:
        """Note that ``path`` changed (was created, written, deleted, moved from or to)."""
        with self._ready:
            now = time.monotonic()
            if not self._paths:
                self._first = now
            self._paths.add(path)
            self._last = now
            self._ready.notify_all()

    def count(self) -> int:
        """How many paths wait."""
        with self._ready:
            return len(self._paths)

    def drain(self) -> set[str]:
        """Every path that waits, at once."""
        with self._ready:
            paths, self._paths = self._paths, set()
            return paths

    def take(self, stop: threading.Event, quiet: float, longest: float) -> set[str]:
        """The pile, once ``quiet`` seconds passed without a change (``longest`` at most).

        Empty when ``stop`` is set first.
        """
        with self._ready:
            while not self._paths:
                if stop.is_set():
                    return set()
                self._ready.wait(0.1)
            while not stop.is_set():
                left = min(self._last + quiet, self._first + longest) - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(min(left, 0.1))
            paths, self._paths = self._paths, set()
            return paths


class _Syncer:
    """Runs the ingest of a pile of changes, waiting out a backend that fails."""

    def __init__(self, index: Index, changes: Changes, stop: threading.Event,
                 tell: Callable[[WatchEvent], None], options: dict[str, Any]) -> None:
        self.index, self.changes, self.stop, self.tell = index, changes, stop, tell
        self.options = options
        self.waiting = False

    def run(self, changed: Iterable[str | Path], roots: Sequence[Path]) -> IngestReport | None:
        """Ingest what changed (each try walks it again); None if stopped while waiting."""
        pile = {str(p) for p in changed}
        delay, vanished = RETRY_FIRST, 0
        while True:
            targets = rescan_targets(pile, roots)
            try:
                report = self._ingest(targets)
            except LoadError:  # a path vanished between the pile and the walk: pile again
                vanished += 1
                if vanished >= _AGAIN:
                    raise
                continue
            except BackendError as exc:
                if not _worth_waiting(exc):
                    raise
                if not self.waiting:
                    self.waiting = True
                    self.tell(WatchEvent("waiting", message=_reason(exc)))
                if self.stop.wait(delay):
                    return None
                delay = min(2 * delay, RETRY_MOST)
                pile |= self.changes.drain()  # what changed meanwhile goes in the retry
                continue
            self.index.hold_writer_lock()  # a new index exists from its first commit on
            if self.waiting:
                self.waiting = False
                self.tell(WatchEvent("resumed"))
            self.tell(WatchEvent("synced", report, pending=self.changes.count()))
            return report

    def _ingest(self, targets: list[Path]) -> IngestReport:
        """One incremental ingest of ``targets`` (an index left empty is fine here)."""
        if not targets:
            return IngestReport()
        try:
            report = self.index.ingest(targets, **self.options)
        except NothingIndexedError as exc:  # every file deleted, or none indexable yet
            report = exc.report  # type: ignore[assignment]
        # A file that vanished before it was read is no failure: its deletion comes next.
        report.failed = [p for p in report.failed if os.path.lexists(p.path)]
        return report


def _worth_waiting(exc: BackendError) -> bool:
    """Whether trying again later may succeed (not a refused request or a changed model)."""
    return not isinstance(exc, BadRequestError) and getattr(exc, "rerun_helps", True)


def _reason(exc: BackendError) -> str:
    """The error's message without ingest's advice to run the command again."""
    return str(exc).split(" (ingest stopped:", 1)[0]


def rescan_targets(changed: Iterable[str], roots: Sequence[Path]) -> list[Path]:
    """The fewest existing paths whose walk covers every changed path, inside ``roots``.

    A changed file is walked itself; a deleted one, or a link (whose walk
    rules depend on its folder), through its folder; a folder whole.  A path
    reached through a link inside a root is walked from the root, so that its
    files keep the keys the walk of the root gives them.  A watched folder
    or file that is gone itself is left out (its files stay in the index).
    """
    targets: set[Path] = set()
    for name in changed:
        root = _root_of(Path(name), roots)
        if root is not None:
            target = _target(Path(name), root)
            if target is not None:
                targets.add(target)
    found = _outermost(targets)
    while len(found) > MAX_TARGETS and any(t not in roots for t in found):
        found = _outermost({t if t in roots else t.parent for t in found})
    return found


def _root_of(path: Path, roots: Sequence[Path]) -> Path | None:
    """The innermost root that ``path`` is, or lies under."""
    inside = [r for r in roots if path == r or path.is_relative_to(r)]
    return max(inside, key=lambda r: len(r.parts)) if inside else None


def _target(path: Path, root: Path) -> Path | None:
    """What to walk for a change of ``path`` below ``root`` (see :func:`rescan_targets`)."""
    if not root.is_dir():  # a watched file; if gone, an editor's save may bring it back
        return root if os.path.lexists(root) else None
    target = path
    if target.is_symlink() or not (target.is_file() or target.is_dir()):
        target = target.parent  # gone, a link or not a file: its folder's walk decides
        while target != root and (target.is_symlink() or not target.is_dir()):
            target = target.parent
    if target != root and os.path.realpath(target) != os.path.join(
            os.path.realpath(root), target.relative_to(root)):
        return root  # reached through a link: keys come from the root's walk
    return target


def _outermost(targets: set[Path]) -> list[Path]:
    """``targets`` without those inside another one, sorted."""
    out: list[Path] = []
    for target in sorted(targets, key=lambda t: len(t.parts)):
        if not any(target == kept or target.is_relative_to(kept) for kept in out):
            out.append(target)
    return sorted(out)


def wanted(path: str, roots: Sequence[Path], index_folder: str) -> bool:
    """Whether a change of ``path`` matters: under a root, not hidden, not the index's own."""
    p = Path(path)
    root = _root_of(p, roots)
    if root is None:
        return False
    real = os.path.realpath(path)
    if real == index_folder or real.startswith(index_folder + os.sep):
        return False
    parts = p.relative_to(root).parts
    return not any(part.startswith(".") or part in IGNORED_DIRS for part in parts)


def start_observer(roots: Sequence[Path], changes: Changes, index_path: Path, polling: bool,
                   tell: Callable[[WatchEvent], None]) -> Any:
    """A running watchdog observer that adds the roots' changes to ``changes``.

    OS events when the OS gives them; polling when asked, or when it refuses
    (the inotify watch limit reached), which is said.
    """
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    handler = _handler(roots, changes, index_path)
    if not polling:
        try:
            return _started(Observer(), roots, handler)
        except OSError as exc:
            tell(WatchEvent("polling", message=f"file events are not available ({exc}); "
                            "checking the folders every second instead (on Linux, raise "
                            "fs.inotify.max_user_watches)"))
    return _started(PollingObserver(timeout=1.0), roots, handler)


def _started(observer: Any, roots: Sequence[Path], handler: Any) -> Any:
    from watchdog.events import (
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
        FileAttribEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
    )

    # Not opened, read or closed unwritten: the ingest's own reads must not wake the watcher.
    kinds: list[Any] = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileDeletedEvent,
                        FileMovedEvent, FileAttribEvent, DirCreatedEvent, DirDeletedEvent,
                        DirMovedEvent]
    for root in roots:
        folder = root if root.is_dir() else root.parent  # a file: its folder sees it replaced
        observer.schedule(handler, str(folder), recursive=root.is_dir(), event_filter=kinds)
    try:
        observer.start()
    except BaseException:
        observer.stop()
        raise
    return observer


def _handler(roots: Sequence[Path], changes: Changes, index_path: Path) -> Any:
    from watchdog.events import FileSystemEvent, FileSystemEventHandler

    index_folder = os.path.realpath(index_path)
    real_roots = [(r, Path(os.path.realpath(r))) for r in roots]

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.is_directory and event.event_type == "modified":
                return  # its entries' own events say what changed
            for raw in (event.src_path, event.dest_path):
                path = os.fsdecode(raw)
                if path and wanted(path, roots, index_folder):
                    changes.add(path)
                elif path:  # an event reported under the roots' real paths
                    spelled = _respelled(path, real_roots)
                    if spelled and wanted(spelled, roots, index_folder):
                        changes.add(spelled)

    return Handler()


def _respelled(path: str, real_roots: Sequence[tuple[Path, Path]]) -> str:
    """``path`` under a root's real path, spelled under the root as given ("" if neither)."""
    for given, real in real_roots:
        if given != real and Path(path).is_relative_to(real):
            return str(given / Path(path).relative_to(real))
    return ""

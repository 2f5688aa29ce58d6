"""What an ingest run tells its caller: the final :class:`IngestReport`, and
:class:`IngestProgress` snapshots while it runs (:class:`_Tracker` makes them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .prepare import Problem

__all__ = ["IngestProgress", "IngestReport"]


@dataclass
class IngestReport:
    """What an ingest run did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[Problem] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)
    chunks_written: int = 0
    total_chunks: int = 0
    seconds: float = 0.0

    @property
    def problems(self) -> bool:
        """True when some file was skipped or could not be read."""
        return bool(self.skipped or self.failed)

    @property
    def chunks_per_second(self) -> float:
        """Chunks embedded per second of the whole run (0 when none were)."""
        return self.chunks_written / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for humans, e.g. ``3 added, 1 updated, ...; 2.1 s, 40 chunks/s``.

        >>> IngestReport(chunks_written=84, total_chunks=84, seconds=2.0).summary()[-57:]
        '84 chunks embedded, 84 in the index; 2.0 s, 42.0 chunks/s'
        """
        rate = f", {self.chunks_per_second:.1f} chunks/s" if self.chunks_written else ""
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped, {len(self.failed)} failed; "
            f"{self.chunks_written} chunks embedded, {self.total_chunks} in the index; "
            f"{self.seconds:.1f} s{rate}"
        )


@dataclass(frozen=True)
class IngestProgress:
    """A snapshot for progress displays."""

    files_done: int
    files_total: int
    chunks_embedded: int
    elapsed: float
    current: str = ""

    @property
    def rate(self) -> float:
        """Chunks embedded per second so far."""
        return self.chunks_embedded / self.elapsed if self.elapsed > 0 else 0.0


class _Tracker:
    """Counts progress and forwards snapshots to the caller's callback."""

    def __init__(
        self,
        total: int,
        done: int,
        started: float,
        callback: Callable[[IngestProgress], None] | None,
    ) -> None:
        self.total, self.done, self.chunks = total, done, 0
        self.started, self.callback = started, callback

    def advance(self, files: int, chunks: int, current: str) -> None:
        self.done += files
        self.chunks += chunks
        if self.callback:
            elapsed = time.monotonic() - self.started
            self.callback(IngestProgress(self.done, self.total, self.chunks, elapsed, current))

"""A one-line progress display for long ingests (silent when stderr is not a terminal)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import TYPE_CHECKING, TextIO

from ..settings import dumb_terminal
from .terminal import one_line

if TYPE_CHECKING:
    from ..ingest.reports import IngestProgress

__all__ = ["ProgressLine"]


class ProgressLine:
    """Callable progress sink: redraws ``files · chunks · rate · current file`` in place."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() and not dumb_terminal()
        self.interval = interval
        self._last = 0.0
        self._drawn = False

    def __call__(self, p: IngestProgress) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < self.interval and p.files_done < p.files_total):
            return
        self._last = now
        width = shutil.get_terminal_size((80, 20)).columns - 1
        head = (f"indexing {p.files_done}/{p.files_total} files · {p.chunks_embedded} chunks · "
                f"{p.rate:.1f} chunks/s · ")
        tail = one_line(os.path.basename(p.current))  # a file name may hold escape sequences
        line = (head + tail)[:width]
        self.stream.write("\r" + line.ljust(width))
        self.stream.flush()
        self._drawn = True

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._drawn:  # clear the line so the summary starts clean
            width = shutil.get_terminal_size((80, 20)).columns - 1
            self.stream.write("\r" + " " * width + "\r")
            self.stream.flush()


class CounterLine(ProgressLine):
    """Progress for ``ragkit eval``: the ingest, then queries counted per mode."""

    def ingest(self, p: IngestProgress) -> None:
        """Forward ingest progress to the one-line display."""
        self(p)

    def queries(self, mode: str, done: int, total: int) -> None:
        """Show ``mode: done/total queries`` in place."""
        if not self.enabled or (done % 20 and done != total):
            return
        self.stream.write(f"\r{mode}: {done}/{total} queries".ljust(40))
        self.stream.flush()
        self._drawn = True

"""``ragkit watch``: keep an index in step with folders; and what it prints.

On a terminal a status line is redrawn in place (problems still get a line
each); otherwise every committed change is one line on stdout, stamped with
the time, so that logs are useful.
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

import click

from ..settings import dumb_terminal
from .options import open_index, printable, say, with_index_options
from .terminal import one_line

if TYPE_CHECKING:
    from ..ingest.reports import IngestProgress, IngestReport
    from ..ingest.watch import WatchEvent

__all__ = ["WatchDisplay", "watch"]


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--follow-symlinks", is_flag=True, help="Follow links that leave the folder.")
@click.option("--debounce", type=click.FloatRange(0.05, 60), default=0.5, show_default=True,
              help="Seconds without a change before changes are indexed (editors save in "
              "bursts).")
@click.option("--poll", is_flag=True, help="Check the folders every second instead of "
              "following OS file events (network file systems).")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Chunks per embedding request.")
@click.option("--parallel", type=click.IntRange(1, 64), default=None,
              help="Embedding requests in flight [default: as for ingest].")
@with_index_options
def watch(opts: dict[str, Any], paths: tuple[str, ...], follow_symlinks: bool,
          debounce: float, poll: bool, batch_size: int, parallel: int | None) -> None:
    """Keep the index in step with the files under PATHS until Ctrl-C.

    Catches up with what changed since the last run, then indexes files as
    they are added, changed, moved or deleted, by the rules of ingest. A
    second writer of the index is refused while it runs.
    """
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():  # a service stop: as Ctrl-C
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    with open_index(opts, create=True) as index, WatchDisplay(index.name, paths) as display:
        try:
            index.watch(paths, stop, follow_symlinks=follow_symlinks, batch_size=batch_size,
                        parallel=parallel, debounce=debounce, polling=poll,
                        on_event=display.event, progress=display.progress)
        except KeyboardInterrupt:
            display.stopped()
            sys.exit(130)  # as any interrupted ragkit command


class WatchDisplay:
    """Shows a watcher's events: a status line on a terminal, else one line per change."""

    def __init__(self, name: str, paths: tuple[str, ...], out: TextIO | None = None,
                 err: TextIO | None = None) -> None:
        self.name, self.paths = name, paths
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.live = self.out.isatty() and self.err.isatty() and not dumb_terminal()
        from .progress import ProgressLine  # imported when used: `ragkit --help` stays light

        self._bar = ProgressLine(self.err)
        self._bar.enabled = self.live
        self._told: set[tuple[str, str]] = set()  # skipped files are said once
        self._last = "no change yet"
        self._chunks = 0
        self._status = ""

    def __enter__(self) -> WatchDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self._clear()

    def progress(self, p: IngestProgress) -> None:
        """Ingest progress (on a terminal only)."""
        self._bar(p)

    def event(self, event: WatchEvent) -> None:
        """Show what the watcher did."""
        if event.kind == "synced" and event.report is not None:
            self._report(event.report)
        elif event.kind == "ready":
            assert event.report is not None
            self._line(f"watching {', '.join(map(printable, self.paths))} for index "
                       f"'{one_line(self.name)}' ({event.report.total_chunks} chunks) — "
                       "Ctrl-C stops")
        elif event.kind == "waiting":
            self._line(f"{event.message} — waiting for it, retrying with backoff")
        elif event.kind == "resumed":
            self._line("the embedding backend answers again — indexing what changed")
        elif event.kind == "polling":
            self._line(event.message)
        self._draw()

    def stopped(self) -> None:
        """Ctrl-C: say that what was committed is kept."""
        self._clear()
        say("stopped watching — everything committed is kept")

    def _report(self, report: IngestReport) -> None:
        from ..retrieval import display_path

        now = time.strftime("%Y-%m-%d %H:%M:%S")
        changes = [("added", p) for p in report.added] + \
            [("updated", p) for p in report.updated] + [("removed", p) for p in report.removed]
        for what, path in changes:
            shown = one_line(display_path(path))
            self._last = f"{time.strftime('%H:%M:%S')} {what} {shown}"
            if not self.live:
                click.echo(f"{now} {what} {shown}", file=self.out)
        for problem in report.failed:
            self._line(f"failed {one_line(display_path(problem.path))}: {problem.reason}")
        for problem in report.skipped:
            if (problem.path, problem.reason) not in self._told:
                self._told.add((problem.path, problem.reason))
                self._line(f"skipped {one_line(display_path(problem.path))}: {problem.reason}")
        self._chunks = report.total_chunks or self._chunks

    def _line(self, message: str) -> None:
        """A line that stays (above the status line on a terminal)."""
        self._clear()
        say(message)

    def _draw(self) -> None:
        if not self.live:
            return
        width = shutil.get_terminal_size((80, 20)).columns - 1
        self._status = (f"watching '{one_line(self.name)}' · {self._chunks} chunks · "
                        f"last: {self._last}")[:width]
        self.err.write("\r" + self._status.ljust(width))
        self.err.flush()

    def _clear(self) -> None:
        if self.live and self._status:
            self.err.write("\r" + " " * len(self._status) + "\r")
            self.err.flush()
            self._status = ""

"""The ``ragkit`` command: adapters over the library, no logic.

:mod:`.main` holds the group and the ingest/search/ask/chat commands,
:mod:`.serving` the serve and mcp commands, :mod:`.admin` the index, model, eval
and doctor commands, :mod:`.bench` the benchmarks, :mod:`.progress` the progress
lines.  The entry point is ``ragkit.cli.main:main``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = ["cli"]

# name -> module that defines it
_EXPORTS = {
    "cli": "main",
}

if TYPE_CHECKING:
    from .main import cli


__getattr__ = lazy_exports(__name__, _EXPORTS)

"""Ingest: the pipeline from folders to a committed index.

A background thread reads and chunks files (:mod:`.prepare`), embedding
requests are kept in flight (:mod:`.scheduler`), and each file is committed
whole to the store (:mod:`.pipeline`).  The names below are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = ["IngestProgress", "IngestReport", "Problem", "default_parallel", "ingest"]

# name -> module that defines it
_EXPORTS = {
    "IngestProgress": "pipeline", "IngestReport": "pipeline", "ingest": "pipeline",
    "Problem": "prepare",
    "default_parallel": "scheduler",
}

if TYPE_CHECKING:
    from .pipeline import IngestProgress, IngestReport, ingest
    from .prepare import Problem
    from .scheduler import default_parallel


__getattr__ = lazy_exports(__name__, _EXPORTS)

"""Ingest: the pipeline from folders to a committed index.

A background thread reads and chunks files (:mod:`.prepare`), embedding
requests are kept in flight (:mod:`.scheduler`), and each file is committed
whole to the store (:mod:`.pipeline`), which reports what it did and how far
it got (:mod:`.reports`); ``--shard`` picks a share of the files
(:mod:`.shards`).  The names below are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = ["IngestProgress", "IngestReport", "Problem", "Shard", "default_parallel", "in_flight",
           "ingest"]

# name -> module that defines it
_EXPORTS = {
    "IngestProgress": "reports", "IngestReport": "reports", "ingest": "pipeline",
    "Problem": "prepare",
    "default_parallel": "scheduler", "in_flight": "scheduler",
    "Shard": "shards",
}

if TYPE_CHECKING:
    from .pipeline import ingest
    from .prepare import Problem
    from .reports import IngestProgress, IngestReport
    from .scheduler import default_parallel, in_flight
    from .shards import Shard


__getattr__ = lazy_exports(__name__, _EXPORTS)

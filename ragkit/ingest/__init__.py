"""Ingest: the pipeline from folders to a committed index.

A background thread reads and chunks files (:mod:`.prepare`), embedding
requests are kept in flight (:mod:`.scheduler`), and each file is committed
whole to the store (:mod:`.pipeline`); ``--shard`` picks a share of the files
(:mod:`.shards`).  The names below are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["IngestProgress", "IngestReport", "Problem", "Shard", "default_parallel", "in_flight",
           "ingest"]

# name -> module that defines it
_EXPORTS = {
    "IngestProgress": "pipeline", "IngestReport": "pipeline", "ingest": "pipeline",
    "Problem": "prepare",
    "default_parallel": "scheduler", "in_flight": "scheduler",
    "Shard": "shards",
}

if TYPE_CHECKING:
    from .pipeline import IngestProgress, IngestReport, ingest
    from .prepare import Problem
    from .scheduler import default_parallel, in_flight
    from .shards import Shard


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

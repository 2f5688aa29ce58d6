"""The ``ragkit`` command: adapters over the library, no logic.

:mod:`.main` holds the group and the ingest/search/ask/chat/serve/mcp commands,
:mod:`.admin` the index, model, eval and doctor commands, :mod:`.bench` the
benchmarks, :mod:`.progress` the progress lines.  The entry point is
``ragkit.cli.main:main``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["cli"]

# name -> module that defines it
_EXPORTS = {
    "cli": "main",
}

if TYPE_CHECKING:
    from .main import cli


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

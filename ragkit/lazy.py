"""Lazy exports for a package's ``__init__``: a name's module loads on first use.

This keeps ``import ragkit`` and ``ragkit --help`` fast: FAISS, NumPy and the
model engine load only when a name that needs them is used.  A package writes::

    _EXPORTS = {"Store": "local", ...}   # name -> the submodule that defines it
    __getattr__ = lazy_exports(__name__, _EXPORTS)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` on first use.

    The value is then stored in the package, so later lookups do not come back here.

    >>> getattr_ = lazy_exports("ragkit", {"Settings": "settings"})
    >>> getattr_("Settings").__name__
    'Settings'
    >>> getattr_("Nope")
    Traceback (most recent call last):
    AttributeError: module 'ragkit' has no attribute 'Nope'
    """
    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__

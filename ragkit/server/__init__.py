"""``ragkit serve``: retrieval and grounded answers over HTTP, in Ollama's and OpenAI's APIs.

Needs the ``serve`` extra (FastAPI and uvicorn): ``pip install 'ragkit[serve]'``.
The names below are imported lazily, so that the CLI can read the settings'
defaults without loading the web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = ["DEFAULT_LISTEN", "ServerSettings", "create_app", "serve"]

_EXPORTS = {"DEFAULT_LISTEN": "config", "ServerSettings": "config", "create_app": "app",
            "serve": "app"}

if TYPE_CHECKING:
    from .app import create_app, serve
    from .config import DEFAULT_LISTEN, ServerSettings


__getattr__ = lazy_exports(__name__, _EXPORTS)

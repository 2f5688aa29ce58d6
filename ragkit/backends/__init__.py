"""Backends: the models, behind one small interface.

:mod:`.base` is the :class:`Backend` protocol and its stream types;
:mod:`.chooser` picks a backend.  The Ollama client is :mod:`.ollama`, over
:mod:`.ollama_http` and :mod:`.transport`, with host parsing in :mod:`.host`;
several Ollama hosts behind one backend are :mod:`.hosts`.
The embedded engine is :mod:`.embedded`: its llama.cpp sampling is
:mod:`.sampling`, its MiniLM -> GGUF conversion :mod:`.convert`.  The names
below are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = [
    "Backend", "BackendChooser", "EmbeddedBackend", "GenerateOptions", "HostPool", "Message",
    "Metrics", "ModelEntry", "ModelInfo", "OllamaClient", "PullProgress", "Reply", "StreamChunk",
    "collect", "normalize_rows", "parse_host", "parse_hosts",
]

# name -> module that defines it
_EXPORTS = {
    "Backend": "base", "Message": "base", "Metrics": "base", "Reply": "base", "StreamChunk":
    "base", "collect": "base", "normalize_rows": "base",
    "BackendChooser": "chooser",
    "OllamaClient": "ollama",
    "GenerateOptions": "ollama_records", "ModelEntry": "ollama_records",
    "ModelInfo": "ollama_records", "PullProgress": "ollama_records",
    "EmbeddedBackend": "embedded",
    "parse_host": "host",
    "HostPool": "hosts", "parse_hosts": "host",
}

if TYPE_CHECKING:
    from .base import Backend, Message, Metrics, Reply, StreamChunk, collect, normalize_rows
    from .chooser import BackendChooser
    from .embedded import EmbeddedBackend
    from .host import parse_host, parse_hosts
    from .hosts import HostPool
    from .ollama import OllamaClient
    from .ollama_records import GenerateOptions, ModelEntry, ModelInfo, PullProgress


__getattr__ = lazy_exports(__name__, _EXPORTS)

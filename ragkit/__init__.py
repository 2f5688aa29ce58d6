"""ragkit: index a folder of documents and answer questions about it, citing sources.

The public API is re-exported here and imported lazily, so ``ragkit --help``
and ``import ragkit`` stay fast (FAISS and the model engine load only when used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "Index": "index",
    "index_home": "index",
    "DEFAULT_EMBED_MODEL": "index",
    "DEFAULT_CHAT_MODEL": "index",
    "Hit": "retrieval",
    "Answer": "answers",
    "AnswerStream": "answers",
    "IngestReport": "ingest",
    "IngestProgress": "ingest",
    "ChunkerSettings": "chunking",
    "Backend": "backend",
    "Metrics": "backend",
    "Reply": "backend",
    "StreamChunk": "backend",
    "BackendChooser": "backends",
    "OllamaClient": "ollama",
    "EmbeddedBackend": "engine",
    "RagkitError": "errors",
    "BackendError": "errors",
    "ConnectError": "errors",
    "RequestTimeoutError": "errors",
    "ModelNotFoundError": "errors",
    "ResponseError": "errors",
    "BadRequestError": "errors",
    "ServerError": "errors",
    "StreamError": "errors",
    "EmptyAnswerError": "errors",
    "ProtocolError": "errors",
    "IndexError_": "errors",
    "IndexNotFoundError": "errors",
    "IndexCorruptError": "errors",
    "IndexBusyError": "errors",
    "EmbeddingMismatchError": "errors",
    "LoadError": "errors",
    "UsageError": "errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from .answers import Answer, AnswerStream
    from .backend import Backend, Metrics, Reply, StreamChunk
    from .backends import BackendChooser
    from .chunking import ChunkerSettings
    from .engine import EmbeddedBackend
    from .errors import (
        BackendError,
        BadRequestError,
        ConnectError,
        EmbeddingMismatchError,
        EmptyAnswerError,
        IndexBusyError,
        IndexCorruptError,
        IndexError_,
        IndexNotFoundError,
        LoadError,
        ModelNotFoundError,
        ProtocolError,
        RagkitError,
        RequestTimeoutError,
        ResponseError,
        ServerError,
        StreamError,
        UsageError,
    )
    from .index import DEFAULT_CHAT_MODEL, DEFAULT_EMBED_MODEL, Index, index_home
    from .ingest import IngestProgress, IngestReport
    from .ollama import OllamaClient
    from .retrieval import Hit


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

"""ragkit: index a folder of documents and answer questions about it, citing sources.

The public API is re-exported here and imported lazily, so ``ragkit --help``
and ``import ragkit`` stay fast (FAISS and the model engine load only when used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports
from .version import __version__

# name -> module that defines it
_EXPORTS = {
    "Index": "index",
    "index_home": "home",
    "Settings": "settings",
    "DEFAULT_EMBED_MODEL": "models",
    "DEFAULT_CHAT_MODEL": "models",
    "Hit": "retrieval",
    "Answer": "answers",
    "AnswerStream": "answers",
    "AnswerPlan": "answering",
    "AskOptions": "queries",
    "Conversation": "conversation",
    "IngestReport": "ingest.reports",
    "IngestProgress": "ingest.reports",
    "Shard": "ingest.shards",
    "ChunkerSettings": "chunking.units",
    "Backend": "backends.base",
    "Metrics": "backends.base",
    "Reply": "backends.base",
    "StreamChunk": "backends.base",
    "BackendChooser": "backends.chooser",
    "OllamaClient": "backends.ollama",
    "HostPool": "backends.hosts",
    "EmbeddedBackend": "backends.embedded",
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
    "VectorError": "errors",
    "IndexError_": "errors",
    "IndexNotFoundError": "errors",
    "IndexCorruptError": "errors",
    "IndexBusyError": "errors",
    "IndexFolderError": "errors",
    "IndexVersionError": "errors",
    "NothingIndexedError": "errors",
    "PromptTooLongError": "errors",
    "EmbeddingMismatchError": "errors",
    "LoadError": "errors",
    "UsageError": "errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from .answering import AnswerPlan
    from .answers import Answer, AnswerStream
    from .backends.base import Backend, Metrics, Reply, StreamChunk
    from .backends.chooser import BackendChooser
    from .backends.embedded import EmbeddedBackend
    from .backends.hosts import HostPool
    from .backends.ollama import OllamaClient
    from .chunking.units import ChunkerSettings
    from .conversation import Conversation
    from .errors import (
        BackendError,
        BadRequestError,
        ConnectError,
        EmbeddingMismatchError,
        EmptyAnswerError,
        IndexBusyError,
        IndexCorruptError,
        IndexError_,
        IndexFolderError,
        IndexNotFoundError,
        IndexVersionError,
        LoadError,
        ModelNotFoundError,
        NothingIndexedError,
        PromptTooLongError,
        ProtocolError,
        RagkitError,
        RequestTimeoutError,
        ResponseError,
        ServerError,
        StreamError,
        UsageError,
        VectorError,
    )
    from .home import index_home
    from .index import Index
    from .ingest.reports import IngestProgress, IngestReport
    from .ingest.shards import Shard
    from .models import DEFAULT_CHAT_MODEL, DEFAULT_EMBED_MODEL
    from .queries import AskOptions
    from .retrieval import Hit
    from .settings import Settings


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return __all__

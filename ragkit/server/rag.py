"""The server's one adapter to the ragkit library: indexes, search, answers, embeddings.

Everything the HTTP faces need from ragkit goes through :class:`Catalog`, in a
few calls: ``Index.open``, ``Index.search``, ``Index.ask_stream`` (and its
``answer``), ``Conversation.search_query`` and the backend's embed/chat.  These
calls block, so the faces run them in worker threads.  Retrieval on one index
takes that index's lock (one SQLite connection and FAISS cache per index);
generation runs outside it, so a long answer never holds up searches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..backends.chooser import BackendChooser
from ..conversation import Conversation
from ..errors import IndexNotFoundError, UsageError
from ..home import index_home
from ..index import Index
from ..models import DEFAULT_CHAT_MODEL
from ..queries import AskOptions
from .backend import Passthrough, ServerBackend, passthrough
from .config import ServerSettings

__all__ = ["PREFIX", "AnswerRequest", "Catalog", "Emit", "Final", "strip_sources"]

#: Served indexes appear as models named ``rag/<index>``.
PREFIX = "rag/"
MANIFEST = "manifest.json"  # an index folder is one that holds this file (README, "Indexes")

#: ``emit(kind, value)``: ``("delta", str)``, ``("extra", dict)`` then ``("done", Final)``.
Emit = Callable[[str, Any], None]


@dataclass(frozen=True)
class AnswerRequest:
    """One question to answer from an index (or, ``plain``, a request sent as it is)."""

    index: str
    question: str
    mode: str = "chat"
    history: Sequence[dict[str, Any]] = ()
    k: int = 4
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    retrieval: str = "hybrid"
    min_score: float | None = None
    force: bool = False
    paths: Sequence[str] = ()
    diversity: float = 0.0
    #: End the text with a ``Sources:`` block, for chat front-ends that show only text.
    sources_block: bool = True
    #: A front-end's side request: the messages (or prompt) go to the model unchanged.
    plain: bool = False
    messages: Sequence[dict[str, Any]] = ()

    def ask_options(self, chat_model: str) -> AskOptions:
        """How the index answers this request (``chat_model`` when it names none)."""
        return AskOptions(k=self.k, mode=self.mode, model=self.model or chat_model,
                          options=self.options, retrieval=self.retrieval,
                          min_score=self.min_score, force=self.force, paths=self.paths,
                          diversity=self.diversity)


@dataclass(frozen=True)
class Final:
    """How an answer ended: what the last record of a stream carries."""

    text: str
    done_reason: str | None
    metrics: dict[str, int]
    #: The passages given to the model, numbered as cited, with ``cited`` set on each.
    sources: list[dict[str, Any]]
    #: The ``ragkit ask --json`` object (None for a side request).
    answer: dict[str, Any] | None = None


class Catalog:
    """The indexes a server offers, opened once and reopened when rebuilt."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.home = settings.home or index_home()
        self.chat_model = settings.model or DEFAULT_CHAT_MODEL
        chooser = BackendChooser(settings.backend, host=settings.host, timeout=settings.timeout,
                                 threads=settings.threads, cache_dir=settings.cache_dir)
        self.backend = ServerBackend(chooser, settings.timeout)
        self.upstream = chooser.host
        self._fixed = self._fixed_paths(settings.indexes)
        self._open: dict[str, tuple[tuple[int, int], Index]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _fixed_paths(self, specs: Sequence[str]) -> dict[str, Path] | None:
        """``--index`` values as name -> folder; a path's index is named after its folder."""
        if not specs:
            return None
        paths: dict[str, Path] = {}
        for spec in specs:
            path = Path(spec).expanduser() if ("/" in spec or spec.startswith(".")) \
                else self.home / spec
            if not (path / MANIFEST).exists():
                raise IndexNotFoundError(spec, str(path.parent))
            if path.name in paths:
                raise UsageError(f"two indexes are named '{path.name}' — serve one of them")
            paths[path.name] = path
        return paths

    def close(self) -> None:
        """Close every open index and the HTTP connections."""
        with self._guard:
            for _, index in self._open.values():
                index.close()
            self._open.clear()
        self.backend.close()

    # -- which indexes ---------------------------------------------------------------

    def names(self) -> list[str]:
        """The served index names, sorted (without --index: every index in the home)."""
        if self._fixed is not None:
            return sorted(self._fixed)
        if not self.home.is_dir():
            return []
        return sorted(p.name for p in self.home.iterdir() if (p / MANIFEST).is_file())

    def path(self, name: str) -> Path:
        """The folder of the served index ``name``, or IndexNotFoundError."""
        path = (self._fixed or {}).get(name) if self._fixed is not None else self.home / name
        if path is None or "/" in name or name in ("", ".", "..") or \
                not (path / MANIFEST).is_file():
            where = "the indexes this server offers" if self._fixed is not None else str(self.home)
            raise IndexNotFoundError(name, where)
        return path

    @staticmethod
    def rag_name(model: Any) -> str | None:
        """The index behind a model name (``rag/x`` or ``rag/x:latest``), None if not a rag model.

        >>> Catalog.rag_name("rag/notes:latest"), Catalog.rag_name("llama3.2")
        ('notes', None)
        """
        if not isinstance(model, str) or not model.startswith(PREFIX):
            return None
        name = model[len(PREFIX):]
        return name[: -len(":latest")] if name.endswith(":latest") else name

    def index(self, name: str) -> Index:
        """The open index ``name``; reopened when its folder was replaced (a rebuild)."""
        path = self.path(name)
        stat = (path / MANIFEST).stat()
        stamp = (stat.st_ino, stat.st_mtime_ns)
        with self._guard:
            known = self._open.get(name)
            if known and known[0] == stamp:
                return known[1]
            index = Index.open(path, backend=self.backend, timeout=self.settings.timeout,
                               embed_model=self.settings.embed_model)
            if known:
                known[1].close()
            self._open[name] = (stamp, index)
            self._locks.setdefault(name, threading.Lock())
            return index

    def info(self, name: str) -> dict[str, Any]:
        """What ``GET /indexes`` says about one index."""
        index = self.index(name)
        path = self.path(name)
        manifest = index.manifest
        files = [f for f in path.rglob("*") if f.is_file()]
        changed = max((f.stat().st_mtime for f in files), default=0.0)
        return {
            "name": name, "model": f"{PREFIX}{name}", "path": str(path), "chunks": len(index),
            "embed_model": index.embed_model, "chat_model": self.chat_model,
            "dimension": manifest.get("dimension"), "chunker": manifest.get("chunker"),
            "size": sum(f.stat().st_size for f in files),
            "modified_at": datetime.fromtimestamp(changed, timezone.utc).isoformat(),
            "ragkit_version": manifest.get("ragkit_version"),
        }

    # -- retrieval and answers -------------------------------------------------------

    def search(self, name: str, query: str, k: int, *, retrieval: str = "hybrid",
               paths: Sequence[str] = (), diversity: float = 0.0) -> list[dict[str, Any]]:
        """The hits of ``Index.search``, as ``ragkit search --json`` prints them."""
        index = self.index(name)
        with self._locks[name]:
            hits = index.search(query, k, mode=retrieval, paths=list(paths) or None,
                                diversity=diversity)
        return [hit.as_dict() for hit in hits]

    def embed(self, name: str, texts: Sequence[str]) -> list[list[float]]:
        """``texts`` embedded with the index's embedding model (unit vectors)."""
        if not texts:
            return []
        index = self.index(name)
        return [[float(x) for x in row] for row in self.backend.embed(index.embed_model, texts)]

    def answer(self, request: AnswerRequest, extra: Passthrough, emit: Emit) -> None:
        """Answer ``request``, emitting its deltas, then ``("done", Final)``."""
        with passthrough(extra):
            if request.plain:
                self._plain(request, emit)
                return
            index = self.index(request.index)
            history = list(request.history)[-Conversation.HISTORY:]
            conversation = Conversation(index)
            conversation.history = history
            with self._locks[request.index]:  # retrieval and fitting; generation comes later
                stream = index.ask_stream(
                    request.question, request.ask_options(self.chat_model), history=history,
                    search_query=conversation.search_query(request.question))
            for delta in stream:
                emit("delta", delta)
            answer = stream.answer
            block = _sources_block(answer) if request.sources_block else ""
            if block:
                emit("delta", block)
            record = answer.as_dict()
            cited = set(answer.cited)
            sources = [{**s, "cited": s["n"] in cited} for s in record["sources"]]
            emit("done", Final(answer.text + block, answer.done_reason,
                               answer.metrics.as_dict(), sources, record))

    def _plain(self, request: AnswerRequest, emit: Emit) -> None:
        """A side request: the chat model answers it as it is, without retrieval."""
        model = request.model or self.chat_model
        if request.mode == "chat":
            chunks = self.backend.chat(model, request.messages, options=request.options or None)
        else:
            chunks = self.backend.generate(model, request.question,
                                           options=request.options or None)
        parts, reason, metrics = [], None, {}
        for chunk in chunks:
            if chunk.text:
                parts.append(chunk.text)
                emit("delta", chunk.text)
            if chunk.done:
                reason = chunk.done_reason
                metrics = chunk.metrics.as_dict() if chunk.metrics else {}
        emit("done", Final("".join(parts), reason, metrics, []))


def _sources_block(answer: Any) -> str:
    """``Sources:`` and one ``[n] path:page`` line per cited (else given) passage."""
    if not answer.found or not answer.sources:
        return ""
    pairs = answer.cited_sources or list(enumerate(answer.sources, 1))
    return "\n\nSources:\n" + "\n".join(f"[{n}] {hit.location}" for n, hit in pairs)


def strip_sources(text: str) -> str:
    """An earlier answer without its ``Sources:`` block, before it goes back in as history.

    >>> strip_sources("Backups run at 02:00 [1].\\n\\nSources:\\n[1] ops.md")
    'Backups run at 02:00 [1].'
    """
    head, sep, tail = text.rpartition("\n\nSources:\n")
    return head if sep and all(line.startswith("[") for line in tail.splitlines()) else text

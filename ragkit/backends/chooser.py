"""Choosing the backend for each model: Ollama when it has it, else the embedded engine.

``auto`` probes Ollama once per process (a quick ``HEAD /`` and ``/api/tags``)
and then picks, model by model, Ollama if it serves that model, else the
embedded engine if it does.  An index built on one backend is queried on the
other without re-indexing, because both serve the same model names and the
same vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelNotFoundError, UsageError
from ..settings import Settings
from .base import Backend
from .host import parse_hosts, with_tag

if TYPE_CHECKING:
    from .embedded import EmbeddedBackend
    from .hosts import HostPool
    from .ollama import OllamaClient

__all__ = ["CHOICES", "BackendChooser", "chooser"]

CHOICES = ("auto", "ollama", "embedded")

#: How long ``auto`` waits for Ollama before settling for the embedded engine.
PROBE_TIMEOUT = 0.5


class BackendChooser:
    """Hands out the backend to use for a model, creating each backend once."""

    def __init__(
        self,
        choice: str | None = None,
        *,
        host: str | None = None,
        timeout: float = 300.0,
        announce: Callable[[str], None] | None = None,
        threads: int | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        # The callers fill these from their settings; a bare chooser takes ragkit's defaults.
        choice = (choice or Settings().backend).lower()
        if choice not in CHOICES:
            raise UsageError(f"unknown backend '{choice}' — use one of: {', '.join(CHOICES)}")
        if not timeout > 0:  # also refuses NaN (the Ollama client checks it the same way)
            raise UsageError(f"the timeout must be a positive number of seconds, got {timeout}")

        self.choice = choice
        self.hosts = parse_hosts(host)  # several: ingest spreads over them (see .hosts)
        self.host = self.hosts[0]  # the one queries use first, and serve's upstream
        self.timeout = timeout
        self._announce = announce
        self.threads = threads  # of the embedded engine (None: chosen per call)
        self.cache_dir = cache_dir  # of its converted model (None: ragkit's default)
        self._announced: set[str] = set()
        self._ollama: OllamaClient | HostPool | None = None
        self._ollama_models: set[str] | None = None  # None: not probed yet
        self._ollama_up = False  # the probe found a server (perhaps with no models)
        self._embedded: EmbeddedBackend | None = None

    def for_model(self, model: str) -> Backend:
        """The backend that will serve ``model`` (raises if none can)."""
        backend = self._pick(model)
        if self._announce and backend.name not in self._announced:
            self._announced.add(backend.name)
            self._announce(f"using {backend.describe()}")
        return backend

    def _pick(self, model: str) -> Backend:
        if self.choice == "ollama":
            return self.ollama()
        if self.choice == "embedded":
            return self._embedded_for(model)
        if self._ollama_has(model):
            return self.ollama()
        embedded = self.embedded()
        if embedded.has_model(model):
            return embedded
        if self._ollama_up:  # Ollama is up: its own "not found — pull it" is the best advice
            return self.ollama()
        if model in embedded.available_models():
            embedded.require(model)  # ours but not installed: says what to install
        raise ModelNotFoundError(
            model,
            f"model '{model}' is not available: no Ollama answers at {self.host} and the embedded "
            f"engine does not have it (it has {', '.join(embedded.available_models())}) — "
            f"start `ollama serve`, then `ollama pull {model}`",
        )

    def ollama(self) -> OllamaClient | HostPool:
        """The Ollama client, or the pool of several hosts (created on first use)."""
        if self._ollama is None:
            from .ollama import OllamaClient

            if len(self.hosts) == 1:
                self._ollama = OllamaClient(self.host, timeout=self.timeout)
            else:
                from .hosts import HostPool

                self._ollama = HostPool(self.hosts, timeout=self.timeout,
                                        per_host=Settings.from_env().parallel,
                                        warn=self._announce or _log_warning)
        return self._ollama

    def embedded(self) -> EmbeddedBackend:
        """The embedded engine (created on first use; models load later, on demand)."""
        if self._embedded is None:
            from .embedded import EmbeddedBackend

            say = self._announce
            self._embedded = EmbeddedBackend(n_threads=self.threads, cache_dir=self.cache_dir,
                                             on_convert=(
                (lambda: say("converting all-minilm to GGUF (once; cached in RAGKIT_CACHE)…"))
                if say else None))
        return self._embedded

    def _embedded_for(self, model: str) -> Backend:
        """The embedded engine, or its own error listing the models it has."""
        engine = self.embedded()
        if not engine.has_model(model):
            engine.require(model)  # raises the engine's descriptive error
        return engine

    def _ollama_has(self, model: str) -> bool:
        """Whether a reachable Ollama lists ``model`` (probed once)."""
        if self._ollama_models is None:
            client = self.ollama()
            names: set[str] = set()
            if client.is_alive(timeout=PROBE_TIMEOUT):
                try:
                    names = {m.name for m in client.list_models()}
                    self._ollama_up = True
                except Exception:  # not an Ollama we can use: as good as none
                    names = set()
            self._ollama_models = names
        return with_tag(model) in {with_tag(n) for n in self._ollama_models}


def _log_warning(message: str) -> None:
    import logging

    logging.getLogger("ragkit").warning("%s", message)


def chooser(
    backend: str | Backend | None,
    host: str | None,
    timeout: float,
    announce: Callable[[str], None] | None,
    threads: int | None = None,
    cache_dir: Path | None = None,
) -> BackendChooser:
    """Wrap a ready backend, or choose one by name (``auto`` by default)."""
    if backend is None or isinstance(backend, str):
        return BackendChooser(backend, host=host, timeout=timeout, announce=announce,
                              threads=threads, cache_dir=cache_dir)
    return _FixedChooser(backend)


class _FixedChooser(BackendChooser):
    """A chooser that always hands out the one backend the caller supplied."""

    def __init__(self, backend: Backend) -> None:
        super().__init__("auto")
        self._fixed = backend

    def for_model(self, model: str) -> Backend:
        return self._fixed

"""An index's embedding model at work: queries, passages and ingest batches.

:class:`Embedder` sends texts to whichever backend serves the model, adds the
model's query or document prefix, and checks a query's vector against the
index it will search (model and dimension).  It remembers the last query it
embedded, so an extractive answer need not embed the question twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .backends.chooser import BackendChooser
from .builds import check_model
from .errors import BackendError, EmbeddingMismatchError
from .ingest.scheduler import in_flight

__all__ = ["Embedder"]


class Embedder:
    """Embeds for the index called ``name``; ``requested``: the model asked for, if any."""

    def __init__(self, name: str, backends: BackendChooser, requested: str | None) -> None:
        self.name = name
        self.backends = backends
        self.requested = requested
        self._last: tuple[str, np.ndarray] | None = None

    def embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        """Rows for ``texts`` from ``model``, as they are (no prefix)."""
        return self.backends.for_model(model).embed(model, texts)

    def in_flight(self, model: str, per_host: int) -> int:
        """Requests to keep in flight: ``per_host`` for each host serving ``model``."""
        return in_flight(self.backends.for_model(model), per_host)

    def query(self, manifest: Mapping[str, Any], model: str, dimension: int,
              text: str) -> np.ndarray:
        """The query's embedding, checked against the index's model and ``dimension``."""
        check_model(self.name, dict(manifest), self.requested)
        vector = self.embed(model, [manifest.get("query_prefix", "") + text])
        if vector.shape[1] != dimension:
            raise EmbeddingMismatchError(
                f"'{model}' now returns {vector.shape[1]}-dim vectors but index "
                f"'{self.name}' holds {dimension}-dim ones — re-index with --rebuild"
            )
        self._last = (text, vector[0])
        return vector[0]

    def try_query(self, manifest: Mapping[str, Any], model: str, dimension: int,
                  text: str) -> np.ndarray | None:
        """:meth:`query`, or None when no backend can embed it right now."""
        try:
            return self.query(manifest, model, dimension, text)
        except BackendError:
            return None

    def recent(self, text: str) -> np.ndarray | None:
        """The vector of ``text`` if it was the last query embedded."""
        return self._last[1] if self._last and self._last[0] == text else None

    def passages(self, manifest: Mapping[str, Any], model: str,
                 texts: Sequence[str]) -> np.ndarray:
        """Embed pieces of passages (or of an answer) as documents."""
        prefix = manifest.get("document_prefix", "")
        return self.embed(model, [prefix + t for t in texts])

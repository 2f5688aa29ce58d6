"""An in-process :class:`~ragkit.backends.base.Backend` for library tests that are not about HTTP.

It answers as the fake Ollama server (tests/ollama_server.py) does, without a
socket: the same hashed embeddings (:func:`~ollama_server.fake_embedding`), and
a reply streamed word by word that cites the first sentence of passage [1]
(:func:`~ollama_server.answer_for`).  It records every call, so a test can see
what reached the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from ollama_server import DIM, answer_for, fake_embedding

from ragkit.backends.base import Message, Metrics, StreamChunk
from ragkit.errors import ModelNotFoundError

__all__ = ["FakeBackend"]


class FakeBackend:
    """Deterministic embeddings and canned streamed replies; implements ``Backend``."""

    name = "fake"

    def __init__(self, models: Sequence[str] = ("all-minilm", "smollm2:135m",
                                                "nomic-embed-text"), dim: int = DIM) -> None:
        self.models = {m.split(":")[0] for m in models}
        self.dim = dim
        #: (method, model, what was sent) per call, in order.
        self.calls: list[tuple[str, str, Any]] = []

    def describe(self) -> str:
        """One line saying what this backend is."""
        return "the in-process fake backend"

    def has_model(self, model: str) -> bool:
        """Whether ``model`` is one of the fake's."""
        return model.split(":")[0] in self.models

    def embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        """The hashed bag-of-words vectors of ``texts``, L2-normalized."""
        self._check(model)
        self.calls.append(("embed", model, list(texts)))
        rows = [fake_embedding(text, self.dim) for text in texts]
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dim)

    def generate(self, model: str, prompt: str, *, system: str | None = None,
                 options: Mapping[str, Any] | None = None, raw: bool = False,
                 keep_alive: str | float | None = None,
                 format: str | Mapping[str, Any] | None = None,
                 images: Sequence[str] | None = None) -> Iterator[StreamChunk]:
        """Stream the canned answer to ``system`` + ``prompt``."""
        self._check(model)
        self.calls.append(("generate", model, {"prompt": prompt, "system": system}))
        return self._stream(f"{system or ''}\n{prompt}")

    def chat(self, model: str, messages: Sequence[Message], *,
             options: Mapping[str, Any] | None = None, keep_alive: str | float | None = None,
             format: str | Mapping[str, Any] | None = None) -> Iterator[StreamChunk]:
        """Stream the canned answer to the system messages and the last user message."""
        self._check(model)
        self.calls.append(("chat", model, [dict(m) for m in messages]))
        system = [str(m.get("content", "")) for m in messages if m.get("role") == "system"]
        users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
        return self._stream("\n".join(system + users[-1:]))

    def special_tokens(self, model: str) -> tuple[str, ...]:
        """The chat template's special tokens: ChatML's, as smollm2 uses."""
        self._check(model)
        return ("<|im_start|>", "<|im_end|>", "<|endoftext|>")

    def _check(self, model: str) -> None:
        if not self.has_model(model):
            raise ModelNotFoundError(model, f"model '{model}' not found — the fake has "
                                     f"{', '.join(sorted(self.models))}")

    def _stream(self, text: str) -> Iterator[StreamChunk]:
        words = answer_for(text).split(" ")
        for i, word in enumerate(words):
            yield StreamChunk(word if i == 0 else f" {word}")
        yield StreamChunk(done=True, done_reason="stop", metrics=Metrics(
            prompt_eval_count=len(text.split()), eval_count=len(words)))

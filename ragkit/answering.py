"""Answers: stream the model's reply, then say which passages it cited."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .backend import Metrics, StreamChunk
from .prompting import NOT_FOUND
from .retrieval import Hit

__all__ = ["DEFAULT_OPTIONS", "MODES", "Answer", "AnswerStream", "cited_numbers"]

MODES = ("chat", "generate")

# Chosen so the small default model answers from the context and stops: a low
# temperature keeps it on the passages, the repeat penalty and the token cap
# stop the loops tiny models fall into.  Every key can be overridden (-o key=value).
DEFAULT_OPTIONS: dict[str, Any] = {
    "temperature": 0.1,
    "top_k": 40,
    "top_p": 0.9,
    "repeat_penalty": 1.15,
    "num_predict": 300,
    "num_ctx": 4096,
}

_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def cited_numbers(text: str, available: int) -> list[int]:
    """Passage numbers cited as ``[n]`` or ``[n, m]`` in ``text``, in order of first use.

    >>> cited_numbers("Yes [2]. Also [1, 2] and [9].", 3)
    [2, 1]
    """
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            n = int(part)
            if 1 <= n <= available and n not in seen:
                seen.append(n)
    return seen


@dataclass(frozen=True)
class Answer:
    """A finished answer with the passages it was given and the ones it cited."""

    question: str
    text: str
    sources: list[Hit]
    cited: list[int]
    found: bool
    mode: str
    model: str | None = None
    done_reason: str | None = None
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def cited_sources(self) -> list[tuple[int, Hit]]:
        """``(n, hit)`` for each cited passage, in order of first citation."""
        return [(n, self.sources[n - 1]) for n in self.cited]

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as ``ragkit ask --json`` prints it."""
        return {
            "question": self.question,
            "answer": self.text,
            "found": self.found,
            "cited": self.cited,
            "sources": [{"n": n, **hit.as_dict()} for n, hit in enumerate(self.sources, 1)],
            "model": self.model,
            "mode": self.mode,
            "done_reason": self.done_reason,
            "metrics": self.metrics.as_dict(),
        }


class AnswerStream:
    """Iterate for text deltas as they arrive; then read :attr:`answer`.

    When retrieval found nothing usable, no model is called: the stream yields
    ragkit's own "not in the documents" sentence and ``answer.found`` is False.
    """

    def __init__(
        self,
        question: str,
        hits: list[Hit],
        chunks: Iterator[StreamChunk] | None,
        *,
        mode: str,
        model: str | None,
    ) -> None:
        self.question = question
        self.hits = hits
        self._chunks = chunks
        self._mode, self._model = mode, model
        self._parts: list[str] = []
        self._final: StreamChunk | None = None
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        if self._answer is not None:
            return
        if self._chunks is None:
            self._parts.append(NOT_FOUND)
            yield NOT_FOUND
        else:
            for chunk in self._chunks:
                if chunk.text:
                    self._parts.append(chunk.text)
                    yield chunk.text
                if chunk.done:
                    self._final = chunk
        self._answer = self._finish()

    @property
    def answer(self) -> Answer:
        """The complete answer (drains the stream first if needed)."""
        if self._answer is None:
            for _ in self:
                pass
        assert self._answer is not None
        return self._answer

    def _finish(self) -> Answer:
        text = "".join(self._parts).strip()
        final = self._final
        found = self._chunks is not None and NOT_FOUND.rstrip(".") not in text
        return Answer(
            question=self.question,
            text=text,
            sources=self.hits,
            cited=cited_numbers(text, len(self.hits)),
            found=found,
            mode=self._mode,
            model=self._model if self._chunks is not None else None,
            done_reason=final.done_reason if final else None,
            metrics=(final.metrics or Metrics()) if final else Metrics(),
        )

"""What ``ask`` returns: :class:`Answer`, and :class:`AnswerStream` that streams it.

An answer is one of three things: ragkit's own "not in the documents"
sentence, quoted excerpts (:mod:`ragkit.extractive`), or a model's prose,
streamed without ``[n]`` placeholders and then checked sentence by sentence
against the passages (:mod:`ragkit.grounding`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .backends.base import Metrics, StreamChunk
from .errors import BackendError, EmptyAnswerError
from .extractive import Excerpt, render
from .grounding import (
    EmbedFn,
    PlaceholderFilter,
    SentenceCheck,
    attribute,
    check_answer,
    cited_numbers,
    strip_placeholders,
)
from .prompting import NOT_FOUND, ContextFit
from .retrieval import Hit

__all__ = ["Answer", "AnswerStream"]


class _Fitted:
    """What :class:`Answer` and :class:`AnswerStream` tell of fitting the passages to num_ctx."""

    fit: ContextFit | None

    @property
    def left_out(self) -> list[Hit]:
        """Retrieved passages not sent to the model to fit its context, best-ranked first."""
        return self.fit.left_out if self.fit else []

    @property
    def note(self) -> str | None:
        """What was left out to fit num_ctx, as one line for the user (None: nothing was)."""
        return self.fit.note if self.fit else None


@dataclass(frozen=True)
class Answer(_Fitted):
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
    #: Who put the [n] marks in the text: "model", "ragkit" (post-hoc attribution) or None.
    cited_by: str | None = None
    #: What was sent and what was left out to fit num_ctx (None when the model was not asked).
    fit: ContextFit | None = None
    #: "extractive" (quoted excerpts), "generated" (a model's prose) or None (no answer
    #: was built: the documents looked irrelevant).
    answer_mode: str | None = "generated"
    #: The quoted excerpts of an extractive answer.
    units: list[Excerpt] = field(default_factory=list)
    #: The grounding check of each sentence of a generated answer.
    sentences: list[SentenceCheck] = field(default_factory=list)
    #: One line for the user about how the answer was made (demo model, excerpts), or None.
    notice: str | None = None

    @property
    def cited_sources(self) -> list[tuple[int, Hit]]:
        """``(n, hit)`` for each cited passage, in order of first citation."""
        return [(n, self.sources[n - 1]) for n in self.cited]

    @property
    def unsupported(self) -> list[SentenceCheck]:
        """Sentences of a generated answer that the passages do not support."""
        return [c for c in self.sentences if not c.supported and not c.not_found]

    @property
    def grounded(self) -> bool | None:
        """Whether a generated answer has a sentence the passages support (None: not checked)."""
        if self.answer_mode != "generated" or not self.sentences:
            return None
        return any(c.supported for c in self.sentences)

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as ``ragkit ask --json`` prints it."""
        return {
            "question": self.question,
            "answer": self.text,
            "answer_mode": self.answer_mode,
            "found": self.found,
            "grounded": self.grounded,
            "cited": self.cited,
            "sources": [{"n": n, **hit.as_dict()} for n, hit in enumerate(self.sources, 1)],
            "cited_by": self.cited_by,
            "units": [u.as_dict() for u in self.units],
            "sentences": [c.as_dict() for c in self.sentences],
            "left_out": [hit.as_dict() for hit in self.left_out],
            "history_left_out": self.fit.history_left_out if self.fit else 0,
            "note": self.note,
            "notice": self.notice,
            "model": self.model,
            "mode": self.mode,
            "done_reason": self.done_reason,
            "metrics": self.metrics.as_dict(),
        }


class AnswerStream(_Fitted):
    """Iterate for text deltas as they arrive; then read :attr:`answer`.

    When retrieval found nothing usable, no model is called: the stream yields
    ragkit's own "not in the documents" sentence and ``answer.found`` is False.
    An extractive answer (``excerpts``) is yielded whole.  A generated one is
    streamed without the ``[n]`` placeholders small models copy from the
    prompt, then checked against the passages (:mod:`ragkit.grounding`, with
    ``embed``).  :attr:`note` says, before the first delta, what was left out
    to fit num_ctx, and :attr:`notice` how the answer is made.
    """

    def __init__(
        self,
        question: str,
        hits: list[Hit],
        chunks: Iterator[StreamChunk] | None,
        *,
        mode: str,
        model: str | None,
        fit: ContextFit | None = None,
        answer_mode: str | None = "generated",
        excerpts: list[Excerpt] | None = None,
        embed: EmbedFn | None = None,
        notice: str | None = None,
    ) -> None:
        self.question = question
        self.hits = hits
        self.fit = fit
        self.answer_mode = answer_mode
        self.notice = notice
        self._chunks = chunks
        self._excerpts = excerpts
        self._embed = embed
        self._mode, self._model = mode, model
        self._parts: list[str] = []
        self._final: StreamChunk | None = None
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        if self._answer is not None:
            return
        if self._excerpts:
            self._parts.append(render(self._excerpts))
            yield self._parts[-1]
        elif self._chunks is None:
            self._parts.append(NOT_FOUND)
            yield NOT_FOUND
        else:
            cleaner = PlaceholderFilter()
            for chunk in self._chunks:
                if chunk.text:
                    self._parts.append(chunk.text)
                    if shown := cleaner.feed(chunk.text):
                        yield shown
                if chunk.done:
                    self._final = chunk
            if rest := cleaner.flush():
                yield rest
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
        base: dict[str, Any] = {"question": self.question, "sources": self.hits, "mode": self._mode,
                "fit": self.fit, "answer_mode": self.answer_mode, "notice": self.notice}
        if self._excerpts:
            cited = sorted({e.n for e in self._excerpts})
            return Answer(text=self._parts[0], cited=cited, cited_by="ragkit", found=True,
                          units=list(self._excerpts), **base)
        if self._chunks is None:
            return Answer(text=NOT_FOUND, cited=[], found=False, **base)
        return self._generated(base)

    def _generated(self, base: dict[str, Any]) -> Answer:
        """The model's answer, placeholders removed, checked and attributed."""
        final = self._final
        done_reason = final.done_reason if final else None
        text = strip_placeholders("".join(self._parts)).strip()
        if not text:
            raise EmptyAnswerError(self._model or "?", done_reason)
        try:
            checks = check_answer(self.question, text, self.hits, self._embed)
        except BackendError:  # no embeddings now: the words alone are compared
            checks = check_answer(self.question, text, self.hits, None)
        cited, cited_by = cited_numbers(text, len(self.hits)), "model"
        if not cited:
            text, checks, cited = attribute(text, checks)
            cited_by = "ragkit"
        claims = [c for c in checks if not c.not_found]
        found = len(claims) == len(checks) or any(
            c.supported or cited_numbers(c.text, len(self.hits)) for c in claims)
        return Answer(
            text=text, cited=cited, cited_by=cited_by if cited else None, found=found,
            model=self._model, done_reason=done_reason,
            metrics=(final.metrics or Metrics()) if final else Metrics(),
            sentences=checks, **base,
        )

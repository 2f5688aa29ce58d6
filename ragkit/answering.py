"""Answers: stream the model's reply, then say which passages it cited."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import models
from .backends.base import Backend, Metrics, StreamChunk
from .errors import UsageError
from .prompting import NOT_FOUND, ContextFit, build_generate_prompt, build_messages
from .retrieval import Hit
from .store.keywords import keyword_terms

__all__ = [
    "COVERAGE_WEIGHT",
    "DEFAULT_OPTIONS",
    "MODES",
    "Answer",
    "AnswerStream",
    "attribute",
    "cited_numbers",
    "context_limits",
    "options_for",
    "relevance",
    "relevance_threshold",
    "stream_reply",
]

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
    # Small models echo the prompt's structure instead of stopping.
    "stop": ["\nQuestion:", "<documents>", "</documents>"],
}


def options_for(model: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Generation options: ragkit's defaults, then the model's own, then the caller's.

    A ``num_ctx`` past the model's trained context (``ragkit.models``) is cut to it: a
    larger one only produces noise, and the embedded engine refuses to go past it.

    >>> options_for("smollm2:135m", {"seed": 1})["num_predict"], options_for("x")["num_predict"]
    (120, 300)
    >>> options_for("smollm2:135m", {"num_ctx": 32768})["num_ctx"]
    8192
    """
    options = {**DEFAULT_OPTIONS, **models.chat_options(model), **(overrides or {})}
    trained = models.trained_context(model)
    if trained and isinstance(options["num_ctx"], (int, float)) and options["num_ctx"] > trained:
        options["num_ctx"] = trained
    return options


def context_limits(options: Mapping[str, Any]) -> tuple[int, int]:
    """``(num_ctx, tokens kept free for the answer)`` under ``options`` (see :func:`options_for`).

    The answer gets ``num_predict`` tokens, or a quarter of ``num_ctx`` when
    that is unlimited (-1, or Ollama's -2), and never more than half of ``num_ctx``.

    >>> context_limits(options_for("smollm2:135m")), context_limits({"num_predict": -1})
    ((2048, 120), (4096, 1024))
    """
    num_ctx = _whole(options, "num_ctx", DEFAULT_OPTIONS["num_ctx"])
    if num_ctx <= 0:
        raise UsageError(f"num_ctx must be positive, got {num_ctx} — e.g. -o num_ctx=4096")
    predict = _whole(options, "num_predict", -1)
    return num_ctx, min(predict if predict > 0 else num_ctx // 4, num_ctx // 2)


def _whole(options: Mapping[str, Any], key: str, default: int) -> int:
    """``options[key]`` as an int, or a UsageError naming the option."""
    value = options.get(key)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not number.is_integer():
        raise UsageError(f"option {key}={value!r} is not a whole number — "
                         f"e.g. -o {key}={DEFAULT_OPTIONS[key]}")
    return int(number)


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


_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")
_STOP = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "has",
    "have", "how", "i", "if", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this",
    "to", "was", "were", "what", "when", "where", "which", "who", "why", "will", "with", "you",
    "your",
])


#: Weight of term coverage in :func:`relevance` (calibrated with the threshold; see README).
COVERAGE_WEIGHT = 0.3


def relevance(question: str, hits: Sequence[Hit]) -> float | None:
    """How well the retrieved chunks match ``question``: what ``ask`` compares with its threshold.

    The closest chunk's cosine similarity, plus ``COVERAGE_WEIGHT`` times the
    largest share of the question's content words (stop words left out) that a
    single chunk contains.  The word share separates questions that a corpus
    answers from off-topic ones better than the cosine alone (measured on
    SciFact and XQuAD-en: 89% of off-topic questions refused instead of 76%, at
    the same 5% of answerable ones).  ``None`` when no hit has a cosine.

    >>> from ragkit.retrieval import Hit
    >>> hit = Hit(1, 0.0, 1, "/a.md", "a.md", None, "", "Backups run at night.", cosine=0.5)
    >>> round(relevance("When do backups run?", [hit]), 3)
    0.8
    """
    cosines = [h.cosine for h in hits if h.cosine is not None]
    if not cosines:
        return None
    terms = {t for t in keyword_terms(question) if t not in _STOP}
    coverage = max((len(terms & set(keyword_terms(h.text))) / len(terms) for h in hits),
                   default=0.0) if terms else 0.0
    return max(cosines) + COVERAGE_WEIGHT * coverage


def relevance_threshold(embed_model: str, min_score: float | None = None) -> float | None:
    """What :func:`relevance` must reach: ``min_score``, else the model's calibrated one.

    Below it (best cosine + 0.3 x word coverage, :func:`relevance`), `ask` answers "not
    in the documents" without calling the model; models ``ragkit.models`` gives no
    threshold get none unless the caller gives one.
    """
    if min_score is not None:
        return min_score
    return models.relevance_threshold(embed_model)


def stream_reply(
    backend: Backend, model: str, mode: str, question: str, fit: ContextFit,
    options: dict[str, Any],
) -> Iterator[StreamChunk]:
    """Send the fitted passages (and, in chat mode, history) in ``mode``'s prompt shape."""
    specials = backend.special_tokens(model)  # defused in document text, with the usual shapes
    if mode == "chat":
        messages = build_messages(question, fit.hits, fit.history, specials)
        return backend.chat(model, messages, options=options)
    prompt = build_generate_prompt(question, fit.hits, specials)
    return backend.generate(model, prompt, options=options)


def attribute(text: str, hits: list[Hit], min_share: float = 0.6) -> tuple[str, list[int]]:
    """Add ``[n]`` after each sentence that passage n clearly supports.

    For models that do not cite on their own: a sentence is attributed to the
    passage holding the largest share (at least ``min_share``, and 3 terms) of
    its content terms.  Returns the marked text and the cited numbers.

    >>> from ragkit.retrieval import Hit
    >>> hits = [Hit(1, 1.0, 1, "/a", "a", None, "", "Backups run nightly at 02:00 UTC.")]
    >>> attribute("Backups run nightly at 02:00. Cats purr.", hits)
    ('Backups run nightly at 02:00 [1]. Cats purr.', [1])
    """
    passages = [set(keyword_terms(h.text)) for h in hits]
    out, cited = [], []
    for match in _SENTENCE.finditer(text):
        sentence = match.group()
        terms = [t for t in keyword_terms(sentence) if t not in _STOP]
        best, share = _best_support(terms, passages)
        if best and share >= min_share and len(terms) >= 3:
            body = sentence.rstrip()
            stripped = body.rstrip(".!?。！？")
            sentence = f"{stripped} [{best}]{body[len(stripped):]}{sentence[len(body):]}"
            if best not in cited:
                cited.append(best)
        out.append((match.start(), match.end(), sentence))
    return _splice(text, out), cited


def _best_support(terms: list[str], passages: list[set[str]]) -> tuple[int, float]:
    if not terms:
        return 0, 0.0
    shares = [sum(t in p for t in terms) / len(terms) for p in passages]
    best = max(range(len(shares)), key=shares.__getitem__, default=-1)
    return (best + 1, shares[best]) if best >= 0 else (0, 0.0)


def _splice(text: str, pieces: list[tuple[int, int, str]]) -> str:
    result, pos = [], 0
    for start, end, replacement in pieces:
        result.append(text[pos:start])
        result.append(replacement)
        pos = end
    result.append(text[pos:])
    return "".join(result)


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
            "cited_by": self.cited_by,
            "left_out": [hit.as_dict() for hit in self.left_out],
            "history_left_out": self.fit.history_left_out if self.fit else 0,
            "note": self.note,
            "model": self.model,
            "mode": self.mode,
            "done_reason": self.done_reason,
            "metrics": self.metrics.as_dict(),
        }


class AnswerStream(_Fitted):
    """Iterate for text deltas as they arrive; then read :attr:`answer`.

    When retrieval found nothing usable, no model is called: the stream yields
    ragkit's own "not in the documents" sentence and ``answer.found`` is False.
    :attr:`note` says, before the first delta, what was left out to fit num_ctx.
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
    ) -> None:
        self.question = question
        self.hits = hits
        self.fit = fit
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
        cited, cited_by = cited_numbers(text, len(self.hits)), "model"
        if found and not cited:
            text, cited = attribute(text, self.hits)
            cited_by = "ragkit"
        return Answer(
            question=self.question,
            text=text,
            sources=self.hits,
            cited=cited,
            cited_by=cited_by if cited else None,
            found=found,
            mode=self._mode,
            model=self._model if self._chunks is not None else None,
            done_reason=final.done_reason if final else None,
            metrics=(final.metrics or Metrics()) if final else Metrics(),
            fit=self.fit,
        )

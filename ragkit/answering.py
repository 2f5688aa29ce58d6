"""Answering: how an answer is made (excerpts or a model), the model's options, relevance.

The answer objects themselves are in :mod:`ragkit.answers`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import models
from .answers import Answer, AnswerStream
from .backends.base import Backend, StreamChunk
from .backends.chooser import BackendChooser
from .errors import BackendError, UsageError
from .grounding import cited_numbers
from .prompting import ContextFit, build_generate_prompt, build_messages, fit_context
from .queries import ANSWER_MODES, AskOptions, check_min_score
from .queries import PROMPT_MODES as MODES
from .retrieval import Hit
from .store.keywords import keyword_terms

__all__ = [
    "ANSWER_MODES",
    "COVERAGE_WEIGHT",
    "DEFAULT_OPTIONS",
    "DEMO_MODELS",
    "MODES",
    "REAL_ANSWERS",
    "Answer",
    "AnswerPlan",
    "AnswerStream",
    "answer_hits",
    "answer_plan",
    "check_min_score",
    "cited_numbers",
    "context_limits",
    "options_for",
    "relevance",
    "relevance_threshold",
    "stream_reply",
]

#: Models too small to trust for written answers: ``auto`` answers with excerpts instead
#: when the embedded engine runs them, and their generated answers carry a notice.
DEMO_MODELS = frozenset({"smollm2:135m"})
#: Where real answers come from (one line, part of every demo-model notice).
REAL_ANSWERS = ("for real answers run Ollama with a larger model: `ollama pull qwen2.5:7b`, "
                "then --model qwen2.5:7b")

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
        return check_min_score(min_score)
    return models.relevance_threshold(embed_model)


@dataclass(frozen=True)
class AnswerPlan:
    """How :meth:`ragkit.Index.ask_stream` will answer: which backend writes, what to tell."""

    #: The backend that writes the answer; None: quote excerpts instead.
    backend: Backend | None
    #: One line for the user about it (a demo model, no model reachable), or None.
    notice: str | None = None


def answer_plan(answer: str, model: str, backends: BackendChooser) -> AnswerPlan:
    """Resolve ``answer`` (see :data:`ANSWER_MODES`) for ``model``.

    ``auto`` quotes excerpts when ``model`` is a demo model run by the embedded
    engine, or when no backend can be reached for it; a missing model on a
    running Ollama still fails when the answer is written, with Ollama's advice.
    """
    if answer == "extractive":
        return AnswerPlan(None)
    if answer == "generate":
        return AnswerPlan(backends.for_model(model), _demo_notice(model))
    try:
        backend = backends.for_model(model)
        backend.has_model(model)  # a backend that cannot be reached fails here
    except BackendError as exc:
        return AnswerPlan(None, f"answering with excerpts: no chat model can be reached ({exc})")
    if backend.name == "embedded" and model in DEMO_MODELS:
        return AnswerPlan(None, f"answering with excerpts, as {model} is only a 135M demo "
                                f"model — {REAL_ANSWERS}")
    return AnswerPlan(backend, _demo_notice(model))


def _demo_notice(model: str) -> str | None:
    if model not in DEMO_MODELS:
        return None
    return f"this answer comes from {model}, a 135M demo model, and may be wrong — {REAL_ANSWERS}"


def stream_reply(
    backend: Backend, model: str, mode: str, question: str, fit: ContextFit,
    options: dict[str, Any],
) -> Iterator[StreamChunk]:
    """Send the fitted passages (and, in chat mode, history) in ``mode``'s prompt shape."""
    # Defused in document text, with the usual shapes.  A backend of the caller's own
    # may predate the method: then only the usual shapes are defused.
    lookup = getattr(backend, "special_tokens", None)
    specials = lookup(model) if lookup is not None else ()
    if mode == "chat":
        messages = build_messages(question, fit.hits, fit.history, specials)
        return backend.chat(model, messages, options=options)
    prompt = build_generate_prompt(question, fit.hits, specials)
    return backend.generate(model, prompt, options=options)


def answer_hits(
    question: str,
    hits: list[Hit],
    ask: AskOptions,
    *,
    model: str,
    relevant: bool,
    backends: BackendChooser,
    history: Sequence[dict[str, Any]],
    excerpts: Callable[[], list[Any]],
    embed: Callable[[Sequence[str]], Any],
) -> AnswerStream:
    """The answer to ``question`` from ``hits``: none, quoted ``excerpts()``, or the model's.

    No answer when nothing was found or nothing is ``relevant``; otherwise
    :func:`answer_plan` decides who answers.  A written answer's prompt is
    fitted to the model's context (see :func:`~ragkit.prompting.fit_context`);
    ``embed`` embeds its sentences for the grounding check.
    """
    if not hits or not relevant:
        planned = {"auto": None, "extractive": "extractive"}.get(ask.answer, "generated")
        return AnswerStream(question, hits, None, mode=ask.mode, model=model,
                            answer_mode=planned)
    plan = answer_plan(ask.answer, model, backends)
    if plan.backend is None:
        return AnswerStream(question, hits, None, mode=ask.mode, model=None,
                            answer_mode="extractive", notice=plan.notice, excerpts=excerpts())
    opts = options_for(model, dict(ask.options))
    num_ctx, reserve = context_limits(opts)
    fit = fit_context(question, hits, history, mode=ask.mode, num_ctx=num_ctx, reserve=reserve)
    chunks = stream_reply(plan.backend, model, ask.mode, question, fit, opts)
    return AnswerStream(question, fit.hits, chunks, mode=ask.mode, model=model, fit=fit,
                        embed=embed, notice=plan.notice)


def relevant_enough(question: str, hits: Sequence[Hit], threshold: float | None) -> bool:
    """Whether the hits' :func:`relevance` reaches ``threshold`` (None: no threshold)."""
    score = relevance(question, hits)
    return threshold is None or score is None or score >= threshold

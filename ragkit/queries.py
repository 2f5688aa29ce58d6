"""What a query asks for: the choice lists, :class:`AskOptions`, and their checks.

Kept free of heavy imports: the command line builds its options from these
lists before anything loads a model or an index.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from .errors import UsageError

__all__ = ["ANSWER_MODES", "MAX_K", "PROMPT_MODES", "RETRIEVAL_MODES", "AskOptions",
           "check_k", "check_min_score", "check_retrieval", "check_search"]

#: How chunks are found (see :mod:`ragkit.retrieval`); the first is the default.
RETRIEVAL_MODES = ("hybrid", "vector", "keyword")
#: How the passages reach the model: an /api/chat system message, or an /api/generate prompt.
PROMPT_MODES = ("chat", "generate")
#: How an answer is made: quoted excerpts, a model's prose, or auto (see ``Index.ask_stream``).
ANSWER_MODES = ("auto", "extractive", "generate")
#: The most chunks a search returns.
MAX_K = 1000


@dataclass(frozen=True)
class AskOptions:
    """How :meth:`ragkit.Index.ask_stream` (and a :class:`~ragkit.Conversation`) answer.

    >>> AskOptions(k=2).with_(answer="extractive").answer
    'extractive'
    """

    #: Passages retrieved for the model.
    k: int = 4
    #: ``chat`` (context in a system message) or ``generate`` (one hand-built prompt).
    mode: str = "chat"
    #: The chat model (default: the index's settings).
    model: str | None = None
    #: Model options (``num_ctx``, ``temperature``...) over ragkit's per-model defaults.
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Retrieval mode, one of :data:`RETRIEVAL_MODES`.
    retrieval: str = "hybrid"
    #: The relevance the passages must reach (default: calibrated per embedding model).
    min_score: float | None = None
    #: Answer even when no passage looks relevant.
    force: bool = False
    #: Glob patterns a passage's file must match (see :func:`ragkit.retrieval.match_paths`).
    paths: Sequence[str] = ()
    #: 0..1: trade relevance for variety (MMR).
    diversity: float = 0.0
    #: ``auto``, ``extractive`` or ``generate``, one of :data:`ANSWER_MODES`.
    answer: str = "auto"

    def __post_init__(self) -> None:
        # Frozen all the way down: a shared AskOptions cannot be changed through a field.
        object.__setattr__(self, "options", MappingProxyType(dict(self.options or {})))
        object.__setattr__(self, "paths", tuple(self.paths or ()))

    def with_(self, **changes: Any) -> AskOptions:
        """A copy with ``changes`` (field names); a UsageError names an unknown one."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise UsageError(f"unknown ask option '{unknown[0]}' — use one of: "
                             f"{', '.join(f.name for f in fields(self))}")
        return replace(self, **changes) if changes else self

    def check(self) -> None:
        """A UsageError for a mode, answer mode or min_score out of its range."""
        if self.mode not in PROMPT_MODES:
            raise UsageError(f"unknown mode '{self.mode}' — use one of: {', '.join(PROMPT_MODES)}")
        if self.answer not in ANSWER_MODES:
            raise UsageError(f"unknown answer mode '{self.answer}' — use one of: "
                             f"{', '.join(ANSWER_MODES)}")
        if self.min_score is not None:
            check_min_score(self.min_score)


def check_min_score(min_score: float) -> float:
    """``min_score`` if it is a finite number, else a UsageError (NaN would refuse nothing).

    >>> check_min_score(0.5)
    0.5
    """
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not (
            math.isfinite(min_score)):
        raise UsageError(f"--min-score must be a finite number, got {min_score} — e.g. 0.5")
    return float(min_score)


def check_k(k: int) -> None:
    """A UsageError unless ``k`` is a whole number from 1 to :data:`MAX_K`."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise UsageError(f"-k must be a whole number between 1 and {MAX_K}, got {k!r}")
    if not 1 <= k <= MAX_K:
        raise UsageError(f"-k must be between 1 and {MAX_K}, got {k}")


def check_retrieval(mode: str) -> None:
    """A UsageError unless ``mode`` is one of :data:`RETRIEVAL_MODES`."""
    if mode not in RETRIEVAL_MODES:
        raise UsageError(
            f"unknown retrieval mode '{mode}' — use one of: {', '.join(RETRIEVAL_MODES)}")


def check_search(query: str, k: int, mode: str, diversity: float) -> None:
    """The checks of a search, in the order a user would fix them."""
    check_k(k)
    if not query.strip():
        raise UsageError("the query is empty — say what to search for")
    check_retrieval(mode)
    if not 0.0 <= diversity <= 1.0:
        raise UsageError(f"diversity must be between 0 and 1, got {diversity}")

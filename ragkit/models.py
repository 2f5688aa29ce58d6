"""Model facts in one table: default models, embedding prefixes, trained context,
per-model generation options, calibrated relevance thresholds, English-only embedders.

A *family* entry gives its prefixes to every embedding model whose name contains it
(``e5`` → ``multilingual-e5-small``); every other fact holds for the named model only
(the name without its tag, or with it for a chat model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_CHAT_MODEL", "DEFAULT_EMBED_MODEL", "MODELS", "ModelFacts", "chat_options",
    "embedding_prefixes", "english_only", "relevance_threshold", "trained_context",
]

DEFAULT_EMBED_MODEL = "all-minilm"
DEFAULT_CHAT_MODEL = "smollm2:135m"

_REPRESENT = "Represent this sentence for searching relevant passages: "


@dataclass(frozen=True)
class ModelFacts:
    """What ragkit knows of one model (or, with ``family``, of the models named after it)."""

    name: str
    query_prefix: str = ""
    document_prefix: str = ""
    family: bool = False
    #: Trained on English only: its vectors of CJK text are little better than noise, so
    #: hybrid search ranks CJK questions by keywords (ragkit.retrieval.dense_weight).
    #: This table is the one place that decides; RAGKIT_EMBED_SCRIPTS (Settings.english_only)
    #: overrides it.  A model it does not name is taken to read every script.
    english_only: bool = False
    #: The relevance below which `ask` answers "not in the documents" (benchmarks/eval_targets.py).
    threshold: float | None = None
    #: The context the model was trained on: a larger num_ctx only produces noise.
    trained_context: int | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


MODELS: tuple[ModelFacts, ...] = (
    # One paragraph, greedy: past its first paragraph the 135M model drifts from the
    # passages (measured on the guide questions; see CHANGELOG 0.1.0).
    ModelFacts(DEFAULT_CHAT_MODEL, trained_context=8192, options=MappingProxyType({
        "temperature": 0.0, "num_predict": 120, "repeat_penalty": 1.1, "num_ctx": 2048,
        "stop": ["\nQuestion:", "<documents>", "</documents>", "\n\n"]})),
    # Calibrated on the dev halves by benchmarks/eval_targets.py (README, "Saying not in
    # the documents"): the highest refusing at most 5% of each set's answerable questions.
    ModelFacts(DEFAULT_EMBED_MODEL, english_only=True, threshold=0.493),
    # Embedding models trained with instruction prefixes lose accuracy without them;
    # the first family that matches wins.
    ModelFacts("nomic-embed-text", "search_query: ", "search_document: ", family=True,
               english_only=True),
    ModelFacts("multilingual-e5", "query: ", "passage: ", family=True),
    ModelFacts("e5", "query: ", "passage: ", family=True),
    ModelFacts("bge-small-en", _REPRESENT, family=True),
    ModelFacts("bge-base-en", _REPRESENT, family=True),
    ModelFacts("bge-large-en", _REPRESENT, family=True),
    ModelFacts("mxbai-embed-large", _REPRESENT, family=True, english_only=True),
    ModelFacts("snowflake-arctic-embed", _REPRESENT, family=True, english_only=True),
    ModelFacts("bge-large", english_only=True),
    # Multilingual, no instruction prefixes: CJK questions keep the full embedding share.
    ModelFacts("bge-m3"),
)

_NONE = ModelFacts("")


def _base(model: str) -> str:
    """The model's name without tag or namespace, lower-cased: ``jeffh/E5:f16`` → ``e5``."""
    return model.split(":", 1)[0].lower().rsplit("/", 1)[-1]


def facts(model: str) -> ModelFacts:
    """The facts of exactly ``model`` (with its tag, or without it), or an empty entry."""
    base = _base(model)
    for entry in MODELS:
        if entry.name in (model, base):
            return entry
    return _NONE


def embedding_prefixes(model: str) -> tuple[str, str]:
    """The (query, document) prefixes a known embedding model expects.

    >>> embedding_prefixes("nomic-embed-text:latest")
    ('search_query: ', 'search_document: ')
    >>> embedding_prefixes("jeffh/intfloat-multilingual-e5-small:f16")
    ('query: ', 'passage: ')
    >>> embedding_prefixes("all-minilm")
    ('', '')
    """
    base = _base(model)
    for entry in MODELS:
        if entry.family and entry.name in base:
            return entry.query_prefix, entry.document_prefix
    return "", ""


def english_only(embed_model: str) -> bool:
    """Whether ``embed_model`` was trained on English only (so reads CJK script poorly).

    >>> english_only("all-minilm:latest"), english_only("bge-m3")
    (True, False)
    """
    return facts(embed_model).english_only


def relevance_threshold(embed_model: str) -> float | None:
    """The calibrated relevance threshold of ``embed_model``, or None if it has none."""
    return facts(embed_model).threshold


def trained_context(model: str) -> int | None:
    """The context length ``model`` was trained on, if known."""
    return facts(model).trained_context


def chat_options(model: str) -> dict[str, Any]:
    """The generation options ``model`` needs over ragkit's defaults (a fresh dict)."""
    return {key: list(v) if isinstance(v, list) else v for key, v in facts(model).options.items()}
